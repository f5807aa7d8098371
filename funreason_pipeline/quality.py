"""Quality statistics, computed in one place for the assets' metadata, the dataset cards and
`cli summary`: yield per stage, rejections by stage and reason, user turns and calls per dialogue,
dependent turns (Q4 of docs/benchmarks.md), steps per turn and calls per step, tool and edge coverage (Q3),
near-duplicate rate (Q5), provenance.

`quality_stats` is pure over a `QualityInput`; `from_database` fills one from the stage tables
(optionally one day and one toolset), so a partition, a day and the whole database are measured
the same way.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import duckdb
import polars as pl

from funreason_pipeline import provenance, storage
from funreason_pipeline.export.steps import step_counts, step_figures
from funreason_pipeline.filtering.filters import near_duplicate_rate
from funreason_pipeline.matching.formats import format_share
from funreason_pipeline.models import dependent_turn_counts, edge_usage, toolset_tool_of

STAGE_TABLES = ("trajectories", "queries", "cot_traces", "dialogues", "sft_samples")


@dataclass
class QualityInput:
    trajectories: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)  # (toolset, turns)
    tools: dict[str, set[str]] = field(default_factory=dict)  # toolset -> tool names
    # toolset -> tool -> parameter schemas (JSON Schema `properties`), for the argument format share
    parameters: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    edges: dict[str, set[tuple[str, str]]] = field(default_factory=dict)  # toolset -> (src, dst)
    unusable: dict[str, set[str]] = field(default_factory=dict)  # toolset -> tools declared unusable
    dialogues: list[tuple[int, int, bool]] = field(default_factory=list)  # (user turns, calls, injected error)
    turn_steps: list[list[int]] = field(default_factory=list)  # per dialogue turn: calls of each step
    rows_per_stage: dict[str, int] = field(default_factory=dict)
    cot_passed: int = 0
    rejections: list[tuple[str, str]] = field(default_factory=list)  # (stage, reason)
    sample_role_models: list[dict[str, str]] = field(default_factory=list)
    sample_queries: list[str] | None = None  # for the near-duplicate rate (None: not measured)
    llm_tokens: tuple[int, int] | None = None

    def with_samples(self, samples: list[Mapping[str, Any]], queries: list[str] | None = None) -> QualityInput:
        """The same input with the stage's own samples (before they reach the database)."""
        return replace(self, sample_role_models=[dict(s.get("role_models") or {}) for s in samples],
                       sample_queries=queries, rows_per_stage={**self.rows_per_stage, "sft_samples": len(samples)})

    def with_rejections(self, stage: str, reasons: list[str]) -> QualityInput:
        """The same input with `stage`'s rejections replaced by the stage's own (before they reach the
        database; the input then holds this partition's, whichever order the two are written in)."""
        return replace(self, rejections=[x for x in self.rejections if x[0] != stage] + [(stage, r) for r in reasons])


def _share(part: int, whole: int) -> float:
    return round(part / whole, 3) if whole else 0.0


def trajectory_quality(trajectories: list[list[dict[str, Any]]], edges: set[tuple[str, str]],
                       unusable: set[str] = frozenset()) -> dict[str, Any]:
    """Q3/Q4 over one toolset's trajectories (stored turns): dependent turns, and the graph edges
    some call used (exercised), of those not touching an unusable tool; Phase I's checks read this."""
    turns = [t for ts in trajectories for t in ts]
    dependent, data_dependent = dependent_turn_counts(turns)
    used, countable = edge_usage(edges, trajectories, unusable)
    return {"turns": len(turns), "dependent_turns": dependent, "data_dependent_turns": data_dependent,
            "edges_exercised": len(used), "edges": len(countable),
            "edge_coverage": round(len(used) / len(countable), 3) if countable else 1.0,
            "edges_not_exercised": sorted(f"{a} -> {b}" for a, b in countable - used)}


def quality_stats(q: QualityInput) -> dict[str, Any]:
    turns = [t for _, ts in q.trajectories for t in ts]
    dependent, data_dependent = dependent_turn_counts(turns)
    n_samples = q.rows_per_stage.get("sft_samples", len(q.sample_role_models))
    toolsets = sorted({ts for ts, _ in q.trajectories})
    targets = {(ts, t["target_tool"]) for ts, turns_ in q.trajectories for t in turns_}
    all_tools = {(ts, name) for ts in toolsets for name in q.tools.get(ts, set())}
    never = sorted(f"{ts}/{name}" for ts, name in all_tools - targets)
    declared = sorted(f"{ts}/{name}" for ts, name in all_tools - targets if name in q.unusable.get(ts, set()))
    per_toolset_tools = {ts: _share(len({t for s, t in targets if s == ts} & q.tools.get(ts, set())),
                                    len(q.tools.get(ts, set()))) for ts in toolsets if q.tools.get(ts)}
    edge_counts = {}
    for ts in toolsets:
        tq = trajectory_quality([t for s, t in q.trajectories if s == ts], q.edges.get(ts, set()),
                                q.unusable.get(ts, set()))
        edge_counts[ts] = (tq["edges_exercised"], tq["edges"])
    exercised, n_edges = sum(u for u, _ in edge_counts.values()), sum(n for _, n in edge_counts.values())
    n_dlg = len(q.dialogues)
    stats: dict[str, Any] = {
        "samples": n_samples,
        "dialogues": n_dlg,
        "turns_sampled": len(turns),
        "yield_turns_to_samples": _share(n_samples, len(turns)),
        "mean_user_turns": round(sum(d[0] for d in q.dialogues) / n_dlg, 2) if n_dlg else 0.0,
        "mean_calls_per_dialogue": round(sum(d[1] for d in q.dialogues) / n_dlg, 2) if n_dlg else 0.0,
        # Q4: a turn is dependent when a call uses an earlier result or needs an earlier call's state
        "dependent_turn_share": _share(dependent, len(turns)),
        "data_dependent_turn_share": _share(data_dependent, len(turns)),
        "tool_coverage": _share(len(targets & all_tools), len(all_tools)),
        # Q3: share of graph edges a call used (an earlier call's result or state)
        "edge_coverage": _share(exercised, n_edges),
        "dialogues_with_injected_error": sum(1 for d in q.dialogues if d[2]),
    }
    # steps of the dialogues' turns: the calls a model emits at once (export/steps.py)
    stats["steps"] = step_figures(q.turn_steps)
    in_fmt, with_fmt = format_share((q.parameters.get(ts, {}).get(c["tool"], {}), c.get("arguments") or {})
                                    for ts, turns_ in q.trajectories for t in turns_ for c in t["calls"])
    # share of argument values with a described format (YYYY-MM-DD, MM/YYYY, ...) that are in it; target 1.0
    stats["argument_format_share"] = round(in_fmt / with_fmt, 3) if with_fmt else 1.0
    stats["arguments_with_a_format"] = with_fmt
    if q.sample_queries is not None:
        stats["near_duplicate_rate"] = near_duplicate_rate(q.sample_queries)
    stats["yield_per_stage"] = [
        {"stage": "trajectories (turns)", "items": len(turns)},
        {"stage": "queries", "items": q.rows_per_stage.get("queries", 0)},
        {"stage": "cot_traces passed", "items": q.cot_passed},
        {"stage": "dialogue turns", "items": sum(d[0] for d in q.dialogues)},
        {"stage": "sft_samples", "items": n_samples},
    ]
    stats["rows_per_stage"] = {t: q.rows_per_stage.get(t, 0) for t in STAGE_TABLES}
    stats["rejections_by_stage_and_reason"] = [
        {"stage": s, "reason": r, "count": n}
        for (s, r), n in sorted(Counter(q.rejections).items(), key=lambda x: (x[0][0], -x[1], x[0][1]))]
    stats["tool_coverage_per_toolset"] = per_toolset_tools
    stats["edge_coverage_per_toolset"] = {ts: _share(u, n) for ts, (u, n) in edge_counts.items() if n}
    stats["tools"] = {"targeted": len(targets & all_tools), "total": len(all_tools), "never_targeted": never,
                      "declared_unusable": declared}
    stats["edges"] = {"exercised": exercised, "total": n_edges}
    stats["samples_by_provenance"] = provenance.summary(q.sample_role_models)["samples_by_provenance"]
    if q.llm_tokens is not None:
        stats["llm_tokens"] = {"input": q.llm_tokens[0], "output": q.llm_tokens[1]}
    return stats


def summary_lines(stats: Mapping[str, Any]) -> list[str]:
    """Q3/Q4 of docs/benchmarks.md as the lines `cli summary` prints."""
    tools, edges = stats["tools"], stats["edges"]
    never = ", ".join(tools["never_targeted"]) or "none"
    unusable = len(tools["declared_unusable"])
    dialogues = (f"  dialogues {stats['dialogues']}, mean user turns {stats['mean_user_turns']:.2f}, "
                 f"mean calls {stats['mean_calls_per_dialogue']:.2f}")
    dependent = (f"  turns with a dependent call {stats['dependent_turn_share']:.3f} "
                 f"(data only: {stats['data_dependent_turn_share']:.3f}) of {stats['turns_sampled']}")
    targeted = f"  tools targeted {tools['targeted']} of {tools['total']}; never: {never}"
    exercised = f"  graph edges exercised {edges['exercised']} of {edges['total']}"
    st = stats.get("steps") or step_figures([])
    steps = (f"  steps per turn {st['mean_steps_per_turn']:.2f}, calls per step {st['mean_calls_per_step']:.2f}, "
             f"multi-step turns {st['multi_step_turn_share']:.3f} of {st['turns_with_calls']}")
    samples = (f"  samples {stats['samples']} (yield {stats['yield_turns_to_samples']:.3f} of sampled turns); "
               + ", ".join(f"{k} {v}" for k, v in stats["samples_by_provenance"].items()))
    return [
        "quality (Q3/Q4 of docs/benchmarks.md):",
        dialogues,
        dependent,
        targeted + (f" ({unusable} declared unusable)" if unusable else ""),
        exercised + (f" ({stats['edge_coverage']:.3f})" if edges["total"] else ""),
        samples,
        steps,
        (f"  argument values in their described format {stats.get('argument_format_share', 1.0):.3f} "
         f"of {stats.get('arguments_with_a_format', 0)}"),
    ]


def _rows(frame: pl.DataFrame | None, *columns: str) -> list[tuple]:
    """The rows of `columns` (none when the frame is missing or empty, e.g. a partition not yet made)."""
    if frame is None or frame.height == 0:
        return []
    return list(frame.select(columns).iter_rows())


def _has(frame: pl.DataFrame | None, column: str) -> bool:
    return frame is not None and column in frame.columns


def from_frames(*, trajectories: pl.DataFrame | None = None, tool_catalog: pl.DataFrame | None = None,
                api_graph: pl.DataFrame | None = None, rejections: pl.DataFrame | None = None,
                dialogues: pl.DataFrame | None = None, queries: pl.DataFrame | None = None,
                cot_traces: pl.DataFrame | None = None, sft_samples: pl.DataFrame | None = None,
                llm_tokens: tuple[int, int] | None = None) -> QualityInput:
    """Everything `quality_stats` needs, from the stage tables' rows (a partition's, a day's or all; None:
    the table is not there). The catalog and graph count for the toolsets of `trajectories` only."""
    q = QualityInput()
    q.trajectories = [(ts, json.loads(turns)) for ts, turns in _rows(trajectories, "toolset", "turns")]
    toolsets = {ts for ts, _ in q.trajectories}
    if tool_catalog is not None:
        has_schemas = "parameters" in tool_catalog.columns
        for ts, name, parameters in _rows(tool_catalog.with_columns(parameters=pl.lit(None)) if not has_schemas
                                          else tool_catalog, "toolset", "tool_name", "parameters"):
            if ts in toolsets:
                q.tools.setdefault(ts, set()).add(name)
                if parameters:
                    q.parameters.setdefault(ts, {})[name] = (json.loads(parameters) or {}).get("properties", {})
    for ts, src, dst in set(_rows(api_graph, "toolset", "src_tool", "dst_tool")):
        if ts in toolsets:
            q.edges.setdefault(ts, set()).add((src, dst))
    for item, reason in _rows(rejections, "item_id", "reason"):
        if reason == "target_unusable":
            ts, tool = toolset_tool_of(item)
            q.unusable.setdefault(ts, set()).add(tool)
    q.dialogues = [(n, c, bool(e)) for n, c, e in _rows(dialogues, "n_turns", "n_calls", "error_tool_response")]
    if _has(dialogues, "messages"):
        q.turn_steps = [t for (msgs,) in _rows(dialogues, "messages") for t in step_counts(json.loads(msgs))]
    tables = {"trajectories": trajectories, "queries": queries, "cot_traces": cot_traces, "dialogues": dialogues,
              "sft_samples": sft_samples}
    q.rows_per_stage = {t: tables[t].height if tables[t] is not None else 0 for t in STAGE_TABLES}
    q.cot_passed = sum(1 for (p,) in _rows(cot_traces, "passed") if p)
    q.rejections = [(s, r) for s, r in _rows(rejections, "stage", "reason")]
    if _has(sft_samples, "role_models"):
        q.sample_role_models = [json.loads(rm) if rm else {} for (rm,) in _rows(sft_samples, "role_models")]
    elif sft_samples is not None:  # written before provenance was recorded per sample
        q.sample_role_models = [{} for _ in range(sft_samples.height)]
    q.llm_tokens = llm_tokens
    return q


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {r[0] for r in con.execute("SELECT column_name FROM information_schema.columns WHERE table_name = ?",
                                      [table]).fetchall()}


# the columns `from_frames` reads of each table (a column an older database lacks is left out)
_READS = {"trajectories": ("toolset", "turns"), "tool_catalog": ("toolset", "tool_name", "parameters"),
          "api_graph": ("toolset", "src_tool", "dst_tool"), "rejections": ("stage", "item_id", "reason"),
          "dialogues": ("n_turns", "n_calls", "error_tool_response", "messages"), "queries": ("toolset",),
          "cot_traces": ("passed",), "sft_samples": ("toolset", "role_models")}
# tables shared by all days (the graph's): read whole, `from_frames` keeps the toolsets sampled
_UNFILTERED = {"tool_catalog", "api_graph"}


def from_database(con: duckdb.DuckDBPyConnection, day: str | None = None, toolset: str | None = None,
                  ) -> QualityInput:
    """Everything `quality_stats` needs from the stage tables, for one day / toolset or all of them
    (`cli summary`; the assets pass their input frames to `from_frames`, which this fills)."""
    present = storage.table_names(con)
    conds, params = [], []
    if day is not None:
        conds.append("day = ?")
        params.append(day)
    if toolset is not None:
        conds.append("toolset = ?")
        params.append(toolset)
    where = (" WHERE " + " AND ".join(conds)) if conds else ""

    def frame(table: str) -> pl.DataFrame | None:
        if table not in present:
            return None
        cols = [c for c in _READS[table] if c in _columns(con, table)]
        sql = f"SELECT {', '.join(cols)} FROM {table}"
        if table in _UNFILTERED:
            return con.execute(sql).pl()
        return con.execute(sql + where, params).pl()

    tokens = None
    if "llm_calls" in present:
        tokens = tuple(int(x) for x in con.execute(
            "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM llm_calls").fetchone())
    return from_frames(**{t: frame(t) for t in _READS}, llm_tokens=tokens)
