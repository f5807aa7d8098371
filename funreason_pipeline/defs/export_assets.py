"""The day's combined export across toolsets and the lineage view (thin: the stage is stages/day_export.py)."""

import dagster as dg
import polars as pl

from funreason_pipeline.defs.automation import DAY_EXPORT_CONDITION
from funreason_pipeline.defs.partitions import OWNERS, day_partitions
from funreason_pipeline.defs.resources import Store
from funreason_pipeline.defs.results import materialize
from funreason_pipeline.stages.day_export import day_export_stage

per_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")


@dg.asset(
    partitions_def=day_partitions, metadata={"partition_expr": "day"},
    ins={"sft_samples": dg.AssetIn(partition_mapping=per_day), "rl_samples": dg.AssetIn(partition_mapping=per_day)},
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "parquet"}, code_version="day-export-v2",
    automation_condition=DAY_EXPORT_CONDITION,
    description="The day's SFT set across all toolsets, exported under data/exports/<day>/ (OpenAI/TRL, "
    "ShareGPT + LLaMA-Factory dataset_info, BFCL prompting, Parquet, RL rows) with a dataset card; also refreshes "
    "the `sample_lineage` view.",
)
def day_export(context: dg.AssetExecutionContext, store: Store, sft_samples: pl.DataFrame,
               rl_samples: pl.DataFrame) -> dg.MaterializeResult[pl.DataFrame]:
    return materialize(context, day_export_stage(context.partition_key, sft_samples, rl_samples, store.database, store.exports))
