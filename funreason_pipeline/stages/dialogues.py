"""The dialogues stage (Phase IV): one dialogue per trajectory from its verified turns
(agents/dialogue.build_dialogue), with the models and prompt versions that made it."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from typing import Any

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.provenance import turn_role_models
from funreason_pipeline.stages.output import StageOutput


def dialogues_stage(day: str, toolset: str, trajectories: pl.DataFrame, queries: pl.DataFrame,
                    cot_traces: pl.DataFrame, tool_catalog: pl.DataFrame,
                    error_injection_rate: float = 0.0) -> StageOutput:
    trajs = frames.trajectories_from_frame(trajectories)
    tools = frames.tools_from_frame(tool_catalog)
    query_rows, trace_rows = list(queries.iter_rows(named=True)), list(cot_traces.iter_rows(named=True))
    q: dict[str, dict[int, str]] = {}
    for r in query_rows:
        q.setdefault(r["trajectory_id"], {})[r["turn_index"]] = r["query"]
    tr: dict[str, dict[int, dict[str, Any]]] = {}
    made_by: dict[str, set[tuple[str, str]]] = {}  # trajectory -> (model, prompt version) of its rows
    for r in trace_rows:
        tr.setdefault(r["trajectory_id"], {})[r["turn_index"]] = {
            "passed": r["passed"], "reasoning": r["reasoning"], "calls": json.loads(r["calls"]), "reply": r["reply"],
            "step_reasoning": json.loads(r.get("step_reasoning") or "[]")}
        made_by.setdefault(r["trajectory_id"], set()).add((r["model"], r["prompt_version"]))
    # one (model, prompt version) of the trajectory's queries: the last row's (as it always was)
    query_made_by = {r["trajectory_id"]: (r["model"], r["prompt_version"]) for r in query_rows}
    prov = turn_role_models(query_rows, trace_rows)
    the_day = date.fromisoformat(day)
    rows, rejections = [], []
    for t in trajs:
        d, rej = build_dialogue(t, tools, q.get(t.trajectory_id, {}), tr.get(t.trajectory_id, {}),
                                error_injection_rate, prov.get(t.trajectory_id))
        rejections += rej
        if d is None:
            continue
        by = made_by.get(t.trajectory_id, set()) | {query_made_by.get(t.trajectory_id, ("", ""))}
        rows.append({"day": the_day, "toolset": toolset, "dialogue_id": d["dialogue_id"],
                     "trajectory_id": t.trajectory_id, "messages": frames.dumps(d["messages"]),
                     "tools": frames.dumps(d["tools"]), "n_turns": d["n_turns"], "n_calls": call_count(d["messages"]),
                     "error_tool_response": d["error_tool_response"],
                     "models": frames.dumps(sorted({m for m, _ in by})),
                     "prompt_versions": frames.dumps(sorted({v for _, v in by})),
                     "role_models": frames.dumps(d["role_models"]),
                     "injected_errors": frames.dumps(d["injected_errors"])})
    df = pl.DataFrame(rows, schema=frames.DIALOGUES_SCHEMA)
    return StageOutput(df, {(day, toolset): rejections}, {
        "dialogues": df.height,
        "mean_user_turns": round(float(df["n_turns"].mean()), 2) if df.height else 0.0,
        "mean_calls": round(float(df["n_calls"].mean()), 2) if df.height else 0.0,
        "rejections_by_reason": dict(Counter(r.reason for r in rejections)),
    })


def call_count(messages: list[dict[str, Any]]) -> int:
    return sum(len(m.get("tool_calls", [])) for m in messages if m["role"] == "assistant")
