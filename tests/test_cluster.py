"""The cluster path with real services (issue 14): PostgreSQL (Dagster's instance storage and the
DuckLake catalog) and Redis (the Celery broker) on loopback, two Celery workers in sessions of their
own, a day of 4 toolsets run through them (scripts/cluster_up.sh, scripts/cluster_day.py).

- the lake's tables equal, row by row (content hashes), a reference run of the same day on the local
  DuckDB file (`cli demo`), so the shared store loses, duplicates and changes nothing;
- lineage: every sample joins to its dialogue, trajectory and LLM rows in the lake (`sample_lineage`);
- placement: the steps ran in the worker processes (two of them, each its own session, none a child
  of the launcher), one run's steps on both, and the `llm` pool (limit 1) kept LLM steps one at a time
  across workers while other steps overlapped;
- a worker SIGKILLed mid-run (with its launcher): every partition left in the lake is whole, and a rerun
  gives rows identical to the reference, with the killed runs marked failed.

Needs Debian's postgresql and redis-server (`scripts/cluster_up.sh install`, which .ci/run calls). Where
they are missing the test skips saying so, unless FUNREASON_REQUIRE_CLUSTER=1 (CI), where that fails.
Partition-wise commits under concurrent writers have their own test (test_lake_concurrent_writers).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLUSTER_UP = ROOT / "scripts" / "cluster_up.sh"
DAY, N_TOOLSETS, TRAJECTORIES = "2026-11-27", 4, 2

_spec = importlib.util.spec_from_file_location("crash_points", ROOT / "scripts" / "crash_points.py")
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)
e2e = cp.e2e


def missing_services() -> str | None:
    """Why the cluster cannot run here, or None."""
    if not any(Path(d, "initdb").exists() for d in Path("/usr/lib/postgresql").glob("*/bin")):
        return "PostgreSQL server binaries (/usr/lib/postgresql/*/bin/initdb) are not installed"
    if shutil.which("redis-server") is None:
        return "redis-server is not installed"
    for mod in ("dagster_celery", "dagster_postgres", "duckdb_extension_ducklake"):
        if importlib.util.find_spec(mod) is None:
            return f"python package {mod} (the `cluster` extra) is not installed"
    if os.geteuid() == 0 and subprocess.run(["id", "postgres"], check=False, capture_output=True).returncode != 0:
        return "no `postgres` user to run the server as (Debian's postgresql package creates it)"
    return None


def require_services() -> None:
    why = missing_services()
    if why is None:
        return
    msg = f"{why}: run scripts/cluster_up.sh install (apt, as root)"
    if os.environ.get("FUNREASON_REQUIRE_CLUSTER") == "1":
        pytest.fail(f"FUNREASON_REQUIRE_CLUSTER=1 but {msg}")
    pytest.skip(msg)


def _cluster_env(cluster_dir: Path) -> dict[str, str]:
    out = subprocess.run(["bash", "-c", f"source {cluster_dir}/env.sh && env -0"], capture_output=True,
                         check=True).stdout
    env = dict(item.split("=", 1) for item in out.decode().split("\0") if "=" in item)
    env = {k: v for k, v in env.items() if not k.startswith("FUNREASON_LLM_")}
    env.update({"PYTHONUNBUFFERED": "1", "DAGSTER_DISABLE_TELEMETRY": "1"})
    return env


@pytest.fixture(scope="module")
def cluster():
    """Services and 2 workers in a directory of their own (readable by the `postgres` user), free ports."""
    require_services()
    cluster_dir = Path(tempfile.mkdtemp(prefix="funreason-cluster-"))
    cluster_dir.chmod(0o755)
    base = {**os.environ, "FUNREASON_CLUSTER_DIR": str(cluster_dir), "FUNREASON_PG_PORT": str(e2e.free_port()),
            "FUNREASON_REDIS_PORT": str(e2e.free_port()), "FUNREASON_CLUSTER_WORKERS": "2",
            "FUNREASON_LLM_SLOTS": "1", "FUNREASON_VENV_BIN": str(Path(sys.executable).parent)}
    up = subprocess.run([str(CLUSTER_UP), "up"], check=False, env=base, capture_output=True, text=True, timeout=300)
    try:
        assert up.returncode == 0, f"cluster_up.sh up failed:\n{up.stdout}\n{up.stderr}"
        yield {"dir": cluster_dir, "base": base, "env": _cluster_env(cluster_dir)}
    finally:
        subprocess.run([str(CLUSTER_UP), "down"], check=False, env=base, capture_output=True, timeout=120)
        shutil.rmtree(cluster_dir, ignore_errors=True)


@contextlib.contextmanager
def lake_env(env: dict[str, str]):
    """This process reads the cluster's lake while inside (storage.connect reads the environment)."""
    keys = ("FUNREASON_LAKE", "FUNREASON_LAKE_DATA", "PGPASSWORD")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def lake_snapshot(env: dict[str, str]) -> dict[str, list[tuple[str, str]]]:
    from funreason_pipeline import storage

    with lake_env(env), storage.connect(read_only=True) as con:
        return cp.snapshot_of(con)


def run_day(env: dict[str, str], log: Path, report: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(ROOT / "scripts" / "cluster_day.py"), "--day", DAY, "--toolsets", str(N_TOOLSETS),
           "--trajectories", str(TRAJECTORIES), "--report", str(report)]
    return e2e.spawn(cmd, env, log)


def worker_pids(cluster_dir: Path) -> dict[str, int]:
    return {f.stem: int(f.read_text()) for f in sorted((cluster_dir / "workers").glob("*.pid"))}


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    best = cur = 0
    for _, d in edges:
        cur += d
        best = max(best, cur)
    return best


def step_intervals(env: dict[str, str], run_ids: set[str]) -> dict[str, list[tuple[float, float]]]:
    """step key -> [(start, end)] over the given runs, from the Postgres event log."""
    code = (
        "import json, sys, dagster as dg\n"
        "inst = dg.DagsterInstance.get(); out = {}\n"
        "for rid in json.loads(sys.argv[1]):\n"
        "    start = {}\n"
        "    for r in inst.all_logs(rid):\n"
        "        t = r.dagster_event.event_type_value if r.dagster_event else None\n"
        "        if t == 'STEP_START': start[r.step_key] = r.timestamp\n"
        "        if t in ('STEP_SUCCESS', 'STEP_FAILURE') and r.step_key in start:\n"
        "            out.setdefault(r.step_key, []).append((start[r.step_key], r.timestamp))\n"
        "print(json.dumps(out))\n"
    )
    res = subprocess.run([sys.executable, "-c", code, json.dumps(sorted(run_ids))], env=env, capture_output=True,
                         text=True, check=True, timeout=120)
    return {k: [tuple(x) for x in v] for k, v in json.loads(res.stdout.splitlines()[-1]).items()}


def run_statuses(env: dict[str, str]) -> dict[str, str]:
    code = ("import json, dagster as dg\n"
            "print(json.dumps({r.run_id: r.status.value for r in dg.DagsterInstance.get().get_runs()}))\n")
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, timeout=120)
    return json.loads(res.stdout.splitlines()[-1])


def _reference(tmp_path: Path, toolsets: list[str]) -> subprocess.Popen:
    """The same day on the default path: local DuckDB file, SQLite instance, `cli demo`."""
    env = e2e.isolated_env(tmp_path / "ref", tmp_path / "reference.duckdb")
    for k in ("FUNREASON_LAKE", "FUNREASON_LAKE_DATA", "FUNREASON_EXECUTOR"):
        env.pop(k, None)
    cli = ["demo", "--day", DAY, "--toolsets", ",".join(toolsets), "--trajectories", str(TRAJECTORIES),
           "--workers", "1"]
    return e2e.spawn(cp.cli_cmd(cli), env, tmp_path / "reference.log")


@pytest.mark.heavy  # real PostgreSQL, Redis and two Celery workers running a day, a worker killed
def test_cluster_day_on_two_workers_matches_local_run_and_survives_a_killed_worker(cluster, tmp_path):
    from funreason_pipeline.environments.toolsets import load_toolsets

    toolsets = [t.name for t in load_toolsets()][:N_TOOLSETS]
    env, cdir = cluster["env"], cluster["dir"]
    reference = _reference(tmp_path, toolsets)

    # 1. a run killed mid-way: once worker w1 has taken a step of the day runs, SIGKILL w1 (its whole
    #    process group) and then the launcher (whose run now waits forever on the lost step)
    w1_log = cdir / "workers" / "w1.log"
    before = w1_log.read_text(errors="replace").count("received")
    killed_run = run_day(env, tmp_path / "killed.log", tmp_path / "killed.json")
    deadline = time.monotonic() + 300
    while w1_log.read_text(errors="replace").count("received") < before + 3:  # past the graph steps
        assert killed_run.poll() is None, f"the day ended before w1 took 3 steps:\n{e2e.tail(tmp_path / 'killed.log')}"
        assert time.monotonic() < deadline, f"w1 took no steps:\n{e2e.tail(w1_log)}"
        time.sleep(0.05)
    os.killpg(worker_pids(cdir)["w1"], signal.SIGKILL)
    time.sleep(3)  # the other worker goes on with what it has
    os.killpg(killed_run.pid, signal.SIGKILL)
    killed_run.wait(timeout=30)

    assert reference.wait(timeout=600) == 0, f"reference run failed:\n{e2e.tail(tmp_path / 'reference.log')}"
    ref = cp.snapshot(tmp_path / "reference.duckdb")
    per_partition = {}
    for key, _ in ref["trajectories"]:
        per_partition[key.split("/", 1)[0]] = per_partition.get(key.split("/", 1)[0], 0) + 1
    assert len(per_partition) == N_TOOLSETS and min(per_partition.values()) >= TRAJECTORIES
    assert all(ref[t] for t in ("tool_catalog", "api_graph", "queries", "cot_traces", "dialogues", "sft_samples"))

    # whatever the kill left: each (table, partition) in the lake is either absent or exactly the reference's
    partial = lake_snapshot(env)
    for table, rows in partial.items():
        by_part: dict[str, list] = {}
        for key, h in rows:
            by_part.setdefault(key.split("/", 1)[0], []).append((key, h))
        ref_part: dict[str, list] = {}
        for key, h in ref[table]:
            ref_part.setdefault(key.split("/", 1)[0], []).append((key, h))
        for part, got in by_part.items():
            if table == "rejections":  # one table for all stages: compare per partition and stage
                continue
            assert got == ref_part.get(part), f"{table} partition {part} is partial after the kill"

    # 2. the rerun: a fresh worker in w1's place, the same day again
    restart = subprocess.run([str(CLUSTER_UP), "workers", "2"], check=False, env=cluster["base"], capture_output=True,
                             text=True, timeout=120)
    assert restart.returncode == 0, restart.stdout + restart.stderr
    rerun = run_day(env, tmp_path / "rerun.log", tmp_path / "rerun.json")
    assert rerun.wait(timeout=900) == 0, f"rerun failed:\n{e2e.tail(tmp_path / 'rerun.log')}"
    report = json.loads((tmp_path / "rerun.json").read_text())

    # identical rows to the local reference, in every stage table (rejections included), no duplicates
    got = lake_snapshot(env)
    for table in cp.STAGE_TABLES:
        keys = [k for k, _ in got[table]]
        # (rejections has no unique key: one tool may fail alike twice in a turn; the multiset compare
        # below still catches a doubled row there)
        assert table == "rejections" or len(keys) == len(set(keys)), f"{table}: duplicate rows in the lake"
        assert got[table] == ref[table], f"{table}: lake rows differ from the local run " \
            f"({len(got[table])} vs {len(ref[table])} rows)"

    # lineage: each sample's whole chain, in the lake
    from funreason_pipeline import storage

    with lake_env(env), storage.connect(read_only=True) as con:
        n_samples = con.execute("SELECT count(*) FROM sft_samples").fetchone()[0]
        chained = con.execute("SELECT count(*) FROM sample_lineage WHERE trajectory_id IS NOT NULL AND scenario "
                              "IS NOT NULL AND query IS NOT NULL AND cot_prompt_version IS NOT NULL").fetchone()[0]
        files = con.execute("SELECT count(*) FROM ducklake_list_files('lake', 'sft_samples')").fetchone()[0]
    assert n_samples == len(ref["sft_samples"]) and chained == n_samples
    assert files >= N_TOOLSETS  # Parquet under the shared data path, at least one file per partition
    assert any(Path(env["FUNREASON_LAKE_DATA"]).rglob("*.parquet"))

    # placement: every step in a worker process, each its own session; one run's steps on both workers
    pids = worker_pids(cdir)
    steps = report["steps"]
    assert {s["pid"] for s in steps} == set(pids.values()), (steps, pids)
    for pid in pids.values():
        assert os.getsid(pid) == pid  # a session leader: not a child sharing the launcher's lifetime
    by_run: dict[str, set[int]] = {}
    for s in steps:
        by_run.setdefault(s["run_id"], set()).add(s["pid"])
    assert any(len(p) >= 2 for p in by_run.values()), by_run

    # the `llm` pool (limit 1) held across workers: LLM steps never overlapped, other steps did
    intervals = step_intervals(env, set(by_run))
    llm = [iv for k, v in intervals.items() if k.startswith(("llm_stages", "queries", "cot_traces")) for iv in v]
    assert len(llm) == N_TOOLSETS and _max_overlap(llm) == 1
    assert _max_overlap([iv for v in intervals.values() for iv in v]) >= 2

    # the killed launcher's runs were marked failed by the rerun's launcher; none left running
    statuses = run_statuses(env)
    assert set(report["reaped_runs"]) and all(statuses[r] == "FAILURE" for r in report["reaped_runs"])
    assert not [r for r, s in statuses.items() if s in ("STARTED", "STARTING", "NOT_STARTED")]


# A writer process for test_lake_concurrent_writers: ROUNDS runs of one single-run asset over a range of
# toolset partitions (one output covering several partitions), each round with other rows and counts.
WRITER = r"""
import os, sys
import dagster as dg, polars as pl
from funreason_pipeline import storage
from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager

KEYS = os.environ["KEYS"].split(",")
parts = dg.StaticPartitionsDefinition(sorted(set(os.environ["ALL_KEYS"].split(","))))

def rows_for(key, rnd):
    return 3 + (len(key) + 2 * rnd) % 5

@dg.asset(partitions_def=parts, metadata={"partition_expr": "toolset"}, backfill_policy=dg.BackfillPolicy.single_run())
def events(context) -> pl.DataFrame:
    rnd = int(os.environ["ROUND"])
    return pl.DataFrame([{"toolset": k, "round": rnd, "i": i, "payload": f"{k}:{rnd}:{i}"}
                         for k in context.partition_keys for i in range(rows_for(k, rnd))],
                        schema={"toolset": pl.String, "round": pl.Int64, "i": pl.Int64, "payload": pl.String})

io = PolarsDuckDBIOManager(database="unused-in-lake-mode", schema="main")
for rnd in range(int(os.environ["ROUNDS"])):
    os.environ["ROUND"] = str(rnd)
    tags = {"dagster/asset_partition_range_start": KEYS[0], "dagster/asset_partition_range_end": KEYS[-1]}
    res = dg.materialize([events], resources={"io_manager": io}, tags=tags, instance=dg.DagsterInstance.ephemeral())
    assert res.success
print("RETRIES", storage.CONFLICT_RETRIES["count"], flush=True)
"""


@pytest.mark.heavy  # six processes writing one DuckLake table on the cluster's PostgreSQL
def test_lake_concurrent_writers_lose_and_duplicate_nothing(cluster, tmp_path):
    """Six processes replace partitions of one DuckLake table at once, three rounds each: four own two
    toolsets each (one output of two partitions per run), two race on the same partition from empty.
    Every partition must end with exactly its last round's rows: none lost, none doubled."""
    owned = [[f"t{2 * w}", f"t{2 * w + 1}"] for w in range(4)]
    writers = [*owned, ["race"], ["race"]]
    all_keys = sorted({k for ks in writers for k in ks})
    rounds = 3
    env = {**cluster["env"], "ALL_KEYS": ",".join(all_keys), "ROUNDS": str(rounds)}
    env.pop("FUNREASON_EXECUTOR")
    procs = [e2e.spawn([sys.executable, "-c", WRITER], {**env, "KEYS": ",".join(ks)}, tmp_path / f"w{i}.log")
             for i, ks in enumerate(writers)]
    for i, p in enumerate(procs):
        assert p.wait(timeout=300) == 0, e2e.tail(tmp_path / f"w{i}.log")

    def rows_for(key: str, rnd: int) -> int:  # as in WRITER
        return 3 + (len(key) + 2 * rnd) % 5

    from funreason_pipeline import storage

    with lake_env(cluster["env"]), storage.connect(read_only=True) as con:
        got = con.execute("SELECT toolset, round, i, payload FROM events ORDER BY ALL").fetchall()
    expected = sorted((k, rounds - 1, i, f"{k}:{rounds - 1}:{i}") for k in all_keys
                      for i in range(rows_for(k, rounds - 1)))
    assert got == expected
    retries = sum(int(line.split()[1]) for i in range(len(writers))
                  for line in (tmp_path / f"w{i}.log").read_text().splitlines() if line.startswith("RETRIES "))
    print(f"conflicting commits retried: {retries}")


def test_commit_with_retry_retries_conflicts_only(monkeypatch):
    """The retry gate: a lost commit is retried until it goes through; any other error is raised at once."""
    import duckdb

    from funreason_pipeline import storage

    monkeypatch.setattr(storage.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise duckdb.TransactionException("Failed to commit DuckLake transaction: conflict on table events")
        return "committed"

    assert storage.commit_with_retry(flaky) == "committed" and len(calls) == 3

    def broken():
        calls.append(1)
        raise duckdb.CatalogException("Table with name nope does not exist")

    calls.clear()
    with pytest.raises(duckdb.CatalogException):
        storage.commit_with_retry(broken)
    assert len(calls) == 1
