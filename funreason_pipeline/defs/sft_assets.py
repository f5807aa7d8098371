"""The filtered SFT set, its rejections and its export files (thin: the stage is stages/sft.py)."""

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
from funreason_pipeline.stages.sft import sft_stage

GROUP = "sft"
VERSION = "sft-v2"
# the statistics' inputs: the partition's upstream rows and the earlier stages' rejections
UPSTREAM_REJECTIONS = ("trajectories_rejections", "queries_rejections", "cot_traces_rejections",
                       "dialogues_rejections")
INS = ("dialogues", "trajectories", "tool_catalog", "api_graph", "queries", "cot_traces", *UPSTREAM_REJECTIONS)


@dg.multi_asset(
    name="sft_samples",
    outs={
        "sft_samples": table_out(
            GROUP, VERSION, {"python", "duckdb", "polars"},
            "Verified, deduplicated, decontaminated SFT samples (one per user turn; earlier turns as "
            "context)."),
        "sft_samples_rejections": rejections_out("sft_samples", GROUP, VERSION),
        "sft_exports": exports_out(
            "sft_exports", GROUP, VERSION, "The samples' exports under <exports>/<day>/<toolset>/ (OpenAI/TRL, "
            "ShareGPT + LLaMA-Factory dataset_info, BFCL prompting, Parquet) with a dataset card (README.md)."),
    },
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset),
         "api_graph": dg.AssetIn(partition_mapping=per_toolset)},
    internal_asset_deps=stage_deps("sft_samples", INS, exports="sft_exports"),
    partitions_def=day_toolset_partitions, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
    check_specs=[
        dg.AssetCheckSpec("every_sample_replays", asset="sft_samples", blocking=True,
                          description="Re-executing each sample's calls from its trajectory's scenario reproduces its "
                          "tool messages (injected errors known as such), and every turn ends in the ground "
                          "truth's state with all its results (verify.replay.replay_sample)."),
        dg.AssetCheckSpec("yield_above_floor", asset="sft_samples",
                          description="At least half of the trajectories' turns end as samples (warning)."),
    ],
)
def sft_samples(context: dg.AssetExecutionContext, processes: Processes, dialogues: pl.DataFrame,
                trajectories: pl.DataFrame, tool_catalog: pl.DataFrame, api_graph: pl.DataFrame,
                queries: pl.DataFrame, cot_traces: pl.DataFrame, trajectories_rejections: pl.DataFrame,
                queries_rejections: pl.DataFrame, cot_traces_rejections: pl.DataFrame,
                dialogues_rejections: pl.DataFrame):
    out = per_partition(processes, sft_stage, partition_calls(
        day_toolset_keys(context),
        {"dialogues": dialogues, "trajectories": trajectories, "queries": queries, "cot_traces": cot_traces,
         "rejections": [trajectories_rejections, queries_rejections, cot_traces_rejections, dialogues_rejections]},
        {"tool_catalog": tool_catalog, "api_graph": api_graph}))
    yield from results(context, "sft_samples", out, exports="sft_exports")
