"""The filtered SFT set and its exports (thin: the stage is stages/sft.py)."""

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
from funreason_pipeline.stages.sft import sft_stage


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    # read through the database for the statistics (quality.from_database), not loaded as frames
    deps=["queries", "cot_traces", dg.AssetDep("api_graph", partition_mapping=per_toolset)],
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "polars", "parquet"}, code_version="sft-v2",
    backfill_policy=dg.BackfillPolicy.single_run(),
    check_specs=[
        dg.AssetCheckSpec("every_sample_replays", asset="sft_samples", blocking=True,
                          description="Re-executing each sample's calls from its trajectory's scenario reproduces its "
                          "tool messages (injected errors known as such), and every turn ends in the ground "
                          "truth's state with all its results (verify.replay.replay_sample)."),
        dg.AssetCheckSpec("yield_above_floor", asset="sft_samples",
                          description="At least half of the trajectories' turns end as samples (warning)."),
    ],
    description="Verified, deduplicated, decontaminated SFT samples (one per user turn; earlier turns as "
    "context) and their exports under data/exports/<day>/<toolset>/ (OpenAI/TRL, ShareGPT + LLaMA-Factory "
    "dataset_info, BFCL prompting, Parquet, dataset card).",
)
def sft_samples(context: dg.AssetExecutionContext, store: Store, processes: Processes, dialogues: pl.DataFrame,
                trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):  # no annotation: check_specs
    return materialize(context, per_partition(processes, sft_stage, partition_calls(
        day_toolset_keys(context), {"dialogues": dialogues, "trajectories": trajectories}, {"tool_catalog": tool_catalog},
        database=store.database, exports=store.exports)), store)
