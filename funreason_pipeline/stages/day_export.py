"""The day_export stage: the day's SFT samples and RL rows of every toolset in one export with a
dataset card (as content, for the day_exports asset) and a manifest of its files (the table)."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import date

import polars as pl

from funreason_pipeline import frames, provenance, quality
from funreason_pipeline.export.bfcl_docs import bfcl_functions
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import render_exports
from funreason_pipeline.export.rl import TOOL_CONFIG_FILE, rl_export_files, verl_card_section, verl_settings
from funreason_pipeline.stages.inputs import stacked
from funreason_pipeline.stages.output import ExportFiles, Markdown, StageOutput


def _bfcl_docs_by_toolset(tool_catalog: pl.DataFrame, toolsets: set[str]) -> dict[str, dict]:
    if not toolsets or tool_catalog.height == 0:
        return {}
    return {ts: bfcl_functions(frames.tools_from_frame(tool_catalog.filter(pl.col("toolset") == ts)))
            for ts in sorted(toolsets)}


def day_export_stage(day: str, sft_samples: pl.DataFrame, rl_samples: pl.DataFrame, trajectories: pl.DataFrame,
                     dialogues: pl.DataFrame, queries: pl.DataFrame, cot_traces: pl.DataFrame,
                     rejections: list[pl.DataFrame], tool_catalog: pl.DataFrame, api_graph: pl.DataFrame,
                     ) -> StageOutput:
    """The day's rows of every stage and every stage's rejections (one frame each) are for the
    statistics; `tool_catalog` and `api_graph` hold (at least) the day's toolsets. The files go to
    <day>/ under the export root."""
    samples = [{"sample_id": r["sample_id"], "dialogue_id": r["dialogue_id"], "turn_index": r["turn_index"],
                "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"]),
                "train_from": r["train_from"], "role_models": json.loads(r["role_models"] or "{}"),
                "provenance": r["provenance"]} for r in sft_samples.iter_rows(named=True)]
    # BFCL's function docs per toolset (the day mixes toolsets): from the tool catalogs
    toolset_of = dict(zip(sft_samples["sample_id"].to_list(), sft_samples["toolset"].to_list())) \
        if sft_samples.height else {}
    docs = _bfcl_docs_by_toolset(tool_catalog, set(toolset_of.values()))
    for s in samples:
        s["bfcl_functions"] = docs.get(toolset_of[s["sample_id"]])
    files = render_exports(samples, dataset_name=f"funreason-{day}")
    rl_rows = [json.loads(r) for r in rl_samples["row"].to_list()]
    files.update(rl_export_files(rl_rows))
    q = quality.from_frames(trajectories=trajectories, tool_catalog=tool_catalog, api_graph=api_graph,
                            rejections=stacked(rejections), dialogues=dialogues, queries=queries, cot_traces=cot_traces,
                            sft_samples=sft_samples)
    stats = quality.quality_stats(q.with_samples(
        samples, [s["messages"][s["train_from"] - 1]["content"] for s in samples]))
    prov = provenance.summary([s["role_models"] for s in samples])
    toolsets = sorted(set(sft_samples["toolset"].to_list())) if sft_samples.height else []
    card = dataset_card(stats, prov, day, toolsets, num_samples=len(samples),
                        rl_section=verl_card_section(verl_settings(rl_rows), TOOL_CONFIG_FILE in files))
    files["README.md"] = card.encode("utf-8")
    rows = [{"day": date.fromisoformat(day), "file": name, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            for name, data in sorted(files.items())]
    df = pl.DataFrame(rows, schema=frames.MANIFEST_SCHEMA)
    return StageOutput(df, metrics={
        "samples": len(samples),
        "toolsets": len(toolsets),
        "dialogues": stats["dialogues"],
        "mean_user_turns": stats["mean_user_turns"],
        "mean_calls_per_dialogue": stats["mean_calls_per_dialogue"],
        "dependent_turn_share": stats["dependent_turn_share"],
        "data_dependent_turn_share": stats["data_dependent_turn_share"],
        "rows_per_stage": stats["rows_per_stage"],
        "rejections": Markdown(frames.markdown_table(pl.DataFrame(stats["rejections_by_stage_and_reason"]),
                                                     max_rows=40)),
        "tool_coverage_per_toolset": stats["tool_coverage_per_toolset"],
        "edge_coverage_per_toolset": stats["edge_coverage_per_toolset"],
        "samples_per_toolset": dict(Counter(sft_samples["toolset"].to_list())),
        "samples_by_provenance": stats["samples_by_provenance"],
        "mean_steps_per_turn": stats["steps"]["mean_steps_per_turn"],
        "mean_calls_per_step": stats["steps"]["mean_calls_per_step"],
        "multi_step_turn_share": stats["steps"]["multi_step_turn_share"],
        "card": Markdown(card[:20000]),
    }, exports=ExportFiles.under(day, files))
