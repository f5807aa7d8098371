"""The rl_samples stage: per SFT sample a row in verl's layout (export/rl.py), and the partition's
rl.parquet as content (for the rl_exports asset), each row's ground truth scored by the reward module
(reward.py)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.export.rl import rl_export_files, rl_rows, verl_settings
from funreason_pipeline.models import Rejection
from funreason_pipeline.reward import score_each
from funreason_pipeline.stages.inputs import partition_inputs
from funreason_pipeline.stages.output import Check, ExportFiles, StageOutput


def _own_calls(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": c["name"], "arguments": c["arguments"]} for c in json.loads(row["reward_model"]["ground_truth"])["calls"]]


def ground_truth_failures(rows: list[dict[str, Any]]) -> list[str]:
    """Rows whose own ground-truth calls do not score 1.0 with the reward module (must be none). Each
    row is scored from its own text (initial_state, prior_calls), not from the world that built it;
    score_each spares a dialogue's later turns the replay of the earlier ones it has just run."""
    failures = []
    for r, verdict in zip(rows, score_each((r, _own_calls(r)) for r in rows)):
        if verdict.score != 1.0:
            failures.append(f"{r['extra_info']['sample_id']}: {'; '.join(verdict.problems)}")
    return failures


def rl_stage(day: str, toolset: str, sft_samples: pl.DataFrame, trajectories: pl.DataFrame,
             tool_catalog: pl.DataFrame) -> StageOutput:
    """The rows' Parquet file goes to <day>/<toolset>/ under the export root."""
    inp = partition_inputs(toolset, tool_catalog, trajectories)
    scenarios = {tid: t.scenario for tid, t in inp.trajectories.items()}
    samples = [{**r, "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"])}
               for r in sft_samples.iter_rows(named=True)]
    rows, rejections = rl_rows(samples, scenarios, inp.toolset, inp.tools)
    failures = ground_truth_failures(rows)
    the_day = date.fromisoformat(day)
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "sample_id": r["extra_info"]["sample_id"],
                        "dialogue_id": r["extra_info"]["dialogue_id"], "turn_index": r["extra_info"]["turn_index"],
                        "row": json.dumps(r, ensure_ascii=False)} for r in rows], schema=frames.RL_SCHEMA)
    return StageOutput(
        df, {(day, toolset): [Rejection(**r) for r in rejections]},
        {"rows": df.height, "rejections_by_reason": dict(Counter(r["reason"] for r in rejections)),
         "verl_settings": verl_settings(rows)},
        [Check("ground_truth_scores_one", not failures, {"failures": len(failures), "first": "; ".join(failures[:3])})],
        exports=ExportFiles.under(f"{day}/{toolset}", rl_export_files(rows)),
    )
