"""Phase I turn shape on one day, every toolset, offline: turns and calls per trajectory, steps per
turn, calls per step, calls the turn cut dropped, turns not kept, and Phase I time.

    .venv/bin/python bench/phase1_shape.py [--day 2026-12-07] [--n 6] [--toolsets a,b]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from funreason_pipeline.environments.toolsets import generate_scenario, load_toolsets, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--day", default="2026-12-07")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--toolsets", default="")
    args = ap.parse_args()
    wanted = set(filter(None, args.toolsets.split(",")))
    reasons: Counter = Counter()
    total = Counter()
    t_all = 0.0
    for ts in load_toolsets():
        if wanted and ts.name not in wanted:
            continue
        tools = toolset_tools(ts)
        edges = build_edges(ts, tools, [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(4)],
                            seed=1)
        t0 = time.perf_counter()
        res = sample_partition(ts, tools, edges, args.day, args.n, max_extra=0)
        dt = time.perf_counter() - t0
        t_all += dt
        trajs = res.trajectories
        turns = [t for tr in trajs for t in tr.turns]
        calls = [c for t in turns for c in t.calls]
        steps = [len(t.steps()) for t in turns]
        reasons.update(r.reason for r in res.rejections)
        total.update(trajectories=len(trajs), turns=len(turns), calls=len(calls), steps=sum(steps),
                     multi=sum(1 for s in steps if s > 1))
        print(f"{ts.name:24s} traj {len(trajs):3d} turns/traj {len(turns)/max(1,len(trajs)):.2f} "
              f"calls/traj {len(calls)/max(1,len(trajs)):.2f} steps/turn {sum(steps)/max(1,len(turns)):.2f} "
              f"{dt:.1f}s")
    n = max(1, total["trajectories"])
    print(f"ALL traj {total['trajectories']} turns/traj {total['turns']/n:.2f} calls/traj {total['calls']/n:.2f} "
          f"steps/turn {total['steps']/max(1,total['turns']):.2f} calls/step {total['calls']/max(1,total['steps']):.2f} "
          f"multi-step turns {total['multi']/max(1,total['turns']):.1%} phase1 {t_all:.1f}s")
    print("rejections:", dict(reasons.most_common()))


if __name__ == "__main__":
    main()
