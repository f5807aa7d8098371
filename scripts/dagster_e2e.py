"""Helpers for the end-to-end tests that run real Dagster processes (tests/test_ui_browser.py,
tests/test_backfill_daemon.py, tests/test_parallel_partitions.py).

Kept out of tests/ so it is not collected; the tests load it by path. Nothing here is imported by
the pipeline itself.

- `isolated_env`: a child environment with its own DAGSTER_HOME (a copy of the repo's dagster.yaml),
  FUNREASON_DB and FUNREASON_EXPORTS, and no FUNREASON_LLM_* settings (offline, deterministic).
- `DagsterDev`: `dagster dev -w workspace.yaml` (or `dagster-webserver` alone) on a free loopback
  port; `spawn`/`running`: any command. Each runs in its own process group with SIGINT/SIGTERM reset
  to their defaults (background processes here may inherit them ignored) and is stopped with SIGINT,
  then SIGKILL on the whole group (`kill_group`).
- `partition_fingerprint` / `materialize_reference`: per-partition row counts and row keys of the
  stage tables, and an in-process reference run to compare them with.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCATION = "funreason_pipeline"
GRAPH_ASSETS = ["tool_catalog", "api_graph"]
DAY_ASSETS = ["trajectories", "queries", "cot_traces", "dialogues", "sft_samples", "rl_samples"]
# what a run of DAY_ASSETS makes: each stage's table with its rejections (and export files), the outputs
# of one computation (a selection names them all)
DAY_OUTPUTS = [*DAY_ASSETS, *(f"{a}_rejections" for a in DAY_ASSETS), "sft_exports", "rl_exports"]
# how a row of each day x toolset table is identified (a partition is compared by count AND keys)
ROW_KEYS = {
    "trajectories": "trajectory_id",
    "queries": "trajectory_id || ':' || turn_index",
    "cot_traces": "trajectory_id || ':' || turn_index",
    "dialogues": "dialogue_id",
    "sft_samples": "sample_id",
    "rl_samples": "sample_id",
}

# exec the real command with SIGINT/SIGTERM at their defaults (ignored dispositions survive exec,
# and Python installs no KeyboardInterrupt handler when it starts with SIGINT ignored)
_RESET_AND_EXEC = (
    "import os, signal, sys\n"
    "for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):\n"
    "    signal.signal(s, signal.SIG_DFL)\n"
    "os.execvp(sys.argv[1], sys.argv[1:])\n"
)


def isolated_env(tmp: Path, db: Path | None = None) -> dict[str, str]:
    """Environment for a child process: fresh DAGSTER_HOME under `tmp`, the given DuckDB file."""
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNREASON_LLM_")}
    env.update({
        "DAGSTER_HOME": str(home),
        "FUNREASON_DB": str(db or tmp / "funreason.duckdb"),
        "FUNREASON_EXPORTS": str(tmp / "exports"),
        "PYTHONUNBUFFERED": "1",
        "DAGSTER_DISABLE_TELEMETRY": "1",
    })
    # create the instance's sqlite tables once, before several processes (demo, dagster dev, daemon)
    # race to migrate an empty home: that race fails with alembic's "more than one head present"
    subprocess.run([sys.executable, "-c", "import dagster as dg; dg.DagsterInstance.get()"], env=env,
                   check=True, capture_output=True, timeout=300)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> subprocess.Popen:
    """Start `cmd` in a new session (its own process group) with default signal dispositions."""
    fh = open(log, "wb")  # noqa: SIM115 - the child keeps its own copy of the descriptor
    try:
        return subprocess.Popen([sys.executable, "-c", _RESET_AND_EXEC, *cmd], cwd=cwd, env=env,
                                stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    finally:
        fh.close()


@contextlib.contextmanager
def running(cmd: Sequence[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """`spawn` for the duration of a with-block; the whole process group is stopped at its end."""
    proc = spawn(cmd, env, log, cwd)
    try:
        yield proc
    finally:
        kill_group(proc)


def kill_group(proc: subprocess.Popen, grace_s: float = 15.0) -> None:
    """SIGINT to the leader (a clean `dagster dev` shutdown), then SIGKILL to the whole group."""
    pgid = proc.pid  # start_new_session: the leader's pid is the group id
    if proc.poll() is None:
        try:
            os.kill(proc.pid, signal.SIGINT)
            proc.wait(timeout=grace_s)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    try:
        os.killpg(pgid, signal.SIGKILL)  # stragglers (code servers, run workers) and a hung leader
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass
    deadline = time.monotonic() + 10  # SIGKILLed members take a moment to exit
    while live_group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def live_group_members(pgid: int) -> list[str]:
    """Processes (not zombies) still in process group `pgid`, as "pid cmd" strings (Linux /proc)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            raw = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        head, _, rest = raw.rpartition(")")
        fields = rest.split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(f"{stat.parent.name} {head.partition('(')[2]}")
    return alive


def tail(path: Path, n: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


class DagsterDev:
    """`dagster dev -w workspace.yaml` (webserver + daemon) for one test; use as a context manager.
    `webserver_only=True` runs `dagster-webserver -w workspace.yaml` instead (no daemon)."""

    def __init__(self, env: dict[str, str], log: Path, port: int | None = None, webserver_only: bool = False):
        self.env, self.log = env, log
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.webserver_only = webserver_only
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> Self:
        if self.webserver_only:
            cmd = [str(BIN / "dagster-webserver")]
        else:
            cmd = [str(BIN / "dagster"), "dev"]
        cmd += ["-w", str(ROOT / "workspace.yaml"), "-h", "127.0.0.1", "-p", str(self.port)]
        self.proc = spawn(cmd, self.env, self.log)
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            kill_group(self.proc)

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dagster dev exited with {self.proc.returncode}:\n{tail(self.log)}")

    def gql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body,
                                     headers={"content-type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            out = json.loads(resp.read())
        if out.get("errors"):
            raise AssertionError(f"GraphQL errors: {out['errors']}")
        return out["data"]

    def wait_ready(self, timeout_s: float = 120) -> None:
        """Wait for /server_info, then for the code location to be LOADED (fail on a load error)."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/server_info", timeout=5) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no /server_info after {timeout_s}s:\n{tail(self.log)}")
            time.sleep(0.5)
        query = """{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
                     locationOrLoadError { __typename ... on PythonError { message } } } } } }"""
        while True:
            self._check_alive()
            entries = self.gql(query)["workspaceOrError"].get("locationEntries", [])
            entry = next((e for e in entries if e["name"] == LOCATION), None)
            if entry and entry["loadStatus"] == "LOADED":
                err = entry["locationOrLoadError"]
                if err and err["__typename"] == "PythonError":
                    raise AssertionError(f"code location {LOCATION} failed to load: {err['message']}")
                if err and err["__typename"] == "RepositoryLocation":
                    return
            if time.monotonic() > deadline:
                raise AssertionError(f"code location not loaded after {timeout_s}s: {entries}\n{tail(self.log)}")
            time.sleep(0.5)


def partition_fingerprint(db: Path, tables: Iterable[str] = DAY_ASSETS) -> dict:
    """{(table, day, toolset): (row count, sorted row keys)} plus rejections per stage and partition."""
    import duckdb

    out: dict = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in tables:
            rows = con.execute(f"SELECT strftime(day, '%Y-%m-%d'), toolset, {ROW_KEYS[table]} FROM {table}").fetchall()
            for day, toolset, key in rows:
                out.setdefault((table, day, toolset), []).append(key)
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        if "rejections" in present:
            for stage, day, toolset, n in con.execute(
                "SELECT stage, strftime(day, '%Y-%m-%d'), toolset, count(*) FROM rejections "
                "WHERE day IS NOT NULL GROUP BY ALL"
            ).fetchall():
                out[("rejections:" + stage, day, toolset)] = n
    return {k: (len(v), sorted(v)) if isinstance(v, list) else v for k, v in out.items()}


def table_counts(db: Path, sql_by_name: dict[str, str]) -> dict:
    import duckdb

    with duckdb.connect(str(db), read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall()) for name, sql in sql_by_name.items()}


def materialize_reference(db: Path, partitions: Sequence[tuple[str, str]], day_export: bool = False) -> None:
    """In-process, sequential, ephemeral instance: graph assets per toolset, then each (day, toolset)
    partition of DAY_ASSETS (optionally then day_export per day) into `db`. The caller sets
    FUNREASON_EXPORTS and clears FUNREASON_LLM_* (monkeypatch) first."""
    import dagster as dg

    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.resources import build_resources

    d = defs()
    assets = list(d.assets or [])
    resources = build_resources(str(db))
    with dg.DagsterInstance.ephemeral() as instance:
        for toolset in dict.fromkeys(t for _, t in partitions):
            r = dg.materialize(assets, selection=GRAPH_ASSETS, partition_key=toolset, instance=instance,
                               resources=resources, raise_on_error=False)
            assert r.success, f"reference graph run failed for {toolset}"
        for day, toolset in partitions:
            key = str(dg.MultiPartitionKey({"day": day, "toolset": toolset}))
            # each stage with the other outputs of its computation (rejections, export files)
            r = dg.materialize(assets, selection=DAY_OUTPUTS,
                               partition_key=key, instance=instance, resources=resources, raise_on_error=False)
            assert r.success, f"reference run failed for {key}"
        if day_export:
            for day in dict.fromkeys(day for day, _ in partitions):
                r = dg.materialize(assets, selection=["day_export", "day_exports"], partition_key=day, instance=instance,
                                   resources=resources, raise_on_error=False)
                assert r.success, f"reference day_export failed for {day}"
