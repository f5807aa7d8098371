"""Tool catalog, environment-API graph and Phase I trajectories as Dagster assets (thin: the stages are
stages/graph.py and stages/phase1.py). Each takes the run's partitions at once (BackfillPolicy.single_run:
a day's toolsets are one run) and calls its stage once per partition, over the run's processes."""

import dagster as dg
import polars as pl

from funreason_pipeline.defs.partitions import (
    OWNERS,
    day_toolset_keys,
    day_toolset_partitions,
    per_toolset,
    toolset_partitions,
)
from funreason_pipeline.defs.resources import Processes
from funreason_pipeline.defs.results import (
    failed_partitions,
    materialize,
    per_partition,
    rejections_out,
    results,
    stage_deps,
    table_out,
)
from funreason_pipeline.stages.graph import catalog_stage, graph_stage
from funreason_pipeline.stages.inputs import partition_calls, toolset_calls
from funreason_pipeline.stages.phase1 import trajectories_stage

GROUP_GRAPH = "environment_graph"
GROUP_PHASE1 = "phase1_trajectories"


@dg.asset(
    partitions_def=toolset_partitions,
    metadata={"partition_expr": "toolset"},
    group_name=GROUP_GRAPH, owners=OWNERS,
    kinds={"python", "duckdb", "polars"},
    code_version="catalog-v1", backfill_policy=dg.BackfillPolicy.single_run(),
    description="Every tool of the toolset's environment classes: JSON Schema parameters and response schema.",
)
def tool_catalog(context: dg.AssetExecutionContext, processes: Processes) -> dg.MaterializeResult[pl.DataFrame]:
    return materialize(context, per_partition(processes, catalog_stage, toolset_calls(context.partition_keys)))


@dg.asset(
    partitions_def=toolset_partitions,
    metadata={"partition_expr": "toolset"},
    group_name=GROUP_GRAPH, owners=OWNERS,
    kinds={"networkx", "duckdb", "polars"},
    code_version="graph-v1", backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec("graph_has_edges", asset="api_graph",
                                   description="The graph has edges (warning); without, the failure names the "
                                   "likely cause (no call succeeded in probing, results without named fields).")],
    description="Prerequisite edges between tools: data edges (a response field feeds a parameter) from "
    "schemas and probing, state edges (a call leaves state another needs) confirmed by execution probing.",
)
def api_graph(context: dg.AssetExecutionContext, processes: Processes,
              tool_catalog: pl.DataFrame):  # no return annotation: check_specs
    return materialize(context, per_partition(processes, graph_stage, toolset_calls(
        context.partition_keys, {"tool_catalog": tool_catalog})))


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


@dg.multi_asset(
    name="trajectories",  # the op's name: run config stays {"ops": {"trajectories": ...}}
    outs={
        "trajectories": table_out(
            GROUP_PHASE1, "phase1-v1", {"python", "duckdb", "polars"},
            "Phase I: multi-turn ground-truth traces. A directed sampler walks the API graph toward a "
            "target tool per turn, executing every call on one evolving environment state."),
        "trajectories_rejections": rejections_out("trajectories", GROUP_PHASE1, "phase1-v1"),
    },
    ins={
        "tool_catalog": dg.AssetIn(partition_mapping=per_toolset),
        "api_graph": dg.AssetIn(partition_mapping=per_toolset),
    },
    internal_asset_deps=stage_deps("trajectories", ("tool_catalog", "api_graph")),
    partitions_def=day_toolset_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
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
                          description="At least 90% of the graph's edges are used by some call (Q3 of docs/benchmarks.md, "
                          "warning): a call took the source's result or needed its state. Small partitions fall "
                          "short; more trajectories per partition close the gap."),
    ],
    can_subset=False,  # the rejections are the same computation's: never one without the other
)
def trajectories(
    context: dg.AssetExecutionContext,
    config: TrajectoryConfig,
    processes: Processes,
    tool_catalog: pl.DataFrame,
    api_graph: pl.DataFrame,
):
    keys = day_toolset_keys(context)
    # the sampler's progress lines only from this process (a logger does not cross to a worker)
    log = context.log.info if processes.in_process(len(keys)) else None
    out = per_partition(processes, trajectories_stage, partition_calls(
        keys, by_toolset={"tool_catalog": tool_catalog, "api_graph": api_graph}, log=log, **config.model_dump()))
    # which partitions failed their yield: the day's runs (defs/day.py) take only the others further
    out.metrics[YIELD_FAILED] = failed_partitions(out, "phase1_yield", [f"{d}|{t}" for d, t in keys])
    yield from results(context, "trajectories", out)


YIELD_FAILED = "phase1_yield_failed"
