"""The data contract's tables: their schemas, row <-> model conversions (JSON columns hold JSON
text) and content hashing. Pure: the stages (stages/) build these frames, the assets store them."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import polars as pl

from funreason_pipeline.models import Edge, ToolSpec, Trajectory

TOOL_CATALOG_SCHEMA = {
    "toolset": pl.String, "class_name": pl.String, "tool_name": pl.String, "method": pl.String,
    "description": pl.String, "parameters": pl.String, "response": pl.String,
}
API_GRAPH_SCHEMA = {
    "toolset": pl.String, "src_tool": pl.String, "dst_tool": pl.String, "kind": pl.String,
    "param": pl.String, "evidence": pl.String, "graph_version": pl.String,
}
TRAJECTORIES_SCHEMA = {
    "day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "seed": pl.Int64,
    "scenario": pl.String, "turns": pl.String, "n_turns": pl.Int64, "n_calls": pl.Int64,
    "targets": pl.String, "graph_version": pl.String,
}
QUERIES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
                  "advanced_tool": pl.String, "query": pl.String, "prompt_version": pl.String, "model": pl.String,
                  "role_models": pl.String}
COT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
              "attempts": pl.Int64, "passed": pl.Boolean, "reasoning": pl.String, "calls": pl.String,
              "critiques": pl.String, "reply": pl.String, "prompt_version": pl.String, "model": pl.String,
              "role_models": pl.String, "step_reasoning": pl.String}
DIALOGUES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "dialogue_id": pl.String, "trajectory_id": pl.String,
                    "messages": pl.String, "tools": pl.String, "n_turns": pl.Int64, "n_calls": pl.Int64,
                    "error_tool_response": pl.Boolean, "models": pl.String, "prompt_versions": pl.String,
                    "role_models": pl.String, "injected_errors": pl.String}
SFT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "sample_id": pl.String, "dialogue_id": pl.String,
              "trajectory_id": pl.String, "turn_index": pl.Int64, "messages": pl.String, "tools": pl.String,
              "train_from": pl.Int64, "role_models": pl.String, "provenance": pl.String}
RL_SCHEMA = {"day": pl.Date, "toolset": pl.String, "sample_id": pl.String, "dialogue_id": pl.String,
             "turn_index": pl.Int64, "row": pl.String}
# the `rejections` table: every dropped item with its stage and reason (defs/rejections_io.py stores it)
REJECTIONS_SCHEMA = {"day": pl.Date, "toolset": pl.String, "stage": pl.String, "item_id": pl.String,
                     "reason": pl.String, "detail": pl.String}
MANIFEST_SCHEMA = {"day": pl.Date, "file": pl.String, "bytes": pl.Int64, "sha256": pl.String}


def dumps(value) -> str:
    # key order is kept: environments are order-sensitive (a directory listing follows the
    # scenario's insertion order), so sorting keys would change what a replay sees
    return json.dumps(value, ensure_ascii=False)


def catalog_frame(toolset: str, tools: list[ToolSpec]) -> pl.DataFrame:
    return pl.DataFrame([
        {"toolset": toolset, "class_name": t.class_name, "tool_name": t.name, "method": t.method,
         "description": t.description, "parameters": dumps(t.parameters),
         "response": dumps(t.response) if t.response is not None else None}
        for t in tools
    ], schema=TOOL_CATALOG_SCHEMA)


def tools_from_frame(df: pl.DataFrame) -> list[ToolSpec]:
    return [
        ToolSpec(name=r["tool_name"], class_name=r["class_name"], method=r["method"],
                 description=r["description"], parameters=json.loads(r["parameters"]),
                 response=json.loads(r["response"]) if r["response"] else None)
        for r in df.iter_rows(named=True)
    ]


def graph_frame(toolset: str, edges: list[Edge], graph_version: str) -> pl.DataFrame:
    return pl.DataFrame([
        {"toolset": toolset, "src_tool": e.src_tool, "dst_tool": e.dst_tool, "kind": e.kind,
         "param": e.param, "evidence": e.evidence, "graph_version": graph_version}
        for e in edges
    ], schema=API_GRAPH_SCHEMA)


def edges_from_frame(df: pl.DataFrame) -> list[Edge]:
    """Edges as stored; a data edge's response field is kept in its evidence (`field`), which the
    sampler needs to feed parameters whose names differ from the field (`result` -> `a`)."""
    return [Edge(src_tool=r["src_tool"], dst_tool=r["dst_tool"], kind=r["kind"], param=r["param"],
                 src_field=json.loads(r["evidence"]).get("field") if r["kind"] == "data" else None,
                 evidence=r["evidence"]) for r in df.iter_rows(named=True)]


def trajectories_frame(day: date, trajs: list[Trajectory], graph_version: str) -> pl.DataFrame:
    return pl.DataFrame([
        {"day": day, "toolset": t.toolset, "trajectory_id": t.trajectory_id, "seed": t.seed,
         "scenario": dumps(t.scenario), "turns": dumps([turn.model_dump() for turn in t.turns]),
         "n_turns": len(t.turns), "n_calls": len(t.flat_calls()),
         "targets": dumps([turn.target_tool for turn in t.turns]), "graph_version": graph_version}
        for t in trajs
    ], schema=TRAJECTORIES_SCHEMA)


def trajectories_from_frame(df: pl.DataFrame) -> list[Trajectory]:
    return [
        Trajectory(trajectory_id=r["trajectory_id"], toolset=r["toolset"], seed=r["seed"],
                   scenario=json.loads(r["scenario"]), turns=json.loads(r["turns"]))
        for r in df.iter_rows(named=True)
    ]


def markdown_table(df: pl.DataFrame, max_rows: int = 8, max_chars: int = 80) -> str:
    """A small markdown preview of a frame for the Dagster UI."""
    if df.height == 0:
        return "_empty_"
    cols = df.columns
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in df.head(max_rows).iter_rows():
        cells = [str(v).replace("|", "\\|").replace("\n", " ")[:max_chars] for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


LINEAGE_COLUMNS = ("prompt_version", "prompt_versions", "model", "models", "role_models")


def content_version(df: pl.DataFrame) -> str:
    """A data version from the frame's content, so an unchanged output does not mark descendants stale.

    Lineage columns (which prompt/model made a row) are left out: a prompt edit that changes no
    output should not re-run everything below it. The lineage itself stays exact in each stage's
    own rows (see the `sample_lineage` view).
    """
    body = df.drop([c for c in LINEAGE_COLUMNS if c in df.columns])
    return hashlib.sha256(body.write_ndjson().encode()).hexdigest()[:16]


def split_by(df: pl.DataFrame, columns: tuple[str, ...]) -> dict[tuple, pl.DataFrame]:
    """Rows grouped by `columns` (dates as ISO text), in their stored order: one frame per partition."""
    if df.height == 0:
        return {}
    out = {}
    for key, part in df.partition_by(list(columns), as_dict=True, maintain_order=True).items():
        out[tuple(v.isoformat() if hasattr(v, "isoformat") else v for v in key)] = part
    return out
