"""The day's combined export across toolsets (statistics: quality.py) and the lineage view."""

import hashlib
import json
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline import config, provenance, quality, storage
from funreason_pipeline.defs import frames
from funreason_pipeline.defs.automation import DAY_EXPORT_CONDITION
from funreason_pipeline.defs.partitions import OWNERS, day_partitions
from funreason_pipeline.defs.resources import Store, create_lineage_view
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import write_exports
from funreason_pipeline.export.rl import RL_FILE, write_rl_parquet

per_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")
MANIFEST_SCHEMA = {"day": pl.Date, "file": pl.String, "bytes": pl.Int64, "sha256": pl.String}


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
    day = context.partition_key
    samples = [{"sample_id": r["sample_id"], "dialogue_id": r["dialogue_id"], "turn_index": r["turn_index"],
                "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"]),
                "train_from": r["train_from"], "role_models": json.loads(r["role_models"] or "{}"),
                "provenance": r["provenance"]} for r in sft_samples.iter_rows(named=True)]
    out_dir = config.exports_dir(store.database) / day
    paths = write_exports(samples, out_dir, dataset_name=f"funreason-{day}")
    paths["rl"] = write_rl_parquet([json.loads(r) for r in rl_samples["row"].to_list()], out_dir / RL_FILE)
    with storage.connect(store.database) as con:
        stats = quality.quality_stats(quality.from_database(con, day).with_samples(
            samples, [s["messages"][s["train_from"] - 1]["content"] for s in samples]))
    prov = provenance.summary([s["role_models"] for s in samples])
    toolsets = sorted(set(sft_samples["toolset"].to_list())) if sft_samples.height else []
    card = dataset_card(stats, prov, day, toolsets, num_samples=len(samples))
    (out_dir / "README.md").write_text(card)
    create_lineage_view(store.database)
    rows = []
    for p in sorted([*paths.values(), out_dir / "README.md"]):
        data = p.read_bytes()
        rows.append({"day": date.fromisoformat(day), "file": p.name, "bytes": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()})
    df = pl.DataFrame(rows, schema=MANIFEST_SCHEMA)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "samples": len(samples),
        "toolsets": len(toolsets),
        "dialogues": stats["dialogues"],
        "mean_user_turns": stats["mean_user_turns"],
        "mean_calls_per_dialogue": stats["mean_calls_per_dialogue"],
        "dependent_turn_share": stats["dependent_turn_share"],
        "data_dependent_turn_share": stats["data_dependent_turn_share"],
        "rows_per_stage": dg.MetadataValue.json(stats["rows_per_stage"]),
        "rejections": dg.MetadataValue.md(frames.markdown_table(
            pl.DataFrame(stats["rejections_by_stage_and_reason"]), max_rows=40)),
        "tool_coverage_per_toolset": dg.MetadataValue.json(stats["tool_coverage_per_toolset"]),
        "edge_coverage_per_toolset": dg.MetadataValue.json(stats["edge_coverage_per_toolset"]),
        "samples_per_toolset": dg.MetadataValue.json(dict(Counter(sft_samples["toolset"].to_list()))),
        "samples_by_provenance": dg.MetadataValue.json(stats["samples_by_provenance"]),
        "exports": dg.MetadataValue.path(str(out_dir)),
        "card": dg.MetadataValue.md(card[:20000]),
    })
