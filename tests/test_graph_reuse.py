"""`cli demo` reuses a toolset's catalog and graph built from the same inputs, and rebuilds them when
an input changes: the environment's source, or the database no longer holding what was built."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from cli_helpers import clean_env

# the definitions fix their toolset partitions at import: import them here, under the normal toolset
# config, not first inside a test that adds a toolset (stale_graphs imports them lazily)
import funreason_pipeline.defs.partitions  # noqa: F401
from funreason_pipeline.defs.day import stale_graphs

ROOT = Path(__file__).resolve().parents[1]


def _graph_builds(home: Path) -> int:
    with dg.DagsterInstance.from_config(str(home)) as inst:
        return len(inst.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("api_graph"), asset_partitions=["reuse_depot"]),
            limit=100).records)


@pytest.mark.heavy  # three whole `cli demo` processes
def test_graph_is_reused_until_its_inputs_change(tmp_path, monkeypatch):
    pkg = tmp_path / "reuse_envs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(ROOT / "tests" / "envs" / "depot.py", pkg / "depot.py")
    cfg = tmp_path / "toolsets.yaml"
    cfg.write_text("toolsets:\n  - name: reuse_depot\n    classes: [reuse_envs.depot:Depot]\n    environments:\n"
                   "      reuse_envs.depot:Depot: {scenarios: reuse_envs.depot:generate_scenario}\n")
    db, home = tmp_path / "db.duckdb", tmp_path / "home"
    env = clean_env()
    env.update(FUNREASON_TOOLSETS_EXTRA=str(cfg), FUNREASON_DB=str(db), DAGSTER_HOME=str(home),
               PYTHONPATH=f"{tmp_path}{os.pathsep}{env.get('PYTHONPATH', '')}")

    def demo(day: str, *extra: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--day", day, "--toolsets",
                               "reuse_depot", "--workers", "1", "--trajectories", "2", *extra],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        return proc.stdout

    first = demo("2026-11-20")
    assert "reusing" not in first and _graph_builds(home) == 1
    # a second day: same environment, same code -> the graph is reused, the day is still made
    second = demo("2026-11-21")
    assert "reusing the current tool catalog and API graph of 1 toolset(s) (reuse_depot)" in second
    assert _graph_builds(home) == 1
    con = duckdb.connect(str(db), read_only=True)
    assert con.execute("SELECT count(DISTINCT day) FROM dialogues WHERE toolset = 'reuse_depot'").fetchone()[0] == 2
    con.close()
    # what makes a graph stale, asked directly (the next demo would rebuild it): the environment's source
    monkeypatch.setenv("FUNREASON_TOOLSETS_EXTRA", str(cfg))
    monkeypatch.setenv("FUNREASON_DB", str(db))
    monkeypatch.syspath_prepend(str(tmp_path))
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert stale_graphs(inst, ["reuse_depot"]) == []
        source = (pkg / "depot.py").read_text()
        (pkg / "depot.py").write_text(source + "\n# a change to the environment\n")
        assert stale_graphs(inst, ["reuse_depot"]) == ["reuse_depot"]
        (pkg / "depot.py").write_text(source)
        assert stale_graphs(inst, ["reuse_depot"]) == []
        # the database lost the graph's rows (the run history says it was built)
        con = duckdb.connect(str(db))
        con.execute("DELETE FROM api_graph WHERE toolset = 'reuse_depot' AND kind = 'state'")
        con.close()
        assert stale_graphs(inst, ["reuse_depot"]) == ["reuse_depot"]
    # asked for: rebuilt although the next run would have rebuilt it anyway; then current again
    assert "reusing" not in demo("2026-11-22", "--rebuild-graph") and _graph_builds(home) == 2
    with dg.DagsterInstance.from_config(str(home)) as inst:
        assert stale_graphs(inst, ["reuse_depot"]) == []


def test_nightly_day_requests_exactly_the_outdated_graphs(tmp_db):
    """The nightly side (defs/day.next_requests, what nightly_day_sensor yields): its first step asks
    for the graphs never built (all, on a new instance, as one run over the range), not for one built
    from the current inputs, and again for it once its recorded fingerprint differs."""
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.day import RANGE_END, RANGE_START, next_requests
    from funreason_pipeline.defs.partitions import toolset_partitions
    from funreason_pipeline.defs.resources import build_resources

    d = defs()
    order = toolset_partitions.get_partition_keys()
    with dg.instance_for_test() as inst:
        def requested() -> list[str]:
            out = []
            for r in next_requests(inst, "2026-02-02", order):
                assert r.job_name == "environment_graph"
                first, last = (r.partition_key, r.partition_key) if r.partition_key else \
                    (r.tags[RANGE_START], r.tags[RANGE_END])
                out += order[order.index(first):order.index(last) + 1]
            return sorted(out)

        names = sorted(order)
        assert requested() == names
        assert dg.materialize(list(d.assets), selection=["tool_catalog", "api_graph"], partition_key="math",
                              resources=build_resources(str(tmp_db)), instance=inst).success
        assert requested() == [n for n in names if n != "math"]
        # a graph recorded with another fingerprint (as after an environment change) is outdated again
        inst.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="api_graph", partition="math", metadata={"graph_fingerprint": "0000000000000000"}))
        assert requested() == names
