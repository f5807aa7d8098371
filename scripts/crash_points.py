"""SIGKILL a real pipeline process at chosen points of its DuckDB writes, and compare databases.

Used by tests/test_crash_duckdb.py (fast variant) and scripts/fault_suite.py (full variant); kept out
of tests/ so it is not collected, loaded by path like scripts/dagster_e2e.py. Nothing here is imported
by the pipeline.

- `run_and_kill(cli_args, env, log, table, point, db)`: runs `python -m funreason_pipeline.cli
  <cli_args>` unchanged, through a wrapper that arms one stop point in the Dagster IO manager's write
  of `table` (defs/io_manager.py -> storage.connect). When the write gets there the child prints a
  marker and blocks with its connection open; the whole process group is then SIGKILLed, so the
  file is left exactly in that state (no `finally`, no close, no checkpoint runs after the marker).
  Points (POINTS):
    after_delete  DbIOManager deleted the partition's old rows; the new ones are not inserted yet
    after_insert  the new rows are inserted; the write is not committed yet
    committed     the write is committed and the connection not closed: the commit is only in the
                  write-ahead log (.wal), no checkpoint has folded it into the file
- `run_and_kill_on_wal(cli_args, env, log, after, db)`: no stop point; once `after` shows in the log,
  SIGKILL the group the first moment a .wal file exists (a commit or its checkpoint in flight): an
  instant the code under test does not choose.
- `snapshot(db, tables)`: per table, the sorted (row key, sha256 of the whole row) of every row; opens
  the file read-only, so a corrupt file fails here (`snapshot_of(con, tables)`: the same on an open
  connection). `diff` says which tables differ and how.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

_spec = importlib.util.spec_from_file_location("dagster_e2e", Path(__file__).with_name("dagster_e2e.py"))
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

MARKER = "CRASH_POINT_REACHED"
POINTS = ("after_delete", "after_insert", "committed")
RUN_TIMEOUT_S = 600

# how a row of each table is identified: duplicates are checked on these, diffs reported by them
KEYS = {
    "tool_catalog": "toolset || '/' || tool_name",
    "api_graph": "toolset || '/' || src_tool || '>' || dst_tool || ':' || kind || ':' || coalesce(param, '')",
    **{t: f"strftime(day, '%Y-%m-%d') || '|' || toolset || '/' || ({k})" for t, k in e2e.ROW_KEYS.items()},
    "rejections": "coalesce(strftime(day, '%Y-%m-%d'), '-') || '|' || toolset || '/' || stage || ':' "
                  "|| item_id || ':' || reason",
    "day_export": "strftime(day, '%Y-%m-%d') || '/' || file",
}
PARTITION_TABLES = list(e2e.ROW_KEYS)  # day x toolset tables written by the IO manager
STAGE_TABLES = ["tool_catalog", "api_graph", *PARTITION_TABLES, "rejections"]
ALL_TABLES = [*STAGE_TABLES, "day_export"]

# Runs the CLI unchanged in this process, with one stop point armed in the IO manager's write of table
# CRASH_TABLE (CRASH_POINT in POINTS). The point blocks forever after printing the marker, so the
# parent's SIGKILL lands with the write in that exact state.
WRAPPER = r"""
import contextlib, os, sys, time
from funreason_pipeline import storage
from funreason_pipeline.defs import io_manager

TABLE, POINT = os.environ["CRASH_TABLE"], os.environ["CRASH_POINT"]
_handle, _connect = io_manager.PolarsDuckDBTypeHandler.handle_output, storage.connect
_state = {"written": False}


def stop(where):
    print("%s %s:%s" % (os.environ["CRASH_MARKER"], TABLE, where), flush=True)
    while True:
        time.sleep(60)


def handle_output(self, context, table_slice, obj, connection):
    mine = table_slice.table == TABLE
    if mine and POINT == "after_delete":  # DbIOManager ran DELETE for the slice just before this
        stop("after_delete")
    out = _handle(self, context, table_slice, obj, connection)
    if mine and POINT == "after_insert":
        stop("after_insert")
    _state["written"] = mine
    return out


@contextlib.contextmanager
def connect(*args, **kwargs):
    with _connect(*args, **kwargs) as con:
        yield con
        # the IO manager's block (write and commit) is done; the connection is not closed yet
        if _state["written"] and POINT == "committed":
            stop("committed")


io_manager.PolarsDuckDBTypeHandler.handle_output = handle_output
storage.connect = connect
from funreason_pipeline.cli import main
sys.exit(main(sys.argv[1:]))
"""


def step_names(tables: Iterable[str]) -> dict[str, str]:
    """The Dagster step that writes each table (its op: `queries` and `cot_traces` are both written by
    the multi-asset `llm_stages`), read from the definitions so a renamed step cannot go unnoticed."""
    import dagster as dg

    from funreason_pipeline.definitions import defs

    d = defs()
    return {t: d.resolve_assets_def(dg.AssetKey(t)).node_def.name for t in tables}


def step_start(step: str) -> str:
    """The log line that marks a step's start; Dagster logs it at DEBUG, so the run needs
    FUNREASON_LOG_LEVEL=DEBUG for it to appear."""
    return f" - {step} - STEP_START - "


def cli_cmd(cli_args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "funreason_pipeline.cli", *cli_args]


def run_to_completion(cli_args: Sequence[str], env: dict, log: Path, timeout_s: float = RUN_TIMEOUT_S) -> None:
    proc = e2e.spawn(cli_cmd(cli_args), env, log)
    try:
        rc = proc.wait(timeout=timeout_s)
    finally:
        if proc.poll() is None:
            e2e.kill_group(proc, grace_s=0)
    if rc != 0:
        raise AssertionError(f"`cli {' '.join(cli_args)}` exited {rc}:\n{e2e.tail(log)}")


def _kill_group_now(proc) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    rc = proc.wait(timeout=30)
    if rc != -signal.SIGKILL:
        raise AssertionError(f"the killed run exited {rc}, not by SIGKILL")
    deadline = time.monotonic() + 10
    while e2e.live_group_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    left = e2e.live_group_members(proc.pid)
    if left:
        raise AssertionError(f"processes of the killed run are still alive: {left}")


def run_and_kill(cli_args: Sequence[str], env: dict, log: Path, table: str, point: str, db: Path,
                 timeout_s: float = RUN_TIMEOUT_S) -> bool:
    """Run the CLI with a stop point armed, SIGKILL its process group there; True if a .wal was left."""
    assert point in POINTS, point
    env = {**env, "CRASH_TABLE": table, "CRASH_POINT": point, "CRASH_MARKER": MARKER}
    proc = e2e.spawn([sys.executable, "-c", WRAPPER, *cli_args], env, log)
    deadline = time.monotonic() + timeout_s
    try:
        while f"{MARKER} {table}:{point}" not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (rc {proc.returncode}) before {table}:{point}:\n{e2e.tail(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {table}:{point} after {timeout_s}s:\n{e2e.tail(log)}")
            time.sleep(0.02)
        wal = Path(f"{db}.wal").exists()
        _kill_group_now(proc)
    finally:
        if proc.poll() is None:
            e2e.kill_group(proc, grace_s=0)
    return wal


def run_and_kill_on_wal(cli_args: Sequence[str], env: dict, log: Path, after: str, db: Path,
                        timeout_s: float = RUN_TIMEOUT_S) -> bool:
    """The plain CLI (no stop point); once `after` is in its log, SIGKILL its process group the moment a
    .wal file is seen. True if the kill happened (False: the run ended first, successfully)."""
    wal = Path(f"{db}.wal")
    proc = e2e.spawn(cli_cmd(cli_args), env, log)
    killed = False
    deadline = time.monotonic() + timeout_s
    try:
        while after not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise AssertionError(f"the run ended (rc {proc.returncode}) before {after!r}:\n{e2e.tail(log)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {after!r} after {timeout_s}s:\n{e2e.tail(log)}")
            time.sleep(0.02)
        while proc.poll() is None and time.monotonic() < deadline:
            if wal.exists():
                _kill_group_now(proc)
                killed = True
                break
            time.sleep(0.0005)
        if not killed and proc.wait(timeout=max(1.0, deadline - time.monotonic())) != 0:
            raise AssertionError(f"the run failed (rc {proc.returncode}):\n{e2e.tail(log)}")
    finally:
        if proc.poll() is None:
            e2e.kill_group(proc, grace_s=0)
    return killed


def snapshot(db: Path, tables: Iterable[str] = STAGE_TABLES) -> dict[str, list[tuple[str, str]]]:
    """Per table: sorted (row key, sha256 of the whole row as JSON). Opens read-only: a corrupt file
    fails here. A table that does not exist yet is empty."""
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return snapshot_of(con, tables)


def snapshot_of(con, tables: Iterable[str] = STAGE_TABLES) -> dict[str, list[tuple[str, str]]]:
    """`snapshot` on an open connection (a DuckDB file, or the shared DuckLake: tests/test_cluster.py)."""
    out: dict[str, list[tuple[str, str]]] = {}
    present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for table in tables:
        if table not in present:
            out[table] = []
            continue
        cur = con.execute(f"SELECT {KEYS[table]} AS _key, * FROM {table}")
        cols = [d[0] for d in cur.description]
        rows = []
        for row in cur.fetchall():
            body = json.dumps(dict(zip(cols[1:], row[1:], strict=True)), sort_keys=True, default=str)
            rows.append((row[0], hashlib.sha256(body.encode()).hexdigest()))
        out[table] = sorted(rows)
    return out


def diff(got: dict, want: dict) -> str:
    lines = []
    for t, w in want.items():
        if got.get(t) != w:
            g = got.get(t, [])
            gk, wk = {k for k, _ in g}, {k for k, _ in w}
            changed = sorted(k for k in gk & wk if {h for kk, h in g if kk == k} != {h for kk, h in w if kk == k})
            lines.append(f"{t}: {len(g)} rows vs {len(w)} in the reference; {len(gk - wk)} keys unexpected "
                         f"(e.g. {sorted(gk - wk)[:2]}), {len(wk - gk)} missing (e.g. {sorted(wk - gk)[:2]}), "
                         f"{len(changed)} with other content (e.g. {changed[:2]})")
    return "\n".join(lines) or "(no difference)"


def leftover_runs(dagster_home: Path) -> dict:
    """Runs still STARTED/STARTING and the `llm` pool slots still claimed, once nothing runs any more:
    both must be empty after a rerun (a killed run must not keep its pool slots)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        live = instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                   dg.DagsterRunStatus.STARTING]))
        info = instance.event_log_storage.get_concurrency_info("llm")
        return {"live_runs": [r.run_id for r in live],
                "claimed_llm_slots": [(s.run_id, s.step_key) for s in info.claimed_slots]}


def duplicates(db: Path) -> dict[str, int]:
    """Rows sharing a row key, per table (all must be 0); rejections may repeat an (item, reason)."""
    import duckdb

    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        for table in [*PARTITION_TABLES, "tool_catalog", "day_export"]:
            if table in present:
                n, distinct = con.execute(f"SELECT count(*), count(DISTINCT {KEYS[table]}) FROM {table}").fetchone()
                out[table] = n - distinct
        if "llm_calls" in present:
            n, distinct = con.execute("SELECT count(*), count(DISTINCT request_hash) FROM llm_calls").fetchone()
            out["llm_calls"] = n - distinct
    return out
