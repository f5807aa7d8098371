"""The per-toolset stages: the tool catalog and the environment-API graph."""

from __future__ import annotations

import time
from collections import Counter

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.environments.fingerprint import graph_fingerprint
from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import build_edges, edgeless_hint
from funreason_pipeline.seeds import short_hash, stable_seed
from funreason_pipeline.stages.output import Check, Markdown, StageOutput

PROBE_SCENARIOS = 4


def catalog_stage(toolset: str) -> StageOutput:
    ts = toolset_by_name(toolset)
    tools = toolset_tools(ts)
    df = frames.catalog_frame(ts.name, tools)
    return StageOutput(df, metrics={
        "tools": len(tools),
        "tools_per_class": dict(Counter(t.class_name for t in tools)),
        "preview": Markdown(frames.markdown_table(df.select("class_name", "tool_name", "description"))),
    })


def graph_stage(toolset: str, tool_catalog: pl.DataFrame) -> StageOutput:
    """Edges from schemas and execution probing on a few generated scenarios; the `graph_has_edges`
    warning names the likely cause when there are none."""
    ts = toolset_by_name(toolset)
    tools = frames.tools_from_frame(tool_catalog)
    scenarios = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(PROBE_SCENARIOS)]
    t0 = time.perf_counter()
    report: dict = {}
    edges = build_edges(ts, tools, scenarios, seed=stable_seed("probe-args", ts.name), report=report)
    elapsed = time.perf_counter() - t0
    version = short_hash(frames.dumps(sorted(e.model_dump_json() for e in edges)))
    graph = ApiGraph(tools, edges)
    counts = graph.edge_counts()
    cross = sum(1 for e in edges if graph.tools[e.src_tool].class_name != graph.tools[e.dst_tool].class_name)
    hint = edgeless_hint(tools, report) if not edges else ""
    return StageOutput(
        frames.graph_frame(ts.name, edges, version),
        metrics={"nodes": len(tools), "data_edges": counts["data"], "state_edges": counts["state"],
                 "cross_class_edges": cross, "graph_version": version, "probe_seconds": round(elapsed, 3),
                 # what the graph was built from: `cli demo` reuses a graph whose inputs are unchanged
                 "graph_fingerprint": graph_fingerprint(ts),
                 "graph": Markdown(f"```mermaid\n{graph.to_mermaid()}\n```")},
        checks=[Check("graph_has_edges", bool(edges), {"edges": len(edges)}, hint or f"{len(edges)} edges",
                      warn=True)],
        log=[("warning", f"toolset {ts.name!r}: {hint}")] if hint else [],
    )
