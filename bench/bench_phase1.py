"""P4: Phase I sampling rate vs replaying its own output, side by side in one run.

    .venv/bin/python bench/bench_phase1.py [--trajectories 20] [--repeats 3]

For each toolset: build the graph once (not timed), sample N trajectories (timed), then replay the
same trajectories: fresh scenario load + the recorded calls + result serialisation (timed). The
figure is (trajectories/s sampled) / (trajectories/s replayed); target >= 0.5. Median of --repeats.

Second figure (issue 6: "executed calls/s against the raw cost of executing the same calls"):
every call the sampler executed, failed attempts included, is logged; "raw" re-executes exactly
those calls, in order, on a fresh load of each candidate's scenario, serialising every result.
The ratio raw time / sampling time is the share of sampling spent executing tools at all.

Third figure, the ceiling: the sampler verifies each trajectory by replaying it from a fresh load
(hidden state, or a failed call that still mutated, must never ship), and it also has to load the
scenario and execute the kept calls itself. So even with no failed attempt and no bookkeeping,
sampling costs replay + verification, and the ratio is at most R / (R + V), where R is the replay
time and V the time of the sampler's own verification replays, both measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Self

from funreason_pipeline.environments.toolsets import World, generate_scenario, load_toolsets, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.sampling import sampler as sampler_module
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed


def replay(ts, tools, trajs) -> None:
    for t in trajs:
        world = World.from_scenario(ts, t.scenario, tools)
        for c in t.flat_calls():
            json.dumps(world.call(c.tool, c.arguments).value)


class CallLog:
    """Records every World.call during sampling, per World lineage (copies share their parent's log)."""

    def __init__(self) -> None:
        self.runs: list[tuple[dict, list[tuple[str, dict]]]] = []
        self._orig_from, self._orig_call, self._orig_copy = World.from_scenario, World.call, World.copy

    def __enter__(self) -> Self:
        log = self

        def from_scenario(cls, toolset, scenario, tools):
            world = log._orig_from.__func__(cls, toolset, scenario, tools)
            world._bench_log = []
            log.runs.append((scenario, world._bench_log))
            return world

        def call(self, tool, arguments):
            getattr(self, "_bench_log", []).append((tool, dict(arguments)))
            return log._orig_call(self, tool, arguments)

        def copy(self):
            twin = log._orig_copy(self)
            twin._bench_log = getattr(self, "_bench_log", [])
            return twin

        World.from_scenario, World.call, World.copy = classmethod(from_scenario), call, copy
        return self

    def __exit__(self, *exc) -> None:
        World.from_scenario, World.call, World.copy = self._orig_from, self._orig_call, self._orig_copy


def raw_execution(ts, tools, runs) -> tuple[float, int]:
    t0 = time.perf_counter()
    n = 0
    for scenario, calls in runs:
        world = World.from_scenario(ts, scenario, tools)
        for tool, args in calls:
            json.dumps(world.call(tool, args).value)
            n += 1
    return time.perf_counter() - t0, n


class VerifyTimer:
    """Times the sampler's own verification replays (its `seal_trajectory`) during a run."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._orig = sampler_module.seal_trajectory

    def __enter__(self) -> Self:
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return self._orig(*a, **k)
            finally:
                self.seconds += time.perf_counter() - t0

        sampler_module.seal_trajectory = timed
        return self

    def __exit__(self, *exc) -> None:
        sampler_module.seal_trajectory = self._orig


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--toolsets", default="")
    args = ap.parse_args()
    chosen = set(filter(None, args.toolsets.split(",")))
    rows = []
    for ts in load_toolsets():
        if chosen and ts.name not in chosen:
            continue
        tools = toolset_tools(ts)
        scenarios = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(4)]
        t0 = time.perf_counter()
        edges = build_edges(ts, tools, scenarios, seed=1)
        graph_s = time.perf_counter() - t0
        ratios, sample_rates, replay_rates, calls = [], [], [], 0
        raw_ratios, executed_rates, ceilings = [], [], []
        for r in range(args.repeats):
            with VerifyTimer() as verify:
                t0 = time.perf_counter()
                res = sample_partition(ts, tools, edges, "2026-06-01", args.trajectories, base_seed=r, max_extra=0)
                s = time.perf_counter() - t0
            with CallLog() as log:  # the same run again (deterministic), untimed, to log its calls
                again = sample_partition(ts, tools, edges, "2026-06-01", args.trajectories, base_seed=r, max_extra=0)
            assert [t.model_dump() for t in again.trajectories] == [t.model_dump() for t in res.trajectories]
            raw_s, executed = raw_execution(ts, tools, log.runs)
            raw_ratios.append(raw_s / s)
            executed_rates.append(executed / s)
            t0 = time.perf_counter()
            replay(ts, tools, res.trajectories)
            p = time.perf_counter() - t0
            n = len(res.trajectories)
            calls = sum(len(t.flat_calls()) for t in res.trajectories)
            sample_rates.append(n / s)
            replay_rates.append(n / p)
            ratios.append((n / s) / (n / p))
            ceilings.append(p / (p + verify.seconds))
        rows.append((ts.name, len(tools), len(edges), graph_s, statistics.median(sample_rates),
                     statistics.median(replay_rates), statistics.median(ratios), calls,
                     statistics.median(executed_rates), statistics.median(raw_ratios), executed / max(calls, 1),
                     statistics.median(ceilings)))
        print(f"{ts.name:<24} tools {len(tools):>3} edges {len(edges):>4} graph {graph_s:5.2f}s "
              f"sampled {rows[-1][4]:7.1f}/s replayed {rows[-1][5]:7.1f}/s ratio {rows[-1][6]:.2f} | "
              f"executed {rows[-1][8]:7.0f} calls/s, raw/sampling {rows[-1][9]:.2f}, "
              f"executed/kept calls {rows[-1][10]:.1f}, ceiling {rows[-1][11]:.2f}", flush=True)
    ratios = [r[6] for r in rows]
    print(f"\nmedian ratio over toolsets: {statistics.median(ratios):.2f} (min {min(ratios):.2f})")
    raw = [r[9] for r in rows]
    print(f"median raw-execution share of sampling time: {statistics.median(raw):.2f}")
    print(f"median ceiling R / (R + V): {statistics.median(r[11] for r in rows):.2f}")
    print("| toolset | tools | edges | graph build s | sampled traj/s | replayed traj/s | ratio (P4) "
          "| ceiling R/(R+V) | executed calls/s | executed / kept calls | raw execution / sampling time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.2f} | {r[11]:.2f} "
              f"| {r[8]:.0f} | {r[10]:.1f} | {r[9]:.2f} |")


if __name__ == "__main__":
    main()
