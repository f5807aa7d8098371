"""The LLM stages (Phases II and III) of every partition in a run as one flow (agents/flow.py), and
their two tables: `queries` and `cot_traces`, each with rejections per partition and metrics.

The model identity is recorded when the run happens, not in the assets' code versions: per row
(`model`, `role_models`) and per output (`llm_fingerprints`: role -> a hash of model, endpoint and
sampling, or "offline"). A different model sends its requests again: the llm_calls cache key
includes the endpoint, the model and the sampling parameters (llm/cache.request_hash).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import date

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.agents.flow import Outcome, Partition, StageResult
from funreason_pipeline.agents.flow_runner import PHASE2_ROLES, PHASE3_ROLES, online, run_partitions
from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.stages.output import Markdown, StageOutput

STAGES = ("queries", "cot_traces")


def llm_stages(keys: list[tuple[str, str]], trajectories: pl.DataFrame, tool_catalog: pl.DataFrame,
               client=None, k_max: int = 3, log: Callable[[str], None] | None = None,
               max_steps: int = 8) -> dict[str, StageOutput]:
    """Phases II and III over the run's (day, toolset) partitions at once on one client (None: every
    role offline; agents/flow_runner.online decides per phase whether it is used)."""
    parts = partitions(keys, trajectories, tool_catalog)
    t0 = time.perf_counter()
    outcomes = run_partitions(parts, client, k_max=k_max, log=log, max_steps=max_steps)
    seconds = round(time.perf_counter() - t0, 2)
    return {name: stage_output(name, keys, outcomes, seconds, client) for name in STAGES}


def partitions(keys: list[tuple[str, str]], trajectories: pl.DataFrame, tool_catalog: pl.DataFrame,
               ) -> list[Partition]:
    """The flow's input per (day, toolset), from the run's trajectories and the toolsets' catalogs."""
    trajs_by = frames.split_by(trajectories, ("day", "toolset"))
    tools_by = frames.split_by(tool_catalog, ("toolset",))
    return [Partition(f"{day}|{toolset}", toolset_by_name(toolset),
                      frames.tools_from_frame(tools_by.get((toolset,), tool_catalog.clear())),
                      frames.trajectories_from_frame(trajs_by.get((day, toolset), trajectories.clear())))
            for day, toolset in keys]


def query_rows(day: date, toolset: str, stage: StageResult) -> list[dict]:
    return [{"day": day, "toolset": toolset, "trajectory_id": r.trajectory_id, "turn_index": r.turn_index,
             "advanced_tool": frames.dumps(r.advanced_tool), "query": r.query, "prompt_version": r.prompt_version,
             "model": r.model, "role_models": frames.dumps(r.role_models)} for r in stage.rows]


def trace_rows(day: date, toolset: str, stage: StageResult) -> list[dict]:
    return [{"day": day, "toolset": toolset, "trajectory_id": r.trajectory_id, "turn_index": r.turn_index,
             "attempts": r.attempts, "passed": r.passed, "reasoning": r.reasoning, "calls": frames.dumps(r.calls),
             "critiques": frames.dumps(r.critiques), "reply": r.reply, "prompt_version": r.prompt_version,
             "model": r.model, "role_models": frames.dumps(r.role_models),
             "step_reasoning": frames.dumps(r.step_reasoning)} for r in stage.rows]


_SHAPE = {"queries": (query_rows, frames.QUERIES_SCHEMA, PHASE2_ROLES, lambda o: o.queries),
          "cot_traces": (trace_rows, frames.COT_SCHEMA, PHASE3_ROLES, lambda o: o.traces)}


def fingerprints(client, roles: tuple[str, ...]) -> dict[str, str]:
    """role -> what determines its outputs (model, endpoint, sampling) as a hash; "offline" when the
    phase ran without a model."""
    if not online(client, roles):
        return {r: "offline" for r in roles}
    return {r: client.settings.fingerprint(r) for r in roles}


def stage_output(name: str, keys: list[tuple[str, str]], outcomes: dict[str, Outcome], seconds: float,
                 client=None) -> StageOutput:
    """One stage's rows over the run's partitions, its rejections per partition, and metrics
    (per-partition yield and rejections in `per_partition`; the session's figures are the run's)."""
    to_rows, schema, roles, pick = _SHAPE[name]
    rows, rejections, per_partition, reasons, stats = [], {}, {}, Counter(), None
    for day, toolset in keys:
        stage = pick(outcomes[f"{day}|{toolset}"])
        rejections[(day, toolset)] = stage.rejections
        rows += to_rows(date.fromisoformat(day), toolset, stage)
        reasons.update(r.reason for r in stage.rejections)
        passed = sum(1 for r in stage.rows if getattr(r, "passed", True))
        per_partition[f"{day}|{toolset}"] = {"rows": len(stage.rows), "passed": passed,
                                             "rejected": len(stage.rejections),
                                             "requests": dict(stage.requests)}
        stats = stage.stats
    df = pl.DataFrame(rows, schema=schema)
    md = {"partitions": len(keys), "rows": df.height, "seconds": seconds,
          "rejections_by_reason": dict(reasons), "per_partition": per_partition,
          **(stats.as_metadata() if stats is not None else {"llm_requests_sent": 0}),
          "llm_fingerprints": fingerprints(client, roles)}
    if name == "cot_traces":
        passed = int(df["passed"].sum()) if df.height else 0
        md.update(passed=passed, pass_rate=round(passed / df.height, 3) if df.height else 0.0,
                  attempts_histogram=dict(Counter(df["attempts"].to_list())) if df.height else {})
    else:
        md["preview"] = Markdown(frames.markdown_table(df.select("trajectory_id", "turn_index", "query"),
                                                       max_chars=160))
    return StageOutput(df, rejections, md)
