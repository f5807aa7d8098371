"""Phase I through real Dagster runs on a real DuckDB file."""

import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from funreason_pipeline.defs.phase1_assets import api_graph, tool_catalog, trajectories
from funreason_pipeline.defs.resources import build_resources

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = {
    "tool_catalog": {"toolset", "class_name", "tool_name", "description", "parameters", "response"},
    "api_graph": {"toolset", "src_tool", "dst_tool", "kind", "evidence"},
    "trajectories": {"day", "toolset", "trajectory_id", "seed", "scenario", "turns"},
    "rejections": {"stage", "item_id", "reason", "detail"},
}


def _run(db, toolset, day, instance):
    res = build_resources(str(db))
    r1 = dg.materialize([tool_catalog, api_graph], partition_key=toolset, resources=res, instance=instance)
    key = str(dg.MultiPartitionKey({"day": day, "toolset": toolset}))
    r2 = dg.materialize([tool_catalog, api_graph, trajectories], partition_key=key, resources=res, instance=instance,
                        selection=dg.AssetSelection.assets("trajectories").required_multi_asset_neighbors())
    return r1, r2


def test_phase1_materializes_with_contract_checks_and_idempotent_reruns(tmp_db):
    with dg.instance_for_test() as instance:
        r1, r2 = _run(tmp_db, "tickets", "2026-03-04", instance)
        assert r1.success and r2.success
        checks = {e.check_name: e.passed for e in r2.get_asset_check_evaluations()}
        assert checks["every_trajectory_replays"] and checks["no_empty_turn"]
        meta = r2.asset_materializations_for_node("trajectories")[0].metadata
        assert meta["trajectories"].value >= 6
        # Q3 edge coverage: tickets' small graph is fully used by 6 trajectories with edge goals
        edge_check = next(e for e in r2.get_asset_check_evaluations() if e.check_name == "edges_exercised")
        assert edge_check.metadata["edges"].value > 0
        assert edge_check.passed == (meta["edge_coverage"].value >= 0.9)
        share = edge_check.metadata["exercised"].value / edge_check.metadata["edges"].value
        assert abs(meta["edge_coverage"].value - share) < 0.001
        _run(tmp_db, "messages", "2026-03-04", instance)
        with duckdb.connect(str(tmp_db), read_only=True) as con:
            for table, cols in CONTRACT.items():
                have = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
                assert cols <= have, (table, cols - have)
            assert con.execute("SELECT typeof(day) FROM trajectories LIMIT 1").fetchone()[0] == "DATE"
            before = con.execute("SELECT trajectory_id, turns FROM trajectories ORDER BY 1").fetchall()
            rej_before = con.execute("SELECT count(*) FROM rejections").fetchone()[0]
            assert rej_before > 0
            kinds = {r[0] for r in con.execute("SELECT DISTINCT kind FROM api_graph").fetchall()}
            assert kinds == {"data", "state"}
        _run(tmp_db, "tickets", "2026-03-04", instance)  # rerun: replaces its slice, no duplicates
        with duckdb.connect(str(tmp_db), read_only=True) as con:
            after = con.execute("SELECT trajectory_id, turns FROM trajectories ORDER BY 1").fetchall()
            assert after == before
            assert con.execute("SELECT count(*) FROM rejections").fetchone()[0] == rej_before
            toolsets = {r[0] for r in con.execute("SELECT DISTINCT toolset FROM trajectories").fetchall()}
            assert toolsets == {"tickets", "messages"}


def test_definitions_load():
    from funreason_pipeline.definitions import defs

    d = defs()
    dg.Definitions.validate_loadable(d)
    keys = {k.to_user_string() for k in d.resolve_all_asset_keys()}
    assert {"tool_catalog", "api_graph", "trajectories"} <= keys


@pytest.mark.heavy  # a new Python process loading the project the way `dg` does (~30 s); the definitions
def test_dg_check_defs_passes():  # themselves are validated in-process by test_definitions_load, everyday
    dg_bin = Path(sys.executable).parent / "dg"
    out = subprocess.run([str(dg_bin), "check", "defs"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr
