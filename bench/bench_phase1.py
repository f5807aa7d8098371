"""P4: Phase I sampling rate vs replaying its own output, side by side in one run.

    .venv/bin/python bench/bench_phase1.py [--trajectories 20] [--repeats 3]

For each toolset: build the graph once (not timed), sample N trajectories (timed), then replay the
same trajectories: fresh scenario load + the recorded calls + result serialisation (timed). The
figure is (trajectories/s sampled) / (trajectories/s replayed); target >= 0.5. Median of --repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from funreason_pipeline.environments.toolsets import World, generate_scenario, load_toolsets, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed


def replay(ts, tools, trajs) -> None:
    for t in trajs:
        world = World.from_scenario(ts, t.scenario, tools)
        for c in t.flat_calls():
            json.dumps(world.call(c.tool, c.arguments).value)


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
        for r in range(args.repeats):
            t0 = time.perf_counter()
            res = sample_partition(ts, tools, edges, "2026-06-01", args.trajectories, base_seed=r, max_extra=0)
            s = time.perf_counter() - t0
            t0 = time.perf_counter()
            replay(ts, tools, res.trajectories)
            p = time.perf_counter() - t0
            n = len(res.trajectories)
            calls = sum(len(t.flat_calls()) for t in res.trajectories)
            sample_rates.append(n / s)
            replay_rates.append(n / p)
            ratios.append((n / s) / (n / p))
        rows.append((ts.name, len(tools), len(edges), graph_s, statistics.median(sample_rates),
                     statistics.median(replay_rates), statistics.median(ratios), calls))
        print(f"{ts.name:<24} tools {len(tools):>3} edges {len(edges):>4} graph {graph_s:5.2f}s "
              f"sampled {rows[-1][4]:7.1f}/s replayed {rows[-1][5]:7.1f}/s ratio {rows[-1][6]:.2f}", flush=True)
    ratios = [r[6] for r in rows]
    print(f"\nmedian ratio over toolsets: {statistics.median(ratios):.2f} (min {min(ratios):.2f})")
    print("| toolset | tools | edges | graph build s | sampled traj/s | replayed traj/s | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.2f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.2f} |")


if __name__ == "__main__":
    main()
