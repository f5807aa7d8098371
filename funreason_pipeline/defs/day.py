"""A day's work, defined once: the runs that make a day of the chosen toolsets, and their order.
`cli demo` executes them here, in its own process (`run_day`); the nightly sensor asks the daemon
for the next ones that are due (`next_requests`); a backfill from the UI runs the same jobs over
more partitions. Every day x toolset asset takes the run's partitions at once
(BackfillPolicy.single_run) and spreads the per-toolset work over processes inside its step, so a
day is a handful of runs however many toolsets it has:

1. `environment_graph` over the toolsets whose catalog and graph are out of date (none: no run);
2. `day_synthesis`, Phase I (trajectories) of the day's toolsets;
3. `day_synthesis`, the rest (LLM stages, dialogues, SFT and RL rows) of the toolsets whose Phase I
   passed its yield check, one run per contiguous range of them (all toolsets: one run);
4. `combined_day_export` of the day (for the daemon: day_export's automation condition).

Phase I is a run of its own because a blocking check stops everything after it in its run: a
toolset that fails its yield then stops only itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from funreason_pipeline.defs.automation import export_job, graph_job, nightly_run_config
from funreason_pipeline.defs.graph_freshness import outdated_graphs
from funreason_pipeline.defs.partitions import toolset_partitions
from funreason_pipeline.defs.phase1_assets import YIELD_FAILED
from funreason_pipeline.defs.resources import stored_rows_per_toolset
from funreason_pipeline.defs.run_reaping import reap_dead_runs, run_tags

NIGHTLY_HOUR = int(os.environ.get("FUNREASON_NIGHTLY_HOUR", "2"))
# each stage's table with its rejections (and export files): the outputs of one computation, run together
PHASE1_ASSETS = ("trajectories", "trajectories_rejections")
REST_ASSETS = ("queries", "cot_traces", "queries_rejections", "cot_traces_rejections", "dialogues",
               "dialogues_rejections", "sft_samples", "sft_samples_rejections", "sft_exports", "rl_samples",
               "rl_samples_rejections", "rl_exports")
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
# the console shows INFO (FUNREASON_LOG_LEVEL=DEBUG for Dagster's whole event stream); the run log keeps all
QUIET = {"loggers": {"console": {"config": {"log_level": os.environ.get("FUNREASON_LOG_LEVEL", "INFO").upper()}}}}

day_job = dg.define_asset_job(
    "day_synthesis", selection=dg.AssetSelection.assets(*PHASE1_ASSETS, *REST_ASSETS),
    description="A day's synthesis over a range of its toolsets in one run: Phase I, the LLM stages (one "
    "concurrent flow), dialogues, SFT and RL rows (defs/day.py runs Phase I first, on its own).",
)


@dataclass(frozen=True)
class DayRun:
    """One run of the day: a job over one partition (`last` None) or the range first..last."""

    step: str
    job: str
    first: str
    last: str | None = None
    assets: tuple[str, ...] | None = None
    run_config: dict = field(default_factory=dict, hash=False, compare=False)

    @property
    def tags(self) -> dict[str, str]:
        return {} if self.last is None else {RANGE_START: self.first, RANGE_END: self.last}

    @property
    def span(self) -> str:
        return self.first if self.last is None else f"{self.first} .. {self.last}"

    def request(self) -> dg.RunRequest:
        return dg.RunRequest(run_key=f"{self.step}|{self.span}", job_name=self.job, tags=self.tags,
                             partition_key=self.first if self.last is None else None, run_config=self.run_config,
                             asset_selection=[dg.AssetKey(a) for a in self.assets] if self.assets else None)


def day_run_config(trajectories: int | None = None, k_max: int | None = None, seed: int | None = None,
                   min_turns: int | None = None, max_turns: int | None = None, edge_target: float | None = None,
                   workers: int | None = None) -> dict:
    """The day's run config (op config per asset, processes per step); None: the defaults."""
    traj = {k: v for k, v in {"trajectories_per_partition": trajectories, "seed": seed, "min_turns": min_turns,
                              "max_turns": max_turns, "edge_coverage_target": edge_target}.items()
            if v is not None}
    cfg: dict = {"ops": {}}
    if traj:
        cfg["ops"]["trajectories"] = {"config": traj}
    if k_max is not None:
        cfg["ops"]["llm_stages"] = {"config": {"k_max": k_max}}
    if workers is not None:
        cfg["resources"] = {"processes": {"config": {"workers": workers}}}
    return cfg


def _for(cfg: dict | None, ops: Iterable[str], processes: bool = True) -> dict:
    """The part of the day's config a run takes: its ops' config, and the processes if it uses them."""
    cfg = cfg or {}
    out: dict = {}
    ops_cfg = {op: c for op, c in cfg.get("ops", {}).items() if op in set(ops)}
    if ops_cfg:
        out["ops"] = ops_cfg
    if processes and "resources" in cfg:
        out["resources"] = cfg["resources"]
    return out


def ranges(order: list[str], chosen: Iterable[str]) -> list[tuple[str, str]]:
    """The chosen keys as contiguous (first, last) ranges of `order`: one run per range."""
    want, out, start, prev = set(chosen), [], None, None
    for k in order:
        if k in want and start is None:
            start = k
        if k not in want and start is not None:
            out.append((start, prev))
            start = None
        prev = k
    if start is not None:
        out.append((start, prev))
    return out


def _runs(step: str, job: str, spans: list[tuple[str, str]], assets=None, run_config=None) -> list[DayRun]:
    return [DayRun(step, job, a, None if a == b else b, assets, run_config or {}) for a, b in spans]


def _key(day: str, toolset: str) -> str:
    return str(dg.MultiPartitionKey({"day": day, "toolset": toolset}))


def _day_ranges(day: str, toolsets: Iterable[str]) -> list[tuple[str, str]]:
    return [(_key(day, a), _key(day, b)) for a, b in ranges(toolset_partitions.get_partition_keys(), toolsets)]


def stale_graphs(instance: dg.DagsterInstance, toolsets: list[str], check_database: bool = True) -> list[str]:
    """The toolsets whose catalog and graph must be (re)built (defs/graph_freshness.py says when);
    `check_database`: also those the database no longer holds. The graph is per toolset, not per
    day: probing costs several times a day's Phase I, so a current graph is reused."""
    stored = stored_rows_per_toolset(("tool_catalog", "api_graph")) if check_database else None
    return list(outdated_graphs(instance, toolsets, stored))


def graph_runs(toolsets: list[str], cfg: dict | None = None) -> list[DayRun]:
    return _runs("graph", graph_job.name, ranges(toolset_partitions.get_partition_keys(), toolsets),
                 run_config=_for(cfg, ()))


def phase1_runs(day: str, toolsets: list[str], cfg: dict | None = None) -> list[DayRun]:
    return _runs("phase1", day_job.name, _day_ranges(day, toolsets), PHASE1_ASSETS, _for(cfg, ["trajectories"]))


def rest_runs(day: str, toolsets: list[str], cfg: dict | None = None) -> list[DayRun]:
    return _runs("synthesis", day_job.name, _day_ranges(day, toolsets), REST_ASSETS,
                 _for(cfg, ["llm_stages", "dialogues"]))


def export_run(day: str) -> DayRun:
    return DayRun("export", export_job.name, day)


def _latest(instance: dg.DagsterInstance, asset: str, key: str):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[key]), limit=1).records
    return records[0] if records else None


def phase1_passed(instance: dg.DagsterInstance, day: str, toolsets: list[str],
                  run_ids: set[str] | None = None) -> list[str]:
    """The toolsets whose latest trajectories of `day` (made by one of `run_ids`, if given) passed the
    yield check: the Phase I run records the partitions that failed it in its metadata."""
    out = []
    for ts in toolsets:
        rec = _latest(instance, "trajectories", _key(day, ts))
        if rec is None or (run_ids is not None and rec.run_id not in run_ids):
            continue
        failed = rec.asset_materialization.metadata.get(YIELD_FAILED)
        if _key(day, ts) not in (getattr(failed, "value", None) or []):
            out.append(ts)
    return out


def _missing(instance: dg.DagsterInstance, asset: str, day: str, toolsets: list[str]) -> list[str]:
    done = instance.get_materialized_partitions(dg.AssetKey(asset))
    return [ts for ts in toolsets if _key(day, ts) not in done]


def next_requests(instance: dg.DagsterInstance, day: str, toolsets: list[str],
                  cfg: dict | None = None) -> list[dg.RunRequest] | str:
    """The daemon's side of the same order: the runs of the first step of `day` still due (their run
    keys make each launch once), or why none is. The export is day_export's automation condition."""
    stale = stale_graphs(instance, toolsets, check_database=False)
    if stale:
        return [r.request() for r in graph_runs(stale, cfg)]
    todo = _missing(instance, "trajectories", day, toolsets)
    if todo:
        return [r.request() for r in phase1_runs(day, todo, cfg)]
    todo = _missing(instance, "rl_samples", day, phase1_passed(instance, day, toolsets))
    if todo:
        return [r.request() for r in rest_runs(day, todo, cfg)]
    return f"{day}: every toolset's rows are in (or its Phase I failed); day_export follows its automation condition"


def _yesterday(now: datetime) -> str:
    return (now - timedelta(days=1)).date().isoformat()


@dg.sensor(jobs=[graph_job, day_job], minimum_interval_seconds=60, name="nightly_day_sensor",
           description=f"From {NIGHTLY_HOUR:02d}:00 UTC (FUNREASON_NIGHTLY_HOUR): yesterday x every toolset, "
           "through the day's runs (defs/day.py): stale graphs, Phase I, then the rest of the toolsets that passed "
           "it. The run size comes from FUNREASON_NIGHTLY_TRAJECTORIES, FUNREASON_NIGHTLY_EDGE_TARGET and "
           "FUNREASON_NIGHTLY_WORKERS (processes per step, default 2).")
def nightly_day_sensor(context: dg.SensorEvaluationContext):
    now = datetime.now(UTC)
    if now.hour < NIGHTLY_HOUR:
        yield dg.SkipReason(f"the nightly run starts at {NIGHTLY_HOUR:02d}:00 UTC")
        return
    due = next_requests(context.instance, _yesterday(now), toolset_partitions.get_partition_keys(), nightly_config())
    if isinstance(due, str):
        yield dg.SkipReason(due)
        return
    yield from due


def nightly_config() -> dict:
    """The nightly runs' config: the Phase I size from the environment (automation.nightly_run_config)
    and FUNREASON_NIGHTLY_WORKERS processes per step."""
    raw = os.environ.get("FUNREASON_NIGHTLY_WORKERS", "2")
    if not raw.isdigit() or int(raw) < 1:
        raise ValueError(f"FUNREASON_NIGHTLY_WORKERS must be a positive integer, got {raw!r}")
    return {**(nightly_run_config() or {}), "resources": {"processes": {"config": {"workers": int(raw)}}}}


def execute(defs: dg.Definitions, instance: dg.DagsterInstance, run: DayRun) -> dg.ExecuteInProcessResult:
    """One of the day's runs in this process (in-process executor), tagged with this process so a
    later run can reap it if the process is killed (defs/run_reaping.py)."""
    job = defs.resolve_job_def(run.job)
    return job.execute_in_process(
        run_config={**QUIET, **run.run_config}, instance=instance, raise_on_error=False,
        partition_key=run.first if run.last is None else None, tags={**run.tags, **run_tags()},
        asset_selection=[dg.AssetKey(a) for a in run.assets] if run.assets else None)


def _listing(names: list[str]) -> str:
    # "a, b, c" without str.join, which tests/test_thin_defs.py cannot tell from a frame's join
    out = ""
    for n in names:
        out = f"{out}, {n}" if out else n
    return out


@dataclass
class DayReport:
    """What `run_day` did: whether every run succeeded, the failed runs, the timings (seconds, runs)."""

    ok: bool
    failed: list[str]
    timings: dict


def run_day(day: str, toolsets: list[str], instance: dg.DagsterInstance | None = None, run_config: dict | None = None,
            rebuild_graph: bool = False, say: Callable[[str], None] = print) -> DayReport:
    """All of the day's runs, in order, in this process: what `cli demo` does. `ok` when every run
    succeeded (a Phase I yield failure stops only its toolset, but fails the day)."""
    from funreason_pipeline.definitions import defs as load_defs  # the definitions load this module

    instance = instance or dg.DagsterInstance.get()
    defs = load_defs()
    started = time.monotonic()
    failed: list[str] = []
    runs = 0

    def go(run: DayRun) -> dg.ExecuteInProcessResult:
        nonlocal runs
        runs += 1
        result = execute(defs, instance, run)
        if not result.success:
            failed.append(f"{run.step} {run.span}")
        return result

    # also creates the instance's tables once
    reaped = reap_dead_runs(instance)
    if reaped:
        say(f"marked {len(reaped)} run(s) of killed processes failed and freed their pool slots")
    to_build = list(toolsets) if rebuild_graph else stale_graphs(instance, toolsets)
    reused = [ts for ts in toolsets if ts not in to_build]
    if reused:
        say(f"reusing the current tool catalog and API graph of {len(reused)} toolset(s) "
            f"({_listing(reused)}); --rebuild-graph builds them anew")
    for run in graph_runs(to_build, run_config):
        say(f"tool catalogs and API graphs of {run.span} (one run)")
        go(run)
    t_graphs = time.monotonic()
    ready = [ts for ts in toolsets if ts not in stale_graphs(instance, toolsets, check_database=False)]
    phase1_ids = set()
    for run in phase1_runs(day, ready, run_config):
        say(f"Phase I for {run.span} (one run)")
        phase1_ids.add(go(run).run_id)
    t_llm = time.monotonic()
    # phase1_s includes the graphs (as it always did: bench/bench_e2e.py reads it); graphs_s is their part
    timings = {"phase1_s": round(t_llm - started, 2), "graphs_s": round(t_graphs - started, 2),
               "graphs_built": len(to_build)}
    passed = phase1_passed(instance, day, ready, phase1_ids)
    rest_ids = set()
    for run in rest_runs(day, passed, run_config):
        say(f"LLM stages for {run.span} (one run, one flow; then dialogues, SFT and RL rows)")
        result = go(run)
        if result.success:
            rest_ids.add(result.run_id)
    made = [ts for ts in passed if (rec := _latest(instance, "rl_samples", _key(day, ts))) and rec.run_id in rest_ids]
    t_export = time.monotonic()
    timings["synthesis_s"] = round(t_export - t_llm, 2)
    if made:
        go(export_run(day))
    else:  # nothing new to export (and possibly no SFT table to read): say so instead of a crash in the export
        say(f"day export of {day} skipped: no toolset reached its SFT set in this run")
    timings["export_s"] = round(time.monotonic() - t_export, 2)
    timings["total_s"] = round(time.monotonic() - started, 2)
    timings["runs"] = runs
    return DayReport(not failed, failed, timings)
