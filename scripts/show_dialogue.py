"""Print a few offline dialogues of one toolset, step by step, for reading by eye.

    .venv/bin/python scripts/show_dialogue.py clinic [n] [day]
"""

from __future__ import annotations

import asyncio
import json
import sys

from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.flow import Partition, run_flow
from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed


def main() -> None:
    name = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    day = sys.argv[3] if len(sys.argv) > 3 else "2026-12-07"
    ts = toolset_by_name(name)
    tools = toolset_tools(ts)
    edges = build_edges(ts, tools, [generate_scenario(ts, stable_seed("probe", name, i)) for i in range(4)], seed=1)
    trajs = sample_partition(ts, tools, edges, day, n, max_extra=0).trajectories[:n]
    out = asyncio.run(run_flow([Partition("p", ts, tools, trajs)]))["p"]
    q = {}
    for r in out.queries.rows:
        q.setdefault(r.trajectory_id, {})[r.turn_index] = r.query
    tr = {}
    for r in out.traces.rows:
        tr.setdefault(r.trajectory_id, {})[r.turn_index] = {"passed": r.passed, "reasoning": r.reasoning,
                                                            "calls": r.calls, "reply": r.reply,
                                                            "step_reasoning": r.step_reasoning}
    for t in trajs:
        d, _ = build_dialogue(t, tools, q.get(t.trajectory_id, {}), tr.get(t.trajectory_id, {}))
        if d is None:
            continue
        print("=" * 100, d["dialogue_id"])
        for m in d["messages"][1:]:
            if m["role"] == "user":
                print("\nUSER:", m["content"])
            elif m["role"] == "tool":
                print("   TOOL", m["name"], "->", m["content"][:200])
            elif m.get("tool_calls"):
                print("  ASSISTANT:", m["content"].replace("\n", " ")[:300])
                for c in m["tool_calls"]:
                    print("   CALL", c["function"]["name"], c["function"]["arguments"][:200])
            else:
                print("  REPLY:", m["content"][:300])
    print(json.dumps([r.reason for r in out.queries.rejections + out.traces.rejections]))


if __name__ == "__main__":
    main()
