"""Command line: `python -m funreason_pipeline.cli demo` materializes today's partition of every
toolset (offline unless an endpoint is configured) and prints a summary."""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from datetime import date
from pathlib import Path

import dagster as dg

from funreason_pipeline import config, quality, storage
from funreason_pipeline.environments.toolsets import load_toolsets
from funreason_pipeline.sampling.yield_check import demo_failures

TABLES = ["tool_catalog", "api_graph", "trajectories", "queries", "cot_traces", "dialogues", "sft_samples", "rl_samples",
          "day_export", "rejections", "llm_calls"]


def _defs() -> dg.Definitions:
    from funreason_pipeline.definitions import defs

    return defs()


def _progress(done: int, total: int, label: str, started: float) -> None:
    width = 30
    filled = int(width * done / total) if total else width
    rate = done / (time.monotonic() - started) if done else 0.0
    eta = (total - done) / rate if rate else 0.0
    # whole lines: Dagster's INFO lines interleave with these, a carriage-return bar would be cut up
    print(f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<28} ETA {eta:4.0f}s", flush=True)


PROCESS_TAG = "funreason/process"  # host:pid:start time of the CLI process a run executes in


def _start_time(pid: int) -> str | None:
    """A live process's start time (Linux /proc; elsewhere "0" if the pid exists), None if it is gone."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def _run_tags() -> dict[str, str]:
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"}


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs this CLI ran in processes of this host that are gone (kill -9, OOM), and free
    the pool slots their steps held. Such a run stays STARTED for good and keeps its `llm` pool slots,
    so after a few crashes every later run waits on the pool forever; Dagster's run monitoring only
    watches runs its launcher started, not these in-process ones (tests/test_crash_duckdb.py)."""
    host, reaped = socket.gethostname(), []
    live = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=live)):
        tag = run.tags.get(PROCESS_TAG, "")
        h, _, rest = tag.partition(":")
        pid, _, start = rest.partition(":")
        if h != host or not pid.isdigit() or _start_time(int(pid)) == start:
            continue
        instance.report_run_failed(run, f"its process ({tag}) is gone (killed); its pool slots are freed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped


GRAPH_KEYS = ["tool_catalog", "api_graph"]
PHASE1_KEYS = ["trajectories"]
LLM_KEYS = ["queries", "cot_traces"]  # one multi-asset: one concurrent flow per run
AFTER_KEYS = ["dialogues", "sft_samples", "rl_samples"]
DAILY_KEYS = ["day_export"]
# the console shows INFO (FUNREASON_LOG_LEVEL=DEBUG for Dagster's whole event stream); the run log keeps all
QUIET = {"loggers": {"console": {"config": {"log_level": os.environ.get("FUNREASON_LOG_LEVEL", "INFO").upper()}}}}


def _ops(run_config: dict | None, op: str) -> dict:
    """The part of the demo's run config for one run: its op config plus the INFO console logger."""
    ops = (run_config or {}).get("ops", {})
    return {**QUIET, **({"ops": {op: ops[op]}} if op in ops else {})}


def _materialize(selection: list[str], instance: dg.DagsterInstance | None, run_config: dict | None = None,
                 partition_key: str | None = None, tags: dict | None = None) -> bool:
    defs = _defs()
    r = dg.materialize(list(defs.assets or []), selection=selection, partition_key=partition_key,
                       instance=instance or dg.DagsterInstance.get(), resources=defs.resources,
                       raise_on_error=False, run_config=run_config or QUIET, tags={**_run_tags(), **(tags or {})})
    return r.success


def _phase1_toolset(day: str, ts: str, instance: dg.DagsterInstance | None = None,
                    run_config: dict | None = None, build_graph: bool = True) -> bool:
    """Graph assets for the toolset (unless a current graph is reused), then its Phase I trajectories
    (two runs: two partitionings)."""
    key = str(dg.MultiPartitionKey({"day": day, "toolset": ts}))
    return (not build_graph or _materialize(GRAPH_KEYS, instance, partition_key=ts)) and \
        _materialize(PHASE1_KEYS, instance, _ops(run_config, "trajectories"), partition_key=key)


def stale_graphs(instance: dg.DagsterInstance, toolsets: list[str]) -> list[str]:
    """The toolsets whose catalog and graph must be (re)built (defs/graph_freshness.py says when), the
    database's own rows included. The graph is per toolset, not per day: probing costs several times
    a day's Phase I, so a current graph is reused."""
    from funreason_pipeline.defs.graph_freshness import outdated_graphs

    return list(outdated_graphs(instance, toolsets, storage.rows_per_toolset(("tool_catalog", "api_graph"))))


def _after_toolset(day: str, ts: str, instance: dg.DagsterInstance | None = None) -> bool:
    """Phase IV and the SFT set for one partition (CPU: replays), after the day's LLM run."""
    return _materialize(AFTER_KEYS, instance, partition_key=str(dg.MultiPartitionKey({"day": day, "toolset": ts})))


def partition_ranges(day: str, toolsets: list[str]) -> list[tuple[str, str]]:
    """The chosen toolsets as contiguous ranges of day x toolset keys, in partition order: one run
    (one LLM flow) per range; all toolsets of a day are a single range."""
    from funreason_pipeline.defs.partitions import toolset_partitions

    order = toolset_partitions.get_partition_keys()
    chosen = set(toolsets)
    ranges, start, prev = [], None, None
    for ts in order:
        if ts in chosen and start is None:
            start = ts
        if ts not in chosen and start is not None:
            ranges.append((start, prev))
            start = None
        prev = ts
    if start is not None:
        ranges.append((start, prev))
    key = lambda ts: str(dg.MultiPartitionKey({"day": day, "toolset": ts}))
    return [(key(a), key(b)) for a, b in ranges]


def run_config_for(trajectories: int | None = None, k_max: int | None = None, seed: int | None = None,
                   min_turns: int | None = None, max_turns: int | None = None,
                   edge_target: float | None = None) -> dict | None:
    """The day run's config from CLI options (None = asset defaults)."""
    traj = {k: v for k, v in {"trajectories_per_partition": trajectories, "seed": seed, "min_turns": min_turns,
                              "max_turns": max_turns, "edge_coverage_target": edge_target}.items()
            if v is not None}
    ops = {}
    if traj:
        ops["trajectories"] = {"config": traj}
    if k_max is not None:
        ops["llm_stages"] = {"config": {"k_max": k_max}}
    return {"ops": ops} if ops else None


def _pool_map(fn, toolsets: list[str], args: tuple, workers: int, instance, label: str, started: float,
              failed: list[str], per_toolset: dict[str, tuple] | None = None) -> None:
    """fn(day, toolset, instance, *rest, *per_toolset[toolset]) for each toolset, in `workers` processes."""
    extra = per_toolset or {}
    if workers > 1 and instance is None and len(toolsets) > 1:
        # spawn, not fork: this process has run polars/DuckDB threads by now (the LLM run), and a
        # forked child can deadlock on a lock one of those threads held at the fork
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(fn, *args[:1], ts, None, *args[1:], *extra.get(ts, ())): ts for ts in toolsets}
            for i, fut in enumerate(as_completed(futures), 1):
                if not fut.result():
                    failed.append(f"{label} {futures[fut]}")
                _progress(i, len(toolsets), f"{label} {futures[fut]}", started)
    else:
        for i, ts in enumerate(toolsets, 1):
            if not fn(args[0], ts, instance, *args[1:], *extra.get(ts, ())):
                failed.append(f"{label} {ts}")
            _progress(i, len(toolsets), f"{label} {ts}", started)


def run_demo(day: str, toolsets: list[str], instance: dg.DagsterInstance | None = None, workers: int = 1,
             run_config: dict | None = None, rebuild_graph: bool = False) -> bool:
    """Materialize `day` for every toolset: the graph assets where none is current (or all, with
    `rebuild_graph`) and Phase I per toolset (in `workers` processes), then ONE run for the LLM stages
    of all of them (one concurrent flow), then Phase IV and the SFT set per toolset, then the day's
    combined export."""
    started = time.monotonic()
    failed: list[str] = []
    # also creates the instance's tables once, before workers race to do it
    reaped = reap_dead_runs(instance or dg.DagsterInstance.get())
    if reaped:
        print(f"marked {len(reaped)} run(s) of killed processes failed and freed their pool slots")
    to_build = set(toolsets) if rebuild_graph else set(stale_graphs(instance or dg.DagsterInstance.get(), toolsets))
    reused = [ts for ts in toolsets if ts not in to_build]
    if reused:
        print(f"reusing the current tool catalog and API graph of {len(reused)} toolset(s) "
              f"({', '.join(reused)}); --rebuild-graph builds them anew")
    _pool_map(_phase1_toolset, toolsets, (day, run_config), workers, instance, "phase I", started, failed,
              {ts: (ts in to_build,) for ts in toolsets})
    t_llm = time.monotonic()
    timings = {"phase1_s": round(t_llm - started, 2), "graphs_built": len(to_build)}
    ok_ts = [ts for ts in toolsets if f"phase I {ts}" not in failed]
    for start, end in partition_ranges(day, ok_ts):
        print(f"LLM stages for {start} .. {end} (one run, one flow)")
        if not _materialize(LLM_KEYS, instance, _ops(run_config, "llm_stages"),
                            tags={"dagster/asset_partition_range_start": start,
                                  "dagster/asset_partition_range_end": end}):
            failed.append(f"LLM stages {start}..{end}")
    t_after = time.monotonic()
    timings["llm_s"] = round(t_after - t_llm, 2)
    print(f"LLM stages done in {timings['llm_s']:.1f}s")
    if not any(f.startswith("LLM stages") for f in failed):
        _pool_map(_after_toolset, ok_ts, (day,), workers, instance, "dialogues+sft", started, failed)
    t_export = time.monotonic()
    timings["after_s"] = round(t_export - t_after, 2)
    made = [ts for ts in ok_ts if f"dialogues+sft {ts}" not in failed] \
        if not any(f.startswith("LLM stages") for f in failed) else []
    if made:
        r3 = _materialize(DAILY_KEYS, instance, partition_key=day)
    else:  # nothing new to export (and possibly no SFT table to read): say so instead of a crash in the export
        print(f"day export of {day} skipped: no toolset reached its SFT set in this run")
        r3 = True
    timings["export_s"] = round(time.monotonic() - t_export, 2)
    timings["total_s"] = round(time.monotonic() - started, 2)
    for what in failed:
        print(f"  {what}: run failed (see `make ui` for logs)")
    print(f"materialized {len(toolsets)} toolsets for {day} in {time.monotonic() - started:.1f}s")
    print("timings " + json.dumps(timings))  # machine-readable: bench/bench_e2e.py reads it
    return not failed and r3


def summary() -> str:
    lines = [f"database: {config.db_path()}", f"exports:  {config.exports_dir()}", "rows per table:"]
    if not config.db_path().exists():
        return "\n".join(lines + ["  (no database yet)"])
    with storage.connect(read_only=True) as con:
        present = storage.table_names(con)
        for t in TABLES:
            if t in present:
                n = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                lines.append(f"  {t:<14} {n:>8}")
        if {"trajectories", "dialogues", "tool_catalog"} <= present:
            lines += quality.summary_lines(quality.quality_stats(quality.from_database(con)))
        if "rejections" in present:
            lines.append("rejections by stage and reason:")
            for stage, reason, n in con.execute(
                "SELECT stage, reason, count(*) FROM rejections GROUP BY ALL ORDER BY 1, 3 DESC"
            ).fetchall():
                lines.append(f"  {stage:<14} {reason:<24} {n:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="funreason")
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="materialize one day's partition of every toolset")
    demo.add_argument("--day", default=date.today().isoformat())
    demo.add_argument("--toolsets", default="", help="comma-separated subset (default: all)")
    demo.add_argument("--workers", type=int, default=2, help="toolsets materialized in parallel processes")
    demo.add_argument("--trajectories", type=int, help="accepted trajectories per partition (default 6)")
    demo.add_argument("--k-max", type=int, help="Phase III attempts per turn (default 3)")
    demo.add_argument("--seed", type=int, help="base seed (default 0)")
    demo.add_argument("--min-turns", type=int)
    demo.add_argument("--max-turns", type=int)
    demo.add_argument("--edge-target", type=float,
                      help="sample extra trajectories until this share of graph edges is exercised (Q3: 0.9)")
    demo.add_argument("--rebuild-graph", action="store_true",
                      help="build every tool catalog and API graph anew (default: reuse those built from the same "
                      "environment code, toolset config and graph code)")
    sub.add_parser("summary", help="rows per table and where things are")
    args = parser.parse_args(argv)
    if args.cmd == "summary":
        print(summary())
        return 0
    names = [t.name for t in load_toolsets()]
    chosen = [t for t in args.toolsets.split(",") if t] or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown toolsets: {unknown}; known: {names}")
    if args.edge_target is not None and not 0 < args.edge_target <= 1:
        parser.error("--edge-target must be in (0, 1]")
    cfg = run_config_for(args.trajectories, args.k_max, args.seed, args.min_turns, args.max_turns, args.edge_target)
    config.ensure_dagster_home()
    ok = run_demo(args.day, chosen, workers=args.workers, run_config=cfg, rebuild_graph=args.rebuild_graph)
    print(summary())
    print("\nOpen the Dagster UI with `make ui` (dg dev, DAGSTER_HOME under data/).")
    problems = demo_failures(args.day, chosen)  # no silent success: the Phase I yield verdicts
    for p in problems:
        print(f"\nFAILED {p}", file=sys.stderr)
    return 0 if ok and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
