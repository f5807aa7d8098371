"""Phases II-IV as Dagster assets (thin): queries and cot_traces (one multi-asset: one concurrent LLM flow
per run), dialogues."""

import json
import time
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.flow import Partition
from funreason_pipeline.agents.flow_runner import run_partitions
from funreason_pipeline.agents.prompts import prompt_version
from funreason_pipeline.defs import frames
from funreason_pipeline.defs.partitions import (
    DAY_TOOLSET_EXPR,
    OWNERS,
    day_toolset_keys,
    day_toolset_partitions,
    per_toolset,
    split_key,
)
from funreason_pipeline.defs.resources import LLMResource, Store
from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.llm import LLMSettings
from funreason_pipeline.provenance import turn_role_models

GROUP = "synthesis"
_SETTINGS = LLMSettings.from_env()


def _llm_version(*roles: str) -> str:
    return "-".join(_SETTINGS.fingerprint(r)[:8] for r in roles)




QUERIES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
                  "advanced_tool": pl.String, "query": pl.String, "prompt_version": pl.String, "model": pl.String,
                  "role_models": pl.String}
COT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "trajectory_id": pl.String, "turn_index": pl.Int64,
              "attempts": pl.Int64, "passed": pl.Boolean, "reasoning": pl.String, "calls": pl.String,
              "critiques": pl.String, "reply": pl.String, "prompt_version": pl.String, "model": pl.String,
              "role_models": pl.String}
DIALOGUES_SCHEMA = {"day": pl.Date, "toolset": pl.String, "dialogue_id": pl.String, "trajectory_id": pl.String,
                    "messages": pl.String, "tools": pl.String, "n_turns": pl.Int64, "n_calls": pl.Int64,
                    "error_tool_response": pl.Boolean, "models": pl.String, "prompt_versions": pl.String,
                    "role_models": pl.String, "injected_errors": pl.String}


class LLMStagesConfig(dg.Config):
    k_max: int = 3  # Phase III attempts per turn


LLM_DESCRIPTION = (
    "One concurrent flow for the LLM stages of every partition in the run (a day's toolsets at once with "
    "BackfillPolicy.single_run): each trajectory goes turn by turn through Phase II and Phase III on one "
    "shared LLM session, so the endpoint stays busy across partitions, phases and turns."
)


@dg.multi_asset(
    outs={
        "queries": dg.AssetOut(
            group_name=GROUP, owners=OWNERS, kinds={"openai", "duckdb", "polars"},
            metadata={"partition_expr": DAY_TOOLSET_EXPR},
            code_version=f"queries-{prompt_version('tooling', 'querying')}-{_llm_version('tooling', 'querying')}",
            description="Phase II: each turn collapsed into an advanced tool (tooling agent) and a hard user "
            "query (querying agent); a query must contain every user-supplied value and no intermediate one."),
        "cot_traces": dg.AssetOut(
            group_name=GROUP, owners=OWNERS, kinds={"openai", "duckdb", "polars"},
            metadata={"partition_expr": DAY_TOOLSET_EXPR},
            code_version=f"cot-{prompt_version('reasoning', 'critic', 'reply', 'system')}-"
                         f"{_llm_version('reasoning', 'critic')}",
            description="Phase III: the guided iterative chain - a reasoner solves each query with the primitive "
            "tools, verified by execution against the ground truth, with a critic's feedback for up to K_max "
            "attempts."),
    },
    ins={"trajectories": dg.AssetIn(), "tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    internal_asset_deps={"queries": {dg.AssetKey("trajectories"), dg.AssetKey("tool_catalog")},
                         "cot_traces": {dg.AssetKey("queries"), dg.AssetKey("trajectories"),
                                        dg.AssetKey("tool_catalog")}},
    # not subsettable: the backfill daemon then requests both in one run (subsettable, it ran queries
    # and cot_traces as two runs: a barrier again). Rerunning cot_traces reruns queries from the cache.
    name="llm_stages", can_subset=False, pool="llm", partitions_def=day_toolset_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=LLM_DESCRIPTION,
)
def llm_stages(context: dg.AssetExecutionContext, config: LLMStagesConfig, store: Store, llm: LLMResource,
               trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):
    """Thin: the run's partitions in, the flow (agents/flow.py), rows and rejections out."""
    keys = day_toolset_keys(context)
    trajs_by = frames.split_by(trajectories, ("day", "toolset"))
    tools_by = frames.split_by(tool_catalog, ("toolset",))
    parts = [Partition(f"{day}|{toolset}", toolset_by_name(toolset),
                       frames.tools_from_frame(tools_by.get((toolset,), tool_catalog.clear())),
                       frames.trajectories_from_frame(trajs_by.get((day, toolset), trajectories.clear())))
             for day, toolset in keys]
    t0 = time.perf_counter()
    # one client for the run; agents/flow_runner.online decides per phase whether it is used
    outcomes = run_partitions(parts, llm.client(store.database), k_max=config.k_max, log=context.log.info)
    seconds = round(time.perf_counter() - t0, 2)
    for name, to_rows, schema in (("queries", _query_rows, QUERIES_SCHEMA), ("cot_traces", _trace_rows, COT_SCHEMA)):
        df, md = _stage_output(name, keys, outcomes, store, to_rows, schema, seconds)
        # one partition: a content version (unchanged output stops the cascade); a range: Dagster's own
        version = dg.DataVersion(frames.content_version(df)) if len(keys) == 1 else None
        yield dg.Output(df, output_name=name, metadata=md, data_version=version)


def _query_rows(day, toolset, stage) -> list[dict]:
    return [{"day": day, "toolset": toolset, "trajectory_id": r.trajectory_id, "turn_index": r.turn_index,
             "advanced_tool": frames.dumps(r.advanced_tool), "query": r.query, "prompt_version": r.prompt_version,
             "model": r.model, "role_models": frames.dumps(r.role_models)} for r in stage.rows]


def _trace_rows(day, toolset, stage) -> list[dict]:
    return [{"day": day, "toolset": toolset, "trajectory_id": r.trajectory_id, "turn_index": r.turn_index,
             "attempts": r.attempts, "passed": r.passed, "reasoning": r.reasoning, "calls": frames.dumps(r.calls),
             "critiques": frames.dumps(r.critiques), "reply": r.reply, "prompt_version": r.prompt_version,
             "model": r.model, "role_models": frames.dumps(r.role_models)} for r in stage.rows]


def _stage_output(name, keys, outcomes, store, to_rows, schema, seconds):
    """One stage's rows over the run's partitions, its rejections written per partition, and metadata
    (per-partition yield and rejections in `per_partition`; the session's figures are the run's)."""
    rows, per_partition, reasons, stats = [], {}, Counter(), None
    for day, toolset in keys:
        o = outcomes[f"{day}|{toolset}"]
        stage = o.queries if name == "queries" else o.traces
        the_day = date.fromisoformat(day)
        store.replace_rejections(name, the_day, toolset, stage.rejections)
        rows += to_rows(the_day, toolset, stage)
        reasons.update(r.reason for r in stage.rejections)
        passed = sum(1 for r in stage.rows if getattr(r, "passed", True))
        per_partition[f"{day}|{toolset}"] = {"rows": len(stage.rows), "passed": passed,
                                             "rejected": len(stage.rejections),
                                             "requests": dict(stage.requests)}
        stats = stage.stats
    df = pl.DataFrame(rows, schema=schema)
    md = {"partitions": len(keys), "rows": df.height, "seconds": seconds,
          "rejections_by_reason": dg.MetadataValue.json(dict(reasons)),
          "per_partition": dg.MetadataValue.json(per_partition),
          **(stats.as_metadata() if stats is not None else {"llm_requests_sent": 0})}
    if name == "cot_traces":
        passed = int(df["passed"].sum()) if df.height else 0
        md.update(passed=passed, pass_rate=round(passed / df.height, 3) if df.height else 0.0,
                  attempts_histogram=dg.MetadataValue.json(dict(Counter(df["attempts"].to_list())))
                  if df.height else {})
    else:
        md["preview"] = dg.MetadataValue.md(frames.markdown_table(df.select("trajectory_id", "turn_index", "query"),
                                                                  max_chars=160))
    return df, md


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
    prov = turn_role_models(queries.iter_rows(named=True), cot_traces.iter_rows(named=True))
    for t in trajs:
        d, rej = build_dialogue(t, tools, q.get(t.trajectory_id, {}), tr.get(t.trajectory_id, {}),
                                config.error_injection_rate, prov.get(t.trajectory_id))
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
                     "prompt_versions": frames.dumps(versions), "role_models": frames.dumps(d["role_models"]),
                     "injected_errors": frames.dumps(d["injected_errors"])})
    store.replace_rejections("dialogues", the_day, toolset, rejections)
    df = pl.DataFrame(rows, schema=DIALOGUES_SCHEMA)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "dialogues": df.height,
        "mean_user_turns": round(float(df["n_turns"].mean()), 2) if df.height else 0.0,
        "mean_calls": round(float(df["n_calls"].mean()), 2) if df.height else 0.0,
        "rejections_by_reason": dg.MetadataValue.json(dict(Counter(r.reason for r in rejections))),
    })
