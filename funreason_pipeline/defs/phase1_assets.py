"""Tool catalog, environment-API graph and Phase I trajectories as Dagster assets (thin)."""


import time
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline.defs import frames
from funreason_pipeline.defs.partitions import (
    DAY_TOOLSET_EXPR,
    OWNERS,
    day_toolset_partitions,
    per_toolset,
    split_key,
    toolset_partitions,
)
from funreason_pipeline.defs.resources import Store
from funreason_pipeline.environments.fingerprint import graph_fingerprint
from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import build_edges, edgeless_hint
from funreason_pipeline.quality import trajectory_quality
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.sampling.sampler import SamplerConfig
from funreason_pipeline.sampling.yield_check import phase1_yield, yield_rejection
from funreason_pipeline.seeds import short_hash, stable_seed
from funreason_pipeline.verify.replay import replay_trajectory

GROUP_GRAPH = "environment_graph"
GROUP_PHASE1 = "phase1_trajectories"
PROBE_SCENARIOS = 4


@dg.asset(
    partitions_def=toolset_partitions,
    metadata={"partition_expr": "toolset"},
    group_name=GROUP_GRAPH, owners=OWNERS,
    kinds={"python", "duckdb", "polars"},
    code_version="catalog-v1",
    description="Every tool of the toolset's environment classes: JSON Schema parameters and response schema.",
)
def tool_catalog(context: dg.AssetExecutionContext) -> dg.MaterializeResult[pl.DataFrame]:
    ts = toolset_by_name(context.partition_key)
    tools = toolset_tools(ts)
    df = frames.catalog_frame(ts.name, tools)
    per_class = Counter(t.class_name for t in tools)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "tools": len(tools),
        "tools_per_class": dg.MetadataValue.json(dict(per_class)),
        "preview": dg.MetadataValue.md(frames.markdown_table(df.select("class_name", "tool_name", "description"))),
    })


@dg.asset(
    partitions_def=toolset_partitions,
    metadata={"partition_expr": "toolset"},
    group_name=GROUP_GRAPH, owners=OWNERS,
    kinds={"networkx", "duckdb", "polars"},
    code_version="graph-v1",
    check_specs=[dg.AssetCheckSpec("graph_has_edges", asset="api_graph",
                                   description="The graph has edges (warning); without, the failure names the "
                                   "likely cause (no call succeeded in probing, results without named fields).")],
    description="Prerequisite edges between tools: data edges (a response field feeds a parameter) from "
    "schemas and probing, state edges (a call leaves state another needs) confirmed by execution probing.",
)
def api_graph(context: dg.AssetExecutionContext, tool_catalog: pl.DataFrame):  # no return annotation: check_specs
    ts = toolset_by_name(context.partition_key)
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
    df = frames.graph_frame(ts.name, edges, version)
    hint = edgeless_hint(tools, report) if not edges else ""
    if hint:
        context.log.warning(f"toolset {ts.name!r}: {hint}")
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), check_results=[
        dg.AssetCheckResult(check_name="graph_has_edges", passed=bool(edges), severity=dg.AssetCheckSeverity.WARN,
                            description=hint or f"{len(edges)} edges", metadata={"edges": len(edges)}),
    ], metadata={
        "nodes": len(tools),
        "data_edges": counts["data"],
        "state_edges": counts["state"],
        "cross_class_edges": cross,
        "graph_version": version,
        # what the graph was built from: `cli demo` reuses a graph whose inputs are unchanged
        "graph_fingerprint": graph_fingerprint(ts),
        "probe_seconds": round(elapsed, 3),
        "graph": dg.MetadataValue.md(f"```mermaid\n{graph.to_mermaid()}\n```"),
    })


class TrajectoryConfig(dg.Config):
    """Run configuration (Launchpad, `dg launch --config-json`, or `cli demo --trajectories`)."""

    trajectories_per_partition: int = 6  # accepted trajectories wanted (dialogues per partition)
    candidate_budget: int | None = None  # candidates allowed to reach it (default 4 x wanted)
    min_turns: int = 3
    max_turns: int = 6
    max_calls_per_turn: int = 6
    edge_goals: bool = True  # aim turns at graph edges not yet exercised (Q3)
    # sample extra trajectories until this share of the graph's edges is exercised (Q3: 0.9); None: off
    edge_coverage_target: float | None = None
    seed: int = 0
    # no silent success: the blocking `phase1_yield` check fails below these (a share of what was asked)
    min_yield: float = 1.0  # accepted trajectories / trajectories_per_partition
    min_tool_coverage: float = 0.75  # usable tools reached as a target / usable tools


@dg.asset(
    partitions_def=day_toolset_partitions,
    metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={
        "tool_catalog": dg.AssetIn(partition_mapping=per_toolset),
        "api_graph": dg.AssetIn(partition_mapping=per_toolset),
    },
    group_name=GROUP_PHASE1, owners=OWNERS,
    kinds={"python", "duckdb", "polars"},
    code_version="phase1-v1",
    check_specs=[
        dg.AssetCheckSpec("every_trajectory_replays", asset="trajectories", blocking=True,
                          description="Fresh environments + recorded scenario + recorded calls reproduce every result."),
        dg.AssetCheckSpec("no_empty_turn", asset="trajectories", blocking=True),
        dg.AssetCheckSpec("phase1_yield", asset="trajectories", blocking=True,
                          description="No silent success: at least `min_yield` of the asked trajectories were "
                          "accepted and `min_tool_coverage` of the usable tools reached as targets; the failure "
                          "says what went wrong and what to try (also a `yield_below_minimum` rejection)."),
        dg.AssetCheckSpec("every_tool_targeted", asset="trajectories",
                          description="Every tool of the toolset is a reached target at least once (warning); "
                          "tools their environment declares unusable are listed, not counted."),
        dg.AssetCheckSpec("edges_exercised", asset="trajectories",
                          description="At least 90% of the graph's edges are used by some call (targets.md Q3, "
                          "warning): a call took the source's result or needed its state. Small partitions fall "
                          "short; more trajectories per partition close the gap."),
    ],
    description="Phase I: multi-turn ground-truth traces. A directed sampler walks the API graph toward a "
    "target tool per turn, executing every call on one evolving environment state.",
)
def trajectories(
    context: dg.AssetExecutionContext,
    config: TrajectoryConfig,
    store: Store,
    tool_catalog: pl.DataFrame,
    api_graph: pl.DataFrame,
):  # no return annotation: with check_specs Dagster reads one as several outputs
    day, toolset = split_key(context)
    ts = toolset_by_name(toolset)
    tools = frames.tools_from_frame(tool_catalog)
    edges = frames.edges_from_frame(api_graph)
    version = api_graph["graph_version"][0] if api_graph.height else "empty"
    cfg = SamplerConfig(min_turns=config.min_turns, max_turns=config.max_turns,
                        max_calls_per_turn=config.max_calls_per_turn, edge_goals=config.edge_goals)
    t0 = time.perf_counter()
    result = sample_partition(ts, tools, edges, day, config.trajectories_per_partition, cfg, config.seed,
                              log=context.log.info, candidate_budget=config.candidate_budget,
                              edge_target=config.edge_coverage_target)
    elapsed = time.perf_counter() - t0
    the_day = date.fromisoformat(day)
    verdict = phase1_yield(toolset, day, config.trajectories_per_partition, len(result.trajectories),
                           [t.name for t in tools if t.name not in result.unusable], set(result.targets_reached),
                           len(edges), result.rejections, config.min_yield, config.min_tool_coverage)
    if not verdict.passed:
        context.log.error(verdict.message)
        result.rejections.append(yield_rejection(toolset, day, verdict))
    store.replace_rejections("trajectories", the_day, toolset, result.rejections)
    df = frames.trajectories_frame(the_day, result.trajectories, version)

    failures = []
    for traj in frames.trajectories_from_frame(df):  # replay what was stored, not what is in memory
        problems, _ = replay_trajectory(traj, ts, tools)
        failures.extend(f"{traj.trajectory_id}: {p}" for p in problems)
    empty_turns = [t.trajectory_id for t in result.trajectories if any(not turn.calls for turn in t.turns)]
    n_calls = int(df["n_calls"].sum()) if df.height else 0
    reasons = Counter(r.reason for r in result.rejections)
    tq = trajectory_quality([[t.model_dump() for t in tr.turns] for tr in result.trajectories],
                            {(e.src_tool, e.dst_tool) for e in edges}, set(result.unusable))
    exercised, n_edges, missing, edge_share = (tq["edges_exercised"], tq["edges"], tq["edges_not_exercised"],
                                               tq["edge_coverage"])
    return dg.MaterializeResult(
        value=df, data_version=dg.DataVersion(frames.content_version(df)),
        metadata={
            "trajectories": df.height,
            "calls": n_calls,
            "mean_turns": round(float(df["n_turns"].mean()), 2) if df.height else 0.0,
            "mean_calls": round(float(df["n_calls"].mean()), 2) if df.height else 0.0,
            "turns_with_dependent_call": tq["dependent_turns"],
            "turns_with_data_dependent_call": tq["data_dependent_turns"],
            "edge_coverage": edge_share,
            "calls_per_second": round(n_calls / elapsed, 1) if elapsed else 0.0,
            "rejections_by_reason": dg.MetadataValue.json(dict(reasons)),
            "targets_reached": dg.MetadataValue.json(result.targets_reached),
            "graph_version": version,
            "preview": dg.MetadataValue.md(frames.markdown_table(df.select("trajectory_id", "n_turns", "n_calls", "targets"))),
        },
        check_results=[
            dg.AssetCheckResult(check_name="every_trajectory_replays", passed=not failures,
                                metadata={"mismatches": len(failures), "first": "; ".join(failures[:3])}),
            dg.AssetCheckResult(check_name="no_empty_turn", passed=not empty_turns,
                                metadata={"trajectories_with_empty_turns": len(empty_turns)}),
            dg.AssetCheckResult(check_name="phase1_yield", passed=verdict.passed, description=verdict.message,
                                metadata={"accepted": verdict.accepted, "asked": verdict.asked,
                                          "tools_targeted": verdict.targeted, "usable_tools": verdict.usable,
                                          "message": dg.MetadataValue.md(f"```\n{verdict.message}\n```")}),
            dg.AssetCheckResult(check_name="every_tool_targeted", passed=not result.uncovered,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"uncovered": dg.MetadataValue.json(result.uncovered),
                                          "unusable": dg.MetadataValue.json(result.unusable)}),
            dg.AssetCheckResult(check_name="edges_exercised", passed=edge_share >= 0.9,
                                severity=dg.AssetCheckSeverity.WARN,
                                metadata={"edge_coverage": edge_share, "exercised": exercised, "edges": n_edges,
                                          "not_exercised": dg.MetadataValue.json(missing[:60])}),
        ],
    )
