"""Run one day of toolsets through the cluster's Celery workers and report where every step ran.

Used by scripts/cluster_up.sh (`run`), tests/test_cluster.py and the 1/2/4-worker figure of
docs/benchmarks.md. Expects the environment of the cluster's env.sh (DAGSTER_HOME with
deploy/dagster.postgres.yaml, FUNREASON_EXECUTOR=celery, FUNREASON_LAKE...). Per toolset, two Dagster
runs (the graph assets, partitioned by toolset; then the day's synthesis, day x toolset), the toolsets'
runs launched side by side; then the day's combined export. Each run is a `dagster asset materialize`
process that only orchestrates: its steps are Celery tasks, executed by whichever worker takes them.

Prints one JSON line at the end (also written to --report): wall time, run ids and their status, and
per step the pid and host of the worker process that executed it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

DEFAULT_DAY = "2026-11-26"
GRAPH_KEYS = ["tool_catalog", "api_graph"]
DAILY_KEYS = ["day_export", "day_exports"]


def _quiet() -> None:
    # each execute_job registers dagster-celery's task again on one app: a harmless upstream warning
    warnings.filterwarnings("ignore", message="Task name 'execute_plan' is already registered")


class Launcher:
    """Launches Dagster runs from this process (`execute_job`); the run only orchestrates, its steps are
    Celery tasks. One launcher per process: Dagster's run setup is not thread-safe (two runs starting in
    threads of one process deadlocked on the logging lock), so toolsets run in
    processes of their own (spawned: no fork after polars started threads)."""

    def __init__(self) -> None:
        import dagster as dg
        from dagster._core.definitions.reconstruct import ReconstructableRepository

        from funreason_pipeline.defs.run_reaping import run_tags

        self.dg = dg
        self.repo = ReconstructableRepository.for_module("funreason_pipeline.definitions", "defs",
                                                         working_directory=os.getcwd())
        self.repo_def = self.repo.get_definition()
        self.instance = dg.DagsterInstance.get()
        self.tags = run_tags()

    def asset_keys(self) -> list[str]:
        return [k.to_user_string() for k in self.repo_def.asset_graph.get_all_asset_keys()]

    def materialize(self, select: list[str], partition: str, config: dict | None = None) -> bool:
        keys = {self.dg.AssetKey(k) for k in select}
        job = self.repo_def.get_implicit_job_def_for_assets(keys)
        tags = {**job.get_tags_for_partition_key(partition, selected_asset_keys=keys), **self.tags}
        with self.dg.execute_job(self.repo.get_reconstructable_job(job.name), self.instance, run_config=config,
                                 tags=tags, asset_selection=sorted(keys)) as result:
            return result.success


def run_toolset(day: str, ts: str, config: dict | None) -> bool:
    """In a process of its own: the toolset's graph run, then its day run."""
    _quiet()
    launcher = Launcher()
    day_keys = [k for k in launcher.asset_keys() if k not in GRAPH_KEYS + DAILY_KEYS]
    return launcher.materialize(GRAPH_KEYS, ts) and launcher.materialize(day_keys, f"{day}|{ts}", config)


def reap() -> list[str]:
    """Runs of an earlier launcher that was killed stay STARTED and keep their `llm` pool slots."""
    import dagster as dg

    from funreason_pipeline.defs.run_reaping import reap_dead_runs

    with dg.DagsterInstance.get() as instance:
        return reap_dead_runs(instance)


def step_placement(since: float) -> list[dict]:
    """Every step started after `since`: run, step, partition, and the process (pid, host) that ran it."""
    import dagster as dg

    out = []
    with dg.DagsterInstance.get() as instance:
        runs = [r for r in instance.get_runs(limit=200)
                if (instance.get_run_record_by_id(r.run_id).create_timestamp.timestamp() >= since)]
        for run in runs:
            for rec in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START):
                out.append({"run_id": run.run_id, "status": run.status.value, "step": rec.step_key,
                            "partition": run.tags.get("dagster/partition"), "pid": rec.dagster_event.pid,
                            "host": socket.gethostname()})
    return out


TABLES = ["tool_catalog", "api_graph", "trajectories", "queries", "cot_traces", "dialogues", "sft_samples",
          "rejections", "day_export"]


def row_counts(day: str, toolsets: list[str]) -> dict[str, int]:
    """Rows of the day's partitions (graph tables: the toolsets') per table, in the shared store."""
    from funreason_pipeline import storage

    out = {}
    with storage.connect(read_only=True) as con:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for t in TABLES:
            if t not in present:
                continue
            where = "toolset IN (SELECT unnest(?::VARCHAR[]))" if t in ("tool_catalog", "api_graph") \
                else "day = ?::DATE" + (" AND toolset IN (SELECT unnest(?::VARCHAR[]))" if t != "day_export" else "")
            params = [toolsets] if t in ("tool_catalog", "api_graph") else \
                ([day] if t == "day_export" else [day, toolsets])
            out[t] = con.execute(f"SELECT count(*) FROM {t} WHERE {where}", params).fetchone()[0]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day", default=DEFAULT_DAY)
    parser.add_argument("--toolsets", default="4", help="a number (the first N of data/toolsets.yaml) or names, comma-separated")
    parser.add_argument("--trajectories", type=int, default=2, help="trajectories per partition")
    parser.add_argument("--parallel", type=int, default=0, help="toolsets launched at once (default: all)")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    args = parser.parse_args(argv)
    if os.environ.get("FUNREASON_EXECUTOR") != "celery":
        parser.error("source the cluster's env.sh first (FUNREASON_EXECUTOR=celery is not set)")

    from funreason_pipeline.environments.toolsets import load_toolsets

    names = [t.name for t in load_toolsets()]
    toolsets = names[: int(args.toolsets)] if args.toolsets.isdigit() else args.toolsets.split(",")
    unknown = sorted(set(toolsets) - set(names))
    if unknown:
        parser.error(f"unknown toolsets {unknown}; known: {names}")
    config = {"ops": {"trajectories": {"config": {"trajectories_per_partition": args.trajectories}}}}

    since = time.time() - 1
    started = time.monotonic()
    _quiet()
    reaped = reap()
    with ProcessPoolExecutor(max_workers=args.parallel or len(toolsets), mp_context=mp.get_context("spawn")) as pool:
        ok = dict(zip(toolsets, pool.map(run_toolset, [args.day] * len(toolsets), toolsets,
                                         [config] * len(toolsets)), strict=True))
    failed = [ts for ts, good in ok.items() if not good]
    export_ok = Launcher().materialize(DAILY_KEYS, args.day) if not failed else None
    wall = time.monotonic() - started
    report = {"day": args.day, "toolsets": toolsets, "trajectories": args.trajectories, "wall_s": round(wall, 1),
              "failed": failed, "export_ok": export_ok, "reaped_runs": reaped,
              "rows": row_counts(args.day, toolsets),
              "steps": step_placement(since)}
    line = json.dumps(report)
    if args.report:
        args.report.write_text(line + "\n")
    workers = sorted({s["pid"] for s in report["steps"]})
    print("rows: " + ", ".join(f"{t} {n}" for t, n in report["rows"].items()))
    print(f"cluster day {args.day}: {len(toolsets)} toolsets in {wall:.1f}s, {len(report['steps'])} steps on "
          f"worker pids {workers}; failed: {failed or 'none'}; export ok: {export_ok}")
    print(line)
    return 0 if not failed and export_ok else 1


if __name__ == "__main__":
    sys.exit(main())
