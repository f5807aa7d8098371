"""The filtered SFT set and its exports (thin: the stage is filtering/samples.py, the statistics
quality.py, the formats and card export/)."""

from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline import config, provenance, quality, storage
from funreason_pipeline.defs import frames
from funreason_pipeline.defs.partitions import (
    DAY_TOOLSET_EXPR,
    OWNERS,
    day_toolset_partitions,
    per_toolset,
    split_key,
)
from funreason_pipeline.defs.resources import Store
from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import write_exports
from funreason_pipeline.filtering.samples import build_samples

SFT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "sample_id": pl.String, "dialogue_id": pl.String,
              "trajectory_id": pl.String, "turn_index": pl.Int64, "messages": pl.String, "tools": pl.String,
              "train_from": pl.Int64, "role_models": pl.String, "provenance": pl.String}


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    # read through the database for the statistics (quality.from_database), not loaded as frames
    deps=["queries", "cot_traces", dg.AssetDep("api_graph", partition_mapping=per_toolset)],
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "polars", "parquet"}, code_version="sft-v2",
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
def sft_samples(context: dg.AssetExecutionContext, store: Store, dialogues: pl.DataFrame,
                trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):  # no annotation: check_specs
    day, toolset = split_key(context)
    ts = toolset_by_name(toolset)
    tools = frames.tools_from_frame(tool_catalog)
    trajs = {t.trajectory_id: t for t in frames.trajectories_from_frame(trajectories)}
    result = build_samples(list(dialogues.iter_rows(named=True)), trajs, ts, tools)
    the_day = date.fromisoformat(day)
    store.replace_rejections("sft_samples", the_day, toolset, result.rejections)
    samples = result.samples
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "sample_id": s["sample_id"],
                        "dialogue_id": s["dialogue_id"], "trajectory_id": s["trajectory_id"],
                        "turn_index": s["turn_index"], "messages": frames.dumps(s["messages"]),
                        "tools": frames.dumps(s["tools"]), "train_from": s["train_from"],
                        "role_models": frames.dumps(s["role_models"]), "provenance": s["provenance"]}
                       for s in samples], schema=SFT_SCHEMA)
    with storage.connect(store.database) as con:  # upstream stages and rejections of this partition
        stats = quality.quality_stats(quality.from_database(con, day, toolset)
                                      .with_samples(samples, result.current_queries()))
    prov = provenance.summary([s["role_models"] for s in samples])
    out_dir = config.exports_dir(store.database) / day / toolset
    write_exports(samples, out_dir, dataset_name=f"funreason-{toolset}-{day}")
    card = dataset_card(stats, prov, day, [toolset])
    (out_dir / "README.md").write_text(card)
    failures = result.replay_failures
    turns_in = stats["turns_sampled"]
    return dg.MaterializeResult(
        value=df, data_version=dg.DataVersion(frames.content_version(df)),
        metadata={
            "samples": df.height,
            "dialogues": stats["dialogues"],
            "yield_turns_to_samples": stats["yield_turns_to_samples"],
            "mean_user_turns": stats["mean_user_turns"],
            "mean_calls": stats["mean_calls_per_dialogue"],
            "dependent_turn_share": stats["dependent_turn_share"],
            "data_dependent_turn_share": stats["data_dependent_turn_share"],
            "tool_coverage": stats["tool_coverage"],
            "edge_coverage": stats["edge_coverage"],
            "near_duplicate_rate": stats["near_duplicate_rate"],
            "samples_by_provenance": dg.MetadataValue.json(stats["samples_by_provenance"]),
            "real_model_share_by_role": dg.MetadataValue.json(
                {r: v["real_model_share"] for r, v in prov["by_role"].items()}),
            "rejections_by_reason": dg.MetadataValue.json(dict(Counter(r.reason for r in result.rejections))),
            "yield_per_stage": dg.MetadataValue.md(frames.markdown_table(pl.DataFrame(stats["yield_per_stage"]))),
            "exports": dg.MetadataValue.path(str(out_dir)),
            "preview": dg.MetadataValue.md(frames.markdown_table(df.select("sample_id", "turn_index", "messages"),
                                                                 max_chars=200)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="every_sample_replays", passed=not failures,
                                metadata={"failures": len(failures), "first": "; ".join(failures[:3]),
                                          "by_reason": dg.MetadataValue.json(dict(Counter(
                                              f.split(": ", 2)[1] for f in failures)))}),
            dg.AssetCheckResult(check_name="yield_above_floor", severity=dg.AssetCheckSeverity.WARN,
                                passed=turns_in == 0 or df.height / turns_in >= 0.5,
                                metadata={"yield": stats["yield_turns_to_samples"]}),
        ],
    )
