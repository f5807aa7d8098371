"""R2 at the storage layer: SIGKILL a real `cli demo` process while it writes to the DuckDB file
through the pipeline's own storage path (the Dagster IO manager, `defs/io_manager.py` ->
`storage.connect`), then rerun the same command and compare with an uninterrupted run.

The first kills are deterministic (scripts/crash_points.py): the child is the unmodified CLI started
through a wrapper that arms one stop point inside the IO manager's write of one table; there the
child prints a marker and blocks with its connection open, and the test SIGKILLs the whole process
group (nothing runs in the child after the marker: no `finally`, no close, no checkpoint).

  1. first run, killed after `rl_samples`' rows (the partition's last table) are committed but before
     the connection closes: the commit is only in the write-ahead log (the .wal file exists at the
     kill). After the kill the file must open and every table must equal the reference: a committed
     write survives a crash.
  2. rerun, killed while rewriting `dialogues` after its old rows were deleted and before the new
     ones are inserted: the old partition must still be there, whole (delete + insert are one
     transaction); a half-rewritten table would make Dagster, which still has the earlier
     materialization, feed an empty input to anything run later from it.
  3. rerun, killed from outside (no stop point) the first moment a .wal file exists once the
     LLM stages' run has started: a kill at an instant the code does not choose, usually inside a
     commit or the checkpoint that follows it. Every table must again equal the reference.
  4. rerun to completion: the tables equal those of an uninterrupted run in another fresh database
     (row by row, by content hash), with no duplicate ids; the file takes a checkpoint; no killed
     run is left STARTED holding its `llm` pool slot (the CLI reaps runs of dead processes).

The reference (an uninterrupted run of the same command in a fresh database and Dagster home) runs
in parallel with step 1. Offline backend, one small toolset: ~45-55 s on 2 cores. The full variant
(every table x every stop point, LLM backend, more kills) is `make faults` (scripts/fault_suite.py).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("crash_points", ROOT / "scripts" / "crash_points.py")
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)
e2e = cp.e2e

DAY, TOOLSET = "2026-04-01", "tickets"
CLI = ["demo", "--toolsets", TOOLSET, "--day", DAY, "--trajectories", "3", "--workers", "1"]
TIMEOUT_S = 180


@pytest.fixture
def offline(monkeypatch):
    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        monkeypatch.delenv(k)


@pytest.mark.heavy  # crash and resume: many killed `cli demo` processes and reruns
def test_sigkill_during_duckdb_writes_then_rerun_matches_uninterrupted_run(tmp_path, offline):
    ref_db, db = tmp_path / "reference.duckdb", tmp_path / "crash.duckdb"
    ref_env = e2e.isolated_env(tmp_path / "ref", ref_db)
    env = e2e.isolated_env(tmp_path / "crash", db)

    reference = e2e.spawn(cp.cli_cmd(CLI), ref_env, tmp_path / "reference.log")
    try:
        # 1. first run, killed with rl_samples (the last table) committed but the connection still open
        wal = cp.run_and_kill(CLI, env, tmp_path / "kill1.log", "rl_samples", "committed", db, TIMEOUT_S)
        assert reference.wait(timeout=TIMEOUT_S) == 0, e2e.tail(tmp_path / "reference.log")
    finally:
        if reference.poll() is None:
            e2e.kill_group(reference, grace_s=0)
    want = cp.snapshot(ref_db)
    assert all(want.values()), {t: len(v) for t, v in want.items()}  # the reference made rows everywhere
    assert wal, "the kill point did not leave a write-ahead log (the commit was already checkpointed)"
    got = cp.snapshot(db)  # opens: WAL replayed, the committed rows survived the kill
    assert got == want, "after a kill past the commit:\n" + cp.diff(got, want)

    # 2. rerun, killed between DELETE and INSERT of the dialogues partition's rewrite
    cp.run_and_kill(CLI, env, tmp_path / "kill2.log", "dialogues", "after_delete", db, TIMEOUT_S)
    got = cp.snapshot(db)
    assert got == want, "a killed rewrite left a table partly written:\n" + cp.diff(got, want)

    # 3. rerun, killed from outside at an instant the code does not choose
    hit = cp.run_and_kill_on_wal(CLI, env, tmp_path / "kill3.log", "LLM stages for ", db, TIMEOUT_S)
    print(f"uncooperative kill landed during a write: {hit}")
    got = cp.snapshot(db)
    assert got == want, "a kill during a write changed the tables:\n" + cp.diff(got, want)

    # 4. rerun to completion: the same rows as the uninterrupted run, no duplicates
    cp.run_to_completion(CLI, env, tmp_path / "rerun.log", TIMEOUT_S)
    got, want = cp.snapshot(db, cp.ALL_TABLES), cp.snapshot(ref_db, cp.ALL_TABLES)
    assert want["day_export"] and got == want, "after the rerun:\n" + cp.diff(got, want)
    assert not any(cp.duplicates(db).values()), cp.duplicates(db)
    # the killed runs were marked failed and gave their `llm` pool slots back (else, after a few
    # crashes inside an LLM step, every later run would wait on the pool for good)
    left = cp.leftover_runs(Path(env["DAGSTER_HOME"]))
    assert left == {"live_runs": [], "claimed_llm_slots": []}, left
    with duckdb.connect(str(db)) as con:  # read-write open, as the pipeline's next run would
        con.execute("CHECKPOINT")
    assert not Path(f"{db}.wal").exists()
