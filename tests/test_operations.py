"""Operations: schedules, prompt-versioned staleness, lineage."""

import importlib
import shutil

import dagster as dg
import duckdb
import pytest
from dagster._core.definitions.data_version import StaleStatus
from dagster._utils.test.data_versions import get_stale_status_resolver
from stage_rows import small_day

from funreason_pipeline.agents import prompts
from funreason_pipeline.defs.resources import build_resources
from funreason_pipeline.environments.toolsets import load_toolsets


def _graphs_current(inst):
    from funreason_pipeline.environments.fingerprint import graph_fingerprint

    for t in load_toolsets():
        inst.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="api_graph", partition=t.name, metadata={"graph_fingerprint": graph_fingerprint(t)}))


def test_nightly_run_size_comes_from_the_environment(monkeypatch):
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.day import next_requests, nightly_config

    monkeypatch.setenv("FUNREASON_NIGHTLY_TRAJECTORIES", "24")
    monkeypatch.setenv("FUNREASON_NIGHTLY_EDGE_TARGET", "0.9")
    monkeypatch.setenv("FUNREASON_NIGHTLY_WORKERS", "3")
    d = defs()
    with dg.instance_for_test() as inst:
        _graphs_current(inst)
        reqs = next_requests(inst, "2026-02-02", [t.name for t in load_toolsets()], nightly_config())
    assert len(reqs) == 1 and reqs[0].run_config == {
        "ops": {"trajectories": {"config": {"trajectories_per_partition": 24, "edge_coverage_target": 0.9}}},
        "resources": {"processes": {"config": {"workers": 3}}}}
    # the config is valid for the job (Dagster checks it against TrajectoryConfig and the resource)
    job = d.resolve_job_def("day_synthesis")
    assert job.run_config_schema.config_type is not None
    assert dg.validate_run_config(job, reqs[0].run_config)
    from funreason_pipeline.defs.automation import nightly_run_config

    monkeypatch.setenv("FUNREASON_NIGHTLY_EDGE_TARGET", "lots")
    with pytest.raises(ValueError, match="FUNREASON_NIGHTLY_EDGE_TARGET"):
        nightly_run_config()
    monkeypatch.setenv("FUNREASON_NIGHTLY_EDGE_TARGET", "")
    monkeypatch.setenv("FUNREASON_NIGHTLY_TRAJECTORIES", "-3")
    with pytest.raises(ValueError, match="FUNREASON_NIGHTLY_TRAJECTORIES"):
        nightly_run_config()
    monkeypatch.setenv("FUNREASON_NIGHTLY_TRAJECTORIES", "")
    monkeypatch.setenv("FUNREASON_NIGHTLY_WORKERS", "0")
    with pytest.raises(ValueError, match="FUNREASON_NIGHTLY_WORKERS"):
        nightly_config()


def _assets():
    from funreason_pipeline.defs import phase1_assets, sft_assets, synthesis_assets

    synthesis_assets = importlib.reload(synthesis_assets)  # code versions hash the prompt files at import
    return {
        "graph": [phase1_assets.tool_catalog, phase1_assets.api_graph],
        "day": [phase1_assets.trajectories, synthesis_assets.llm_stages,
                synthesis_assets.dialogues, sft_assets.sft_samples],
    }


def test_prompt_edit_marks_exactly_the_asset_and_lets_unchanged_output_stop_the_cascade(tmp_db, tmp_path,
                                                                                       monkeypatch):
    pdir = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPT_DIR, pdir)
    monkeypatch.setenv("FUNREASON_PROMPTS_DIR", str(pdir))
    res = build_resources(str(tmp_db))
    key = str(dg.MultiPartitionKey({"day": "2026-04-01", "toolset": "tickets"}))
    with dg.instance_for_test() as inst:
        a = _assets()
        everything = a["graph"] + a["day"]
        assert dg.materialize(everything, selection=["tool_catalog", "api_graph"], partition_key="tickets",
                              resources=res, instance=inst).success
        # a small day (2 trajectories): staleness and the stopped cascade do not depend on the number of rows
        assert dg.materialize(everything, selection=[k for x in a["day"] for k in x.keys], partition_key=key,
                              resources=res, instance=inst, run_config=small_day()).success

        def status(assets):
            r = get_stale_status_resolver(inst, assets)
            return {k.to_user_string(): r.get_status(k, key) for x in assets[2:] for k in x.keys}

        assert set(status(everything).values()) == {StaleStatus.FRESH}
        (pdir / "reasoning.md").write_text((pdir / "reasoning.md").read_text() + "\nBe concise.\n")
        a = _assets()
        everything = a["graph"] + a["day"]
        st = status(everything)
        assert st["cot_traces"] == StaleStatus.STALE
        assert st["queries"] == StaleStatus.FRESH and st["trajectories"] == StaleStatus.FRESH
        # rerun the edited asset (with queries: one multi-asset; their requests come from the cache):
        # offline reasoning does not read the prompt, so the content (and its data version) is
        # unchanged and the descendants stay fresh instead of cascading
        llm = dg.AssetSelection.assets("queries", "cot_traces").required_multi_asset_neighbors()
        assert dg.materialize(everything, selection=llm, partition_key=key, resources=res, instance=inst).success
        st = status(everything)
        assert set(st.values()) == {StaleStatus.FRESH}, st


def test_lineage_view_traces_a_sample_to_its_origins(stage_chain):
    """On stage rows (conftest's `stage_chain`: every stage of one offline partition, stored as its asset
    would be, the day export creating the view) instead of a whole demo."""
    with duckdb.connect(str(stage_chain["db"]), read_only=True) as con:
        row = con.execute("SELECT sample_id, trajectory_id, scenario, graph_version, query_model, cot_model, "
                          "cot_prompt_version FROM sample_lineage LIMIT 1").fetchone()
    assert row is not None and all(v is not None for v in row)
    assert row[4] == "offline" and row[5] == "offline"
