"""The RL export per day x toolset (thin: the stage is stages/rl.py).

Its own assets rather than more code in `sft_samples`: it needs the trajectories' scenarios and
re-executes every sample, its rows are a table of their own (`rl_samples`) that the day export
combines, and its check runs the reward module on every row.
"""

import dagster as dg
import polars as pl

from funreason_pipeline.defs.partitions import (
    day_toolset_keys,
    day_toolset_partitions,
    per_toolset,
)
from funreason_pipeline.defs.resources import Processes
from funreason_pipeline.defs.results import (
    exports_out,
    per_partition,
    rejections_out,
    results,
    stage_deps,
    table_out,
)
from funreason_pipeline.stages.inputs import partition_calls
from funreason_pipeline.stages.rl import rl_stage

GROUP = "sft"
VERSION = "rl-v1"
INS = ("sft_samples", "trajectories", "tool_catalog")


@dg.multi_asset(
    name="rl_samples",
    outs={
        "rl_samples": table_out(
            GROUP, VERSION, {"python", "duckdb", "parquet"},
            "RL rows (verl layout: data_source, prompt, ability, reward_model, extra_info): per user "
            "turn the prompt, tools, initial state, prior calls and the turn's ground truth (calls + end state)."),
        "rl_samples_rejections": rejections_out("rl_samples", GROUP, VERSION),
        "rl_exports": exports_out("rl_exports", GROUP, VERSION,
                                  "The RL rows as <exports>/<day>/<toolset>/rl.parquet."),
    },
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    internal_asset_deps=stage_deps("rl_samples", INS, exports="rl_exports"),
    partitions_def=day_toolset_partitions, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
    check_specs=[dg.AssetCheckSpec(
        "ground_truth_scores_one", asset="rl_samples", blocking=True,
        description="Every row's ground-truth calls score 1.0 with funreason_pipeline.reward.")],
)
def rl_samples(context: dg.AssetExecutionContext, processes: Processes, sft_samples: pl.DataFrame,
               trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):
    out = per_partition(processes, rl_stage, partition_calls(
        day_toolset_keys(context), {"sft_samples": sft_samples, "trajectories": trajectories},
        {"tool_catalog": tool_catalog}))
    yield from results(context, "rl_samples", out, exports="rl_exports")
