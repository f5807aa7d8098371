"""Phases II-IV as Dagster assets (thin): queries, cot_traces, dialogues."""

import json
import time
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.phase2 import run_phase2
from funreason_pipeline.agents.phase3 import run_phase3
from funreason_pipeline.agents.prompts import prompt_version
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
from funreason_pipeline.llm import LLMClient, LLMSettings

GROUP = "synthesis"
_SETTINGS = LLMSettings.from_env()


def _llm_version(*roles: str) -> str:
    return "-".join(_SETTINGS.fingerprint(r)[:8] for r in roles)


def _client(store: Store, *roles: str) -> LLMClient | None:
    settings = LLMSettings.from_env()
    if any(settings.is_offline(r) for r in roles):
        return None
    return LLMClient(settings, db_path=store.database)


def _stats_meta(stats) -> dict:
    return stats.as_metadata() if stats is not None else {"llm_requests_sent": 0}


QUERIES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
                  "advanced_tool": pl.String, "query": pl.String, "prompt_version": pl.String, "model": pl.String}
COT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
              "attempts": pl.Int64, "passed": pl.Boolean, "reasoning": pl.String, "calls": pl.String,
              "critiques": pl.String, "reply": pl.String, "prompt_version": pl.String, "model": pl.String}
DIALOGUES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "dialogue_id": pl.String, "trajectory_id": pl.String,
                    "messages": pl.String, "tools": pl.String, "n_turns": pl.Int64, "n_calls": pl.Int64,
                    "error_tool_response": pl.Boolean, "models": pl.String, "prompt_versions": pl.String}


class QueriesConfig(dg.Config):
    pass


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    group_name=GROUP, owners=OWNERS, kinds={"openai", "duckdb", "polars"}, pool="llm",
    code_version=f"queries-{prompt_version('tooling', 'querying')}-{_llm_version('tooling', 'querying')}",
    description="Phase II: each turn collapsed into an advanced tool (tooling agent) and a hard user query "
    "(querying agent); a query must contain every user-supplied value and no intermediate one.",
)
def queries(context: dg.AssetExecutionContext, store: Store, trajectories: pl.DataFrame,
            tool_catalog: pl.DataFrame) -> dg.MaterializeResult[pl.DataFrame]:
    day, toolset = split_key(context)
    trajs = frames.trajectories_from_frame(trajectories)
    tools = frames.tools_from_frame(tool_catalog)
    result = run_phase2(trajs, tools, _client(store, "tooling", "querying"))
    the_day = date.fromisoformat(day)
    store.replace_rejections("queries", the_day, toolset, result.rejections)
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "trajectory_id": r.trajectory_id,
                        "turn_index": r.turn_index, "advanced_tool": frames.dumps(r.advanced_tool),
                        "query": r.query, "prompt_version": r.prompt_version, "model": r.model}
                       for r in result.rows], schema=QUERIES_SCHEMA)
    turns_in = sum(len(t.turns) for t in trajs)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "turns_in": turns_in, "queries": df.height,
        "yield": round(df.height / turns_in, 3) if turns_in else 0.0,
        "rejections_by_reason": dg.MetadataValue.json(dict(Counter(r.reason for r in result.rejections))),
        **_stats_meta(result.stats),
        "preview": dg.MetadataValue.md(frames.markdown_table(df.select("trajectory_id", "turn_index", "query"),
                                                             max_chars=160)),
    })


class CotConfig(dg.Config):
    k_max: int = 3


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    group_name=GROUP, owners=OWNERS, kinds={"openai", "duckdb", "polars"}, pool="llm",
    code_version=f"cot-{prompt_version('reasoning', 'critic', 'reply', 'system')}-"
                 f"{_llm_version('reasoning', 'critic')}",
    description="Phase III: the guided iterative chain - a reasoner solves each query with the primitive "
    "tools, verified by execution against the ground truth, with a critic's feedback for up to K_max attempts.",
)
def cot_traces(context: dg.AssetExecutionContext, config: CotConfig, store: Store, trajectories: pl.DataFrame,
               queries: pl.DataFrame, tool_catalog: pl.DataFrame) -> dg.MaterializeResult[pl.DataFrame]:
    day, toolset = split_key(context)
    ts = toolset_by_name(toolset)
    trajs = frames.trajectories_from_frame(trajectories)
    tools = frames.tools_from_frame(tool_catalog)
    qmap = {(r["trajectory_id"], r["turn_index"]): {"query": r["query"],
                                                    "advanced_tool": json.loads(r["advanced_tool"])}
            for r in queries.iter_rows(named=True)}
    t0 = time.perf_counter()
    result = run_phase3(ts, tools, trajs, qmap, k_max=config.k_max, client=_client(store, "reasoning", "critic"),
                        log=context.log.info)
    the_day = date.fromisoformat(day)
    store.replace_rejections("cot_traces", the_day, toolset, result.rejections)
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "trajectory_id": r.trajectory_id,
                        "turn_index": r.turn_index, "attempts": r.attempts, "passed": r.passed,
                        "reasoning": r.reasoning, "calls": frames.dumps(r.calls), "critiques": frames.dumps(r.critiques),
                        "reply": r.reply, "prompt_version": r.prompt_version, "model": r.model}
                       for r in result.rows], schema=COT_SCHEMA)
    passed = int(df["passed"].sum()) if df.height else 0
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "queries_in": queries.height, "traces": df.height, "passed": passed,
        "pass_rate": round(passed / df.height, 3) if df.height else 0.0,
        "attempts_histogram": dg.MetadataValue.json(dict(Counter(df["attempts"].to_list()))) if df.height else {},
        "seconds": round(time.perf_counter() - t0, 2),
        **_stats_meta(result.stats),
    })


class DialoguesConfig(dg.Config):
    error_injection_rate: float = 0.0


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    group_name=GROUP, owners=OWNERS, kinds={"python", "duckdb", "polars"}, code_version="dialogues-v1",
    description="Phase IV: one multi-turn dialogue per trajectory in OpenAI chat format (system with tools; per "
    "turn user -> assistant reasoning + tool_calls -> tool results -> assistant reply), verified turns only.",
)
def dialogues(context: dg.AssetExecutionContext, config: DialoguesConfig, store: Store,
              trajectories: pl.DataFrame, queries: pl.DataFrame, cot_traces: pl.DataFrame,
              tool_catalog: pl.DataFrame) -> dg.MaterializeResult[pl.DataFrame]:
    day, toolset = split_key(context)
    trajs = frames.trajectories_from_frame(trajectories)
    tools = frames.tools_from_frame(tool_catalog)
    q: dict[str, dict[int, str]] = {}
    for r in queries.iter_rows(named=True):
        q.setdefault(r["trajectory_id"], {})[r["turn_index"]] = r["query"]
    tr: dict[str, dict[int, dict]] = {}
    meta_rows: dict[str, set] = {}
    for r in cot_traces.iter_rows(named=True):
        tr.setdefault(r["trajectory_id"], {})[r["turn_index"]] = {
            "passed": r["passed"], "reasoning": r["reasoning"], "calls": json.loads(r["calls"]), "reply": r["reply"]}
        meta_rows.setdefault(r["trajectory_id"], set()).add((r["model"], r["prompt_version"]))
    qmeta = {(r["trajectory_id"]): (r["model"], r["prompt_version"]) for r in queries.iter_rows(named=True)}
    rows, rejections = [], []
    the_day = date.fromisoformat(day)
    for t in trajs:
        d, rej = build_dialogue(t, tools, q.get(t.trajectory_id, {}), tr.get(t.trajectory_id, {}),
                                config.error_injection_rate)
        rejections += rej
        if d is None:
            continue
        n_calls = sum(len(m.get("tool_calls", [])) for m in d["messages"] if m["role"] == "assistant")
        models = sorted({m for m, _ in meta_rows.get(t.trajectory_id, set())} | {qmeta.get(t.trajectory_id, ("", ""))[0]})
        versions = sorted({v for _, v in meta_rows.get(t.trajectory_id, set())} | {qmeta.get(t.trajectory_id, ("", ""))[1]})
        rows.append({"day": the_day, "toolset": toolset, "dialogue_id": d["dialogue_id"],
                     "trajectory_id": t.trajectory_id, "messages": frames.dumps(d["messages"]),
                     "tools": frames.dumps(d["tools"]), "n_turns": d["n_turns"], "n_calls": n_calls,
                     "error_tool_response": d["error_tool_response"], "models": frames.dumps(models),
                     "prompt_versions": frames.dumps(versions)})
    store.replace_rejections("dialogues", the_day, toolset, rejections)
    df = pl.DataFrame(rows, schema=DIALOGUES_SCHEMA)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "dialogues": df.height,
        "mean_user_turns": round(float(df["n_turns"].mean()), 2) if df.height else 0.0,
        "mean_calls": round(float(df["n_calls"].mean()), 2) if df.height else 0.0,
        "rejections_by_reason": dg.MetadataValue.json(dict(Counter(r.reason for r in rejections))),
    })
