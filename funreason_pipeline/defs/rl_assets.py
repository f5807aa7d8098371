"""The RL export per day x toolset (thin: the stage is stages/rl.py).

Its own asset rather than more code in `sft_samples`: it needs the trajectories' scenarios and
re-executes every sample, its rows are a table of their own (`rl_samples`) that the day export
combines, and its check runs the reward module on every row.
"""

import dagster as dg
import polars as pl

from funreason_pipeline.defs.partitions import (
    DAY_TOOLSET_EXPR,
    OWNERS,
    day_toolset_keys,
    day_toolset_partitions,
    per_toolset,
)
from funreason_pipeline.defs.resources import Processes, Store
from funreason_pipeline.defs.results import materialize, per_partition
from funreason_pipeline.stages.inputs import partition_calls
from funreason_pipeline.stages.rl import rl_stage


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "parquet"}, code_version="rl-v1",
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[dg.AssetCheckSpec(
        "ground_truth_scores_one", asset="rl_samples", blocking=True,
        description="Every row's ground-truth calls score 1.0 with funreason_pipeline.reward.")],
    description="RL rows (verl layout: data_source, prompt, ability, reward_model, extra_info): per user turn "
    "the prompt, tools, initial state, prior calls and the turn's ground truth (calls + end state), under "
    "data/exports/<day>/<toolset>/rl.parquet.",
)
def rl_samples(context: dg.AssetExecutionContext, store: Store, processes: Processes, sft_samples: pl.DataFrame,
               trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):  # no annotation: check_specs
    return materialize(context, per_partition(processes, rl_stage, partition_calls(
        day_toolset_keys(context), {"sft_samples": sft_samples, "trajectories": trajectories}, {"tool_catalog": tool_catalog},
        exports=store.exports)), store)
