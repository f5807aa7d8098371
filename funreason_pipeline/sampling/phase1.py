"""Phase I for one partition: sample N multi-turn trajectories on one toolset."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass

from funreason_pipeline.environments.toolsets import ToolsetConfig, generate_scenario, toolset_unusable_tools
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.models import Edge, Rejection, ToolSpec, Trajectory, used_edges
from funreason_pipeline.progress import Progress
from funreason_pipeline.sampling.sampler import DirectedSampler, SamplerConfig, TargetPlanner
from funreason_pipeline.seeds import stable_seed


@dataclass
class Phase1Result:
    trajectories: list[Trajectory]
    rejections: list[Rejection]
    targets_reached: dict[str, int]
    uncovered: list[str]
    unusable: dict[str, str]  # tool -> why it cannot be a target (declared by its environment)


def sample_partition(
    toolset: ToolsetConfig,
    tools: list[ToolSpec],
    edges: list[Edge],
    day: str,
    n_trajectories: int,
    config: SamplerConfig | None = None,
    base_seed: int = 0,
    max_extra: int | None = None,
    log: Callable[[str], None] | None = None,
    candidate_budget: int | None = None,
    edge_target: float | None = None,
) -> Phase1Result:
    """Generate until `n_trajectories` are accepted (at most `candidate_budget` candidates, default
    4 x N), then extra ones (at most `max_extra`) until every tool was a target once, and, with an
    `edge_target` (Q3: 0.9), until that share of the graph's edges was exercised (at most
    max(`max_extra`, edges / 2) extra candidates, and only while some edge is still worth a try)."""
    if edge_target is not None and not 0 < edge_target <= 1:
        raise ValueError(f"edge_target must be a share in (0, 1], got {edge_target!r}")
    tools = sorted(tools, key=lambda t: t.name)  # samples must not depend on the catalog's row order
    graph = ApiGraph(tools, edges)
    sampler = DirectedSampler(toolset, tools, graph, config)
    unusable = toolset_unusable_tools(toolset, tools)
    planner = TargetPlanner(graph, random.Random(stable_seed("targets", day, toolset.name, base_seed)),
                            unusable=frozenset(unusable), via_rate=sampler.config.via_rate,
                            edge_goals=sampler.config.edge_goals)
    max_extra = max(n_trajectories * 3, len(tools)) if max_extra is None else max_extra
    trajectories: list[Trajectory] = []
    rejections: list[Rejection] = []
    reached: dict[str, int] = {}
    progress = Progress(f"trajectories {toolset.name} {day}", n_trajectories, log)
    budget = 4 * n_trajectories if candidate_budget is None else candidate_budget
    i = 0
    edge_extra = max(max_extra, len(planner.edges) // 2)
    while (len(trajectories) < n_trajectories and i < budget) or (
            planner.uncovered() and i < n_trajectories + max_extra
            and any(planner.tries.get(t, 0) < planner.max_tries for t in planner.uncovered())) or (
            edge_target is not None and i < n_trajectories + edge_extra
            and planner.edge_share() < edge_target and planner.has_open_edges()):
        seed = stable_seed("trajectory", day, toolset.name, base_seed, i)
        tid = f"{toolset.name}-{day}-{i:04d}"
        # sample from exactly what gets stored: a JSON round trip can change a scenario (int dict keys
        # become strings), and replays start from the stored JSON
        scenario = json.loads(json.dumps(generate_scenario(toolset, seed)))
        result = sampler.sample(tid, seed, scenario, planner)
        planner.settle(result.trajectory is not None,
                       used_edges([t.model_dump() for t in result.trajectory.turns]) if result.trajectory else set())
        rejections.extend(result.rejections)
        if result.trajectory is not None:
            trajectories.append(result.trajectory)
            for t in result.reached_targets:
                reached[t] = reached.get(t, 0) + 1
        i += 1
        progress.total = max(progress.total, i)
        progress.advance()
    if len(trajectories) < n_trajectories:
        rejections.append(Rejection(item_id=f"{toolset.name}-{day}", reason="candidate_budget_exhausted",
                                    detail=f"{len(trajectories)} of {n_trajectories} accepted after {i} candidates"))
    for t in planner.uncovered():
        rejections.append(Rejection(item_id=f"{toolset.name}-{day}/{t}", reason="target_never_reached",
                                    detail=f"{t} was tried {planner.tries.get(t, 0)} times as a target"))
    for t, why in sorted(unusable.items()):
        rejections.append(Rejection(item_id=f"{toolset.name}-{day}/{t}", reason="target_unusable", detail=why))
    return Phase1Result(trajectories, rejections, reached, planner.uncovered(), unusable)
