"""MCP servers as toolsets: start time, restore+call time, graph build time (docs/benchmarks.md, "MCP servers").

    make mcp-servers && PYTHONPATH=$PWD .venv/bin/python bench/bench_mcp.py [--starts 5] [--calls 200]

Per server of data/mcp_toolsets.yaml: start to ready (initialize answered) and to usable (catalog
plus self-test) over fresh processes; one call on a running server when each call must first
restore another instance's state (two instances alternating) and when it need not (one instance);
and the graph build as the `api_graph` asset does it (probe scenarios, execution probing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from funreason_pipeline.environments.mcp_config import McpCall
from funreason_pipeline.environments.mcp_server import McpServer
from funreason_pipeline.environments.toolsets import World, generate_scenario, load_toolsets, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.seeds import stable_seed
from funreason_pipeline.stages.graph import PROBE_SCENARIOS

READS = {"mcp_memory": ("read_graph", {}), "mcp_files": ("list_directory", {"path": "/workspace/files"}),
         "mcp_sqlite": ("list_tables", {})}


def _ms(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {"median_ms": round(statistics.median(xs) * 1000, 2), "p95_ms": round(xs[int(0.95 * (len(xs) - 1))] * 1000, 2)}


def bench(name: str, ts, starts: int, calls: int) -> dict:
    cls = ts.classes[0]
    opts = ts.server_options(cls)
    setup = [McpCall.model_validate(c) for c in generate_scenario(ts, 0)[cls]["calls"]]
    ready, usable = [], []
    for _ in range(starts):
        t0 = time.perf_counter()
        server = McpServer(cls, opts, setup)
        usable.append(time.perf_counter() - t0)
        ready.append(server.proc.ready_ms / 1000)
        server.close()
    tools = toolset_tools(ts)
    a = World.from_scenario(ts, generate_scenario(ts, 0), tools)
    b = World.from_scenario(ts, generate_scenario(ts, 1), tools)
    tool, args = READS[name]
    alternating, same = [], []
    for i in range(calls):
        w = (a, b)[i % 2]
        t0 = time.perf_counter()
        assert w.call(tool, args).ok
        alternating.append(time.perf_counter() - t0)
    for _ in range(calls):
        t0 = time.perf_counter()
        a.call(tool, args)
        same.append(time.perf_counter() - t0)
    scenarios = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(PROBE_SCENARIOS)]
    report: dict = {}
    t0 = time.perf_counter()
    edges = build_edges(ts, tools, scenarios, seed=stable_seed("probe-args", ts.name), report=report)
    graph_s = time.perf_counter() - t0
    return {"toolset": name, "server": ts.factory(cls).server_info(), "tools": len(tools),
            "start_to_ready": _ms(ready), "start_to_usable_with_self_test": _ms(usable),
            "restore_and_call": _ms(alternating), "call_without_restore": _ms(same),
            "graph_build_s": round(graph_s, 2), "edges": len(edges),
            "data_edges": sum(e.kind == "data" for e in edges), "state_edges": sum(e.kind == "state" for e in edges),
            "tools_that_worked_in_probing": len(report.get("worked", []))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--toolsets", default="mcp_memory,mcp_files,mcp_sqlite")
    args = ap.parse_args()
    by_name = {t.name: t for t in load_toolsets("data/mcp_toolsets.yaml")}
    for name in args.toolsets.split(","):
        print(json.dumps(bench(name, by_name[name], args.starts, args.calls)), flush=True)


if __name__ == "__main__":
    main()
