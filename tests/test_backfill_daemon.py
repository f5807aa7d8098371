"""A 3 days x 2 toolsets backfill executed by the Dagster daemon, checked row for row against an
in-process run of the same partitions.

`dagster-webserver -w workspace.yaml` takes the backfill through GraphQL `launchPartitionBackfill`
(an asset backfill: assetSelection + partitionNames, what the UI's "Materialize" -> partitions dialog
sends). Only then `dagster-daemon run -w workspace.yaml` starts: its BackfillDaemon turns the backfill
into runs (every day x toolset asset has a single_run backfill policy: ranges of partitions per run), the QueuedRunCoordinator launches them (max_concurrent_runs from the
repo's dagster.yaml), and a later BackfillDaemon tick marks the backfill COMPLETED_SUCCESS.
Starting the daemon after the submission saves one 30 s daemon tick (its first iteration runs at
start), which `dagster dev` (daemon up before anything can be submitted) cannot.

The runs use the in-process executor (`runConfigData.execution.config.in_process`): with the default
multiprocess executor every step is a new Python process that reloads the definitions (~5 s idle,
10-20 s on a loaded 2-core box), which took one 6-partition backfill to ~6 minutes here.
"""

import importlib.util
import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dagster_e2e", ROOT / "scripts" / "dagster_e2e.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

DAYS = ["2026-03-01", "2026-03-02", "2026-03-03"]
TOOLSETS = ["tickets", "messages"]
PARTITIONS = [(d, t) for d in DAYS for t in TOOLSETS]
TIMEOUT_S = 900  # a hang guard, not a speed check: on a loaded machine its runs launch slowly
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message stack }
  ... on Error { message } } }"""
STATUS = """query($id: String!) { partitionBackfillOrError(backfillId: $id) { __typename
  ... on PartitionBackfill { status numPartitions isAssetBackfill error { message } }
  ... on Error { message } } }"""
RUNS = """query($id: String!) { runsOrError(filter: {tags: [{key: "dagster/backfill", value: $id}]}) {
  ... on Runs { results { runId status tags { key value } } } } }"""


@pytest.mark.heavy  # dagster-daemon and webserver processes running a 3-day backfill
def test_backfill_three_days_two_toolsets_through_daemon(tmp_path, monkeypatch):
    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        monkeypatch.delenv(k)
    t0 = time.monotonic()

    def mark(what):  # shown with a failure report; `pytest -s` shows it live
        print(f"[{time.monotonic() - t0:6.1f}s] {what}", flush=True)

    db = tmp_path / "backfill.duckdb"
    ref_db = tmp_path / "reference.duckdb"
    env = e2e.isolated_env(tmp_path / "dev", db)
    daemon_log = tmp_path / "daemon.log"
    part_names = [str(dg.MultiPartitionKey({"day": d, "toolset": t})) for d, t in PARTITIONS]
    from funreason_pipeline.defs.partitions import day_toolset_partitions

    all_keys = day_toolset_partitions.get_partition_keys()

    with e2e.DagsterDev(env, tmp_path / "webserver.log", webserver_only=True) as web:
        # while the webserver boots: the per-toolset graph assets, in-process, in the same instance
        monkeypatch.setenv("FUNREASON_EXPORTS", env["FUNREASON_EXPORTS"])
        from funreason_pipeline.definitions import defs
        from funreason_pipeline.defs.resources import build_resources

        d = defs()
        assert set(e2e.GRAPH_ASSETS + e2e.DAY_OUTPUTS) <= {k.to_user_string() for k in d.resolve_all_asset_keys()}
        with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
            for ts in TOOLSETS:
                r = dg.materialize(list(d.assets), selection=e2e.GRAPH_ASSETS, partition_key=ts,
                                   instance=instance, resources=build_resources(str(db)), raise_on_error=False)
                assert r.success, f"graph assets for {ts} failed"
        mark("graph assets materialized")
        web.wait_ready()
        mark(f"webserver ready on {web.url}")

        launched = web.gql(LAUNCH, {"p": {
            "partitionNames": part_names,
            "assetSelection": [{"path": [a]} for a in e2e.DAY_OUTPUTS],
            "title": "test_backfill_daemon",
            "runConfigData": {"execution": {"config": {"in_process": {}}}},
        }})["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill_id = launched["backfillId"]
        mark(f"backfill {backfill_id} launched")

        daemon_cmd = [str(e2e.BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")]
        with e2e.running(daemon_cmd, env, daemon_log) as daemon:
            deadline = time.monotonic() + TIMEOUT_S
            reference_done = False
            while True:
                assert daemon.poll() is None, f"dagster-daemon exited:\n{e2e.tail(daemon_log)}"
                st = web.gql(STATUS, {"id": backfill_id})["partitionBackfillOrError"]
                if st.get("status") not in ("REQUESTED", "CANCELING", "FAILING"):
                    break
                runs = web.gql(RUNS, {"id": backfill_id})["runsOrError"]["results"]
                if not reference_done and len(runs) == len(PARTITIONS) and all(r["status"] in TERMINAL for r in runs):
                    # the reference (same partitions, in-process, another DuckDB file) while the
                    # daemon's next 30 s tick is due, not earlier: on 2 busy cores it would slow the runs
                    mark("backfill runs finished")
                    monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "ref_exports"))
                    e2e.materialize_reference(ref_db, PARTITIONS)
                    reference_done = True
                    mark("reference materialized")
                    continue
                if time.monotonic() > deadline:
                    pytest.fail(f"backfill {backfill_id} not done after {TIMEOUT_S}s: {st}, runs "
                                f"{[r['status'] for r in runs]}\n{e2e.tail(daemon_log)}")
                time.sleep(2)
            mark(f"backfill {st['status']}")
        assert not e2e.live_group_members(daemon.pid), "dagster-daemon left processes behind"
        assert st["status"] == "COMPLETED_SUCCESS", (st, e2e.tail(daemon_log))
        assert st["isAssetBackfill"] and st["numPartitions"] == len(PARTITIONS)

        runs = web.gql(RUNS, {"id": backfill_id})["runsOrError"]["results"]
        mark(f"{len(runs)} runs for {len(PARTITIONS)} partitions")
        assert {r["status"] for r in runs} == {"SUCCESS"}, [r["status"] for r in runs]
        tags = [{t["key"]: t["value"] for t in r["tags"]} for r in runs]
        covered = {t["dagster/partition"] for t in tags if "dagster/partition" in t}
        for t in tags:  # a range run covers every key of the definition between its ends
            if "dagster/asset_partition_range_start" in t:
                i, j = all_keys.index(t["dagster/asset_partition_range_start"]), \
                    all_keys.index(t["dagster/asset_partition_range_end"])
                covered |= set(all_keys[i:j + 1])
        assert set(part_names) <= covered, covered
        # every day x toolset asset takes a range in one run (BackfillPolicy.single_run): the daemon
        # runs the day's assets together, not one run per asset and partition (~24 runs before)
        assert len(runs) < 2 * len(PARTITIONS), len(runs)
    assert not e2e.live_group_members(web.proc.pid), "dagster-webserver left processes behind"
    mark("webserver and daemon stopped")
    if not reference_done:
        monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "ref_exports"))
        e2e.materialize_reference(ref_db, PARTITIONS)

    got, want = e2e.partition_fingerprint(db), e2e.partition_fingerprint(ref_db)
    assert {k for k in got if not k[0].startswith("rejections:")} == \
        {(t, d, ts) for t in e2e.DAY_ASSETS for d, ts in PARTITIONS}, "a (day, toolset) partition is missing"
    assert all(v[0] > 0 for k, v in got.items() if not k[0].startswith("rejections:"))
    counts = {k: v[0] if isinstance(v, tuple) else v for k, v in got.items()}
    ref_counts = {k: v[0] if isinstance(v, tuple) else v for k, v in want.items()}
    assert counts == ref_counts  # exact rows per table and partition (and rejections per stage)
    assert got == want  # and the same row keys
    with duckdb.connect(str(db), read_only=True) as con:  # no duplicate rows from the concurrent runs
        for table, key in e2e.ROW_KEYS.items():
            n, distinct = con.execute(f"SELECT count(*), count(DISTINCT (day, toolset, {key})) FROM {table}").fetchone()
            assert n == distinct, f"{table}: {n - distinct} duplicate rows"
