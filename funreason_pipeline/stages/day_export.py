"""The day_export stage: the day's SFT samples and RL rows of every toolset in one export with a
dataset card and a manifest of its files; also (re)creates the `sample_lineage` view."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from datetime import date
from pathlib import Path

import polars as pl

from funreason_pipeline import frames, provenance, quality, storage
from funreason_pipeline.export.bfcl_docs import bfcl_functions
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import write_exports
from funreason_pipeline.export.rl import RL_FILE, write_rl_parquet
from funreason_pipeline.stages.output import Markdown, StageOutput

LINEAGE_VIEW = """
CREATE OR REPLACE VIEW sample_lineage AS
SELECT s.sample_id, s.day, s.toolset, s.turn_index, s.dialogue_id, d.trajectory_id,
       t.seed AS trajectory_seed, t.scenario, t.graph_version,
       q.query, q.prompt_version AS query_prompt_version, q.model AS query_model,
       c.attempts, c.prompt_version AS cot_prompt_version, c.model AS cot_model,
       d.models AS dialogue_models, d.prompt_versions AS dialogue_prompt_versions
FROM sft_samples s
JOIN dialogues d ON d.day = s.day AND d.toolset = s.toolset AND d.dialogue_id = s.dialogue_id
JOIN trajectories t ON t.day = s.day AND t.toolset = s.toolset AND t.trajectory_id = d.trajectory_id
LEFT JOIN queries q ON q.day = s.day AND q.toolset = s.toolset AND q.trajectory_id = d.trajectory_id
     AND q.turn_index = s.turn_index
LEFT JOIN cot_traces c ON c.day = s.day AND c.toolset = s.toolset AND c.trajectory_id = d.trajectory_id
     AND c.turn_index = s.turn_index
"""


def create_lineage_view(database: str) -> None:
    """One sample's whole lineage: `SELECT * FROM sample_lineage WHERE sample_id = '...'`."""
    with storage.connect(database) as con:
        con.execute(LINEAGE_VIEW)


def _bfcl_docs_by_toolset(database: str, toolsets: set[str]) -> dict[str, dict]:
    if not toolsets:
        return {}
    with storage.connect(database) as con:
        if "tool_catalog" not in storage.table_names(con):
            return {}
        frame = con.execute("SELECT * FROM tool_catalog WHERE toolset IN (SELECT unnest(?))",
                            [sorted(toolsets)]).pl()
    return {ts: bfcl_functions(frames.tools_from_frame(frame.filter(pl.col("toolset") == ts)))
            for ts in sorted(toolsets)}


def day_export_stage(day: str, sft_samples: pl.DataFrame, rl_samples: pl.DataFrame, database: str,
                     exports: str | Path) -> StageOutput:
    """`exports`: the export root (the Store resource's `exports`); the day's files go under <day>."""
    samples = [{"sample_id": r["sample_id"], "dialogue_id": r["dialogue_id"], "turn_index": r["turn_index"],
                "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"]),
                "train_from": r["train_from"], "role_models": json.loads(r["role_models"] or "{}"),
                "provenance": r["provenance"]} for r in sft_samples.iter_rows(named=True)]
    # BFCL's function docs per toolset (the day mixes toolsets): from the tool catalogs
    toolset_of = dict(zip(sft_samples["sample_id"].to_list(), sft_samples["toolset"].to_list())) \
        if sft_samples.height else {}
    docs = _bfcl_docs_by_toolset(database, set(toolset_of.values()))
    for s in samples:
        s["bfcl_functions"] = docs.get(toolset_of[s["sample_id"]])
    out_dir = Path(exports) / day
    paths = write_exports(samples, out_dir, dataset_name=f"funreason-{day}")
    paths["rl"] = write_rl_parquet([json.loads(r) for r in rl_samples["row"].to_list()], out_dir / RL_FILE)
    with storage.connect(database) as con:
        stats = quality.quality_stats(quality.from_database(con, day).with_samples(
            samples, [s["messages"][s["train_from"] - 1]["content"] for s in samples]))
    prov = provenance.summary([s["role_models"] for s in samples])
    toolsets = sorted(set(sft_samples["toolset"].to_list())) if sft_samples.height else []
    card = dataset_card(stats, prov, day, toolsets, num_samples=len(samples))
    (out_dir / "README.md").write_text(card)
    create_lineage_view(database)
    rows = []
    for p in sorted([*paths.values(), out_dir / "README.md"]):
        data = p.read_bytes()
        rows.append({"day": date.fromisoformat(day), "file": p.name, "bytes": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()})
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
        "exports": out_dir,
        "card": Markdown(card[:20000]),
    })
