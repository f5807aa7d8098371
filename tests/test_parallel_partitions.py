"""R3: four partition runs in parallel on one DuckDB file all succeed, with exactly the rows of a
sequential reference run.

Four `python -m funreason_pipeline.cli demo --toolsets <ts> --day <d>` processes start at once
against the same FUNREASON_DB and the same DAGSTER_HOME (sqlite run storage). Each one rebuilds its
toolset's graph assets (so two processes rewrite the same tool_catalog/api_graph slice
concurrently), materializes its day x toolset partition, then the day's export. One toolset per day,
so every table, day_export included, has a deterministic expected content. The reference is the same
four partitions materialized one after another, in-process, into another DuckDB file.
"""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dagster_e2e", ROOT / "scripts" / "dagster_e2e.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

PARTITIONS = [("2026-03-01", "tickets"), ("2026-03-02", "messages"),
              ("2026-03-03", "tickets"), ("2026-03-04", "messages")]
TIMEOUT_S = 180
OTHER_TABLES = {  # the per-toolset graph tables and the per-day export manifest
    "tool_catalog": "SELECT toolset, count(*), count(DISTINCT tool_name) FROM tool_catalog GROUP BY ALL",
    "api_graph": "SELECT toolset, count(*) FROM api_graph GROUP BY ALL",
    "day_export": "SELECT strftime(day, '%Y-%m-%d'), count(*) FROM day_export GROUP BY ALL",
}


@pytest.mark.heavy  # four whole `cli demo` processes at once plus a reference run
def test_four_partition_runs_in_parallel_on_one_duckdb(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        monkeypatch.delenv(k)
    db = tmp_path / "shared.duckdb"
    env = e2e.isolated_env(tmp_path / "par", db)
    # Create the instance's sqlite storage once, as `dg dev` / a first `make demo` would have: four
    # processes initializing a fresh DAGSTER_HOME at the same moment race on the alembic stamp
    # ("Version table 'alembic_version' has more than one head present"), a Dagster/sqlite limit
    # that is not what this test is about.
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]):
        pass

    procs = []
    for day, ts in PARTITIONS:
        log = tmp_path / f"demo_{day}_{ts}.log"
        cmd = [sys.executable, "-m", "funreason_pipeline.cli", "demo", "--toolsets", ts, "--day", day]
        procs.append(((day, ts), log, e2e.spawn(cmd, env, log)))
    try:
        # the sequential reference, in this process, while the four run
        ref_db = tmp_path / "reference.duckdb"
        monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "ref_exports"))
        e2e.materialize_reference(ref_db, PARTITIONS, day_export=True)

        deadline = time.monotonic() + TIMEOUT_S
        for part, log, p in procs:
            try:
                rc = p.wait(timeout=max(1.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise AssertionError(f"demo {part} still running after {TIMEOUT_S}s:\n{e2e.tail(log)}") from None
            assert rc == 0, f"demo {part} exited {rc}:\n{e2e.tail(log)}"
    finally:
        for _, _, p in procs:
            if p.poll() is None:
                e2e.kill_group(p, grace_s=2)

    # the four synthesis runs really overlapped (run records in the shared instance)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        # per partition: its Phase I run, its LLM run (range tags of one key) and its Phase IV run
        def part_of(run):
            t = run.tags
            key = t.get("dagster/partition") or t.get("dagster/asset_partition_range_start", "")
            return key if key.count("|") == 1 else None

        records = [r for r in instance.get_run_records() if part_of(r.dagster_run)]
        assert {part_of(r.dagster_run) for r in records} == {f"{d}|{ts}" for d, ts in PARTITIONS}
        assert all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records)
        by_part: dict = {}
        for r in records:
            s, e = by_part.get(part_of(r.dagster_run), (r.start_time, r.end_time))
            by_part[part_of(r.dagster_run)] = (min(s, r.start_time), max(e, r.end_time))
        spans = list(by_part.values())
        max_overlap = max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)
        print(f"synthesis runs overlapping at most: {max_overlap}")
        assert max_overlap >= 2, f"the partition runs did not overlap: {spans}"

    got, want = e2e.partition_fingerprint(db), e2e.partition_fingerprint(ref_db)
    expected_keys = {(t, d, ts) for t in e2e.DAY_ASSETS for d, ts in PARTITIONS}
    assert {k for k in got if not k[0].startswith("rejections:")} == expected_keys
    assert {k: v[0] if isinstance(v, tuple) else v for k, v in got.items()} == \
        {k: v[0] if isinstance(v, tuple) else v for k, v in want.items()}  # exact rows per partition
    assert got == want  # and the same row keys
    assert e2e.table_counts(db, OTHER_TABLES) == e2e.table_counts(ref_db, OTHER_TABLES)
    with duckdb.connect(str(db), read_only=True) as con:  # no duplicates from concurrent rewrites
        for table, key in e2e.ROW_KEYS.items():
            n, distinct = con.execute(f"SELECT count(*), count(DISTINCT (day, toolset, {key})) FROM {table}").fetchone()
            assert n == distinct, f"{table}: {n - distinct} duplicate rows"
        n, distinct = con.execute("SELECT count(*), count(DISTINCT (toolset, tool_name)) FROM tool_catalog").fetchone()
        assert n == distinct, f"tool_catalog: {n - distinct} duplicate rows"
