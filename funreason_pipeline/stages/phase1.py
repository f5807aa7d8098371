"""The trajectories stage (Phase I): sample a partition, store it, replay what was stored, judge its
yield and coverage."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.quality import trajectory_quality
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.sampling.sampler import SamplerConfig
from funreason_pipeline.sampling.yield_check import phase1_yield, yield_rejection
from funreason_pipeline.stages.output import Check, Markdown, StageOutput
from funreason_pipeline.verify.replay import replay_trajectory


def trajectories_stage(day: str, toolset: str, tool_catalog: pl.DataFrame, api_graph: pl.DataFrame, *,
                       trajectories_per_partition: int, candidate_budget: int | None, min_turns: int,
                       max_turns: int, max_calls_per_turn: int, edge_goals: bool,
                       edge_coverage_target: float | None, seed: int, min_yield: float,
                       min_tool_coverage: float, log: Callable[[str], None] | None = None) -> StageOutput:
    """The keyword arguments are the asset's run configuration (defs TrajectoryConfig, its defaults)."""
    ts = toolset_by_name(toolset)
    tools = frames.tools_from_frame(tool_catalog)
    edges = frames.edges_from_frame(api_graph)
    version = api_graph["graph_version"][0] if api_graph.height else "empty"
    cfg = SamplerConfig(min_turns=min_turns, max_turns=max_turns, max_calls_per_turn=max_calls_per_turn,
                        edge_goals=edge_goals)
    t0 = time.perf_counter()
    result = sample_partition(ts, tools, edges, day, trajectories_per_partition, cfg, seed, log=log,
                              candidate_budget=candidate_budget, edge_target=edge_coverage_target)
    elapsed = time.perf_counter() - t0
    lines = []
    verdict = phase1_yield(toolset, day, trajectories_per_partition, len(result.trajectories),
                           [t.name for t in tools if t.name not in result.unusable], set(result.targets_reached),
                           len(edges), result.rejections, min_yield, min_tool_coverage)
    if not verdict.passed:
        lines.append(("error", verdict.message))
        result.rejections.append(yield_rejection(toolset, day, verdict))
    df = frames.trajectories_frame(date.fromisoformat(day), result.trajectories, version)

    failures = []
    for traj in frames.trajectories_from_frame(df):  # replay what was stored, not what is in memory
        problems, _ = replay_trajectory(traj, ts, tools)
        failures.extend(f"{traj.trajectory_id}: {p}" for p in problems)
    empty_turns = [t.trajectory_id for t in result.trajectories if any(not turn.calls for turn in t.turns)]
    n_calls = int(df["n_calls"].sum()) if df.height else 0
    tq = trajectory_quality([[t.model_dump() for t in tr.turns] for tr in result.trajectories],
                            {(e.src_tool, e.dst_tool) for e in edges}, set(result.unusable))
    edge_share = tq["edge_coverage"]
    metrics = {
        "trajectories": df.height,
        "calls": n_calls,
        "mean_turns": round(float(df["n_turns"].mean()), 2) if df.height else 0.0,
        "mean_calls": round(float(df["n_calls"].mean()), 2) if df.height else 0.0,
        "turns_with_dependent_call": tq["dependent_turns"],
        "turns_with_data_dependent_call": tq["data_dependent_turns"],
        "edge_coverage": edge_share,
        "calls_per_second": round(n_calls / elapsed, 1) if elapsed else 0.0,
        "rejections_by_reason": dict(Counter(r.reason for r in result.rejections)),
        "targets_reached": result.targets_reached,
        "graph_version": version,
        "preview": Markdown(frames.markdown_table(df.select("trajectory_id", "n_turns", "n_calls", "targets"))),
    }
    checks = [
        Check("every_trajectory_replays", not failures, {"mismatches": len(failures), "first": "; ".join(failures[:3])}),
        Check("no_empty_turn", not empty_turns, {"trajectories_with_empty_turns": len(empty_turns)}),
        Check("phase1_yield", verdict.passed, {
            "accepted": verdict.accepted, "asked": verdict.asked, "tools_targeted": verdict.targeted,
            "usable_tools": verdict.usable, "message": Markdown(f"```\n{verdict.message}\n```")},
            description=verdict.message),
        Check("every_tool_targeted", not result.uncovered, {"uncovered": result.uncovered,
                                                            "unusable": result.unusable}, warn=True),
        Check("edges_exercised", edge_share >= 0.9, {
            "edge_coverage": edge_share, "exercised": tq["edges_exercised"], "edges": tq["edges"],
            "not_exercised": tq["edges_not_exercised"][:60]}, warn=True),
    ]
    return StageOutput(df, {(day, toolset): result.rejections}, metrics, checks, lines)
