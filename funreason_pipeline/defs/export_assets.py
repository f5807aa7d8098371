"""The day's combined export across toolsets: its files and their manifest (thin: the stage is
stages/day_export.py); afterwards the store refreshes the `sample_lineage` view."""

import dagster as dg
import polars as pl

from funreason_pipeline.defs.automation import DAY_EXPORT_CONDITION
from funreason_pipeline.defs.partitions import OWNERS, day_partitions
from funreason_pipeline.defs.resources import Store
from funreason_pipeline.defs.results import exports_out, results
from funreason_pipeline.stages.day_export import day_export_stage

per_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")
VERSION = "day-export-v2"
# the day's rows of every toolset: the samples and RL rows exported, the rest for the card's statistics
DAY_INS = ("sft_samples", "rl_samples", "trajectories", "dialogues", "queries", "cot_traces",
           "trajectories_rejections", "queries_rejections", "cot_traces_rejections", "dialogues_rejections",
           "sft_samples_rejections", "rl_samples_rejections")


@dg.multi_asset(
    name="day_export",
    outs={
        "day_export": dg.AssetOut(
            group_name="sft", owners=OWNERS, kinds={"python", "duckdb"}, code_version=VERSION,
            metadata={"partition_expr": "day"}, automation_condition=DAY_EXPORT_CONDITION,
            description="The manifest of the day's export (day_exports): per file its name, size and sha256."),
        "day_exports": exports_out(
            "day_exports", "sft", VERSION, "The day's SFT set across all toolsets under <exports>/<day>/ (OpenAI/TRL, "
            "ShareGPT + LLaMA-Factory dataset_info, BFCL prompting, Parquet, RL rows) with a dataset card.",
            automation_condition=DAY_EXPORT_CONDITION),
    },
    ins={name: dg.AssetIn(partition_mapping=per_day) for name in DAY_INS},
    partitions_def=day_partitions, can_subset=False,
)
def day_export(context: dg.AssetExecutionContext, store: Store, sft_samples: pl.DataFrame, rl_samples: pl.DataFrame,
               trajectories: pl.DataFrame, dialogues: pl.DataFrame, queries: pl.DataFrame, cot_traces: pl.DataFrame,
               trajectories_rejections: pl.DataFrame, queries_rejections: pl.DataFrame,
               cot_traces_rejections: pl.DataFrame, dialogues_rejections: pl.DataFrame,
               sft_samples_rejections: pl.DataFrame, rl_samples_rejections: pl.DataFrame):
    tool_catalog, api_graph = store.graph_tables()  # every toolset's: the stage keeps the day's
    out = day_export_stage(
        context.partition_key, sft_samples, rl_samples, trajectories, dialogues, queries, cot_traces,
        [trajectories_rejections, queries_rejections, cot_traces_rejections, dialogues_rejections,
         sft_samples_rejections, rl_samples_rejections], tool_catalog, api_graph)
    yield from results(context, "day_export", out, rejections=False, exports="day_exports")
    store.create_lineage_view()  # over the tables the day's runs wrote
