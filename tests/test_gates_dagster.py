"""The gates through real Dagster runs (dg.materialize on a real DuckDB file):

- error injection at rate 1 passes the blocking checks (`every_trajectory_replays`, `no_empty_turn`,
  `every_sample_replays`): the injected failures are in the recorded trace and the replay knows them;
- a tampered stored dialogue fails `every_sample_replays`, with the reason in the check's metadata;
- a run with real endpoints for tooling and querying only (Phase III offline) has an exact card and
  exact per-row provenance in the table and every export.
"""

from __future__ import annotations

import json

import dagster as dg
import duckdb
import pytest
from stage_rows import small_day

from funreason_pipeline import config
from funreason_pipeline.defs.resources import build_resources

# with each stage its rejections (and files): the other outputs of its computation
DAY_ASSETS = dg.AssetSelection.assets("trajectories", "queries", "cot_traces", "dialogues",
                                     "sft_samples").required_multi_asset_neighbors()


def _assets():
    from funreason_pipeline.definitions import defs

    return list(defs().assets or [])


def _run(db, inst, day, selection=DAY_ASSETS, run_config=None, toolset="tickets"):
    key = str(dg.MultiPartitionKey({"day": day, "toolset": toolset}))
    if selection is DAY_ASSETS:  # a small day (stage_rows.small_day): the checks' verdicts hold for any number
        run_config = small_day((run_config or {}).get("ops"))  # of rows
    return dg.materialize(_assets(), selection=selection, partition_key=key, resources=build_resources(str(db)),
                          instance=inst, run_config=run_config, raise_on_error=False)


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


@pytest.fixture(scope="module")
def graph_db(tmp_path_factory):
    """tickets' catalog and graph once for the module (the day runs below share them)."""
    db = tmp_path_factory.mktemp("gates") / "funreason.duckdb"
    with dg.instance_for_test() as inst:
        r = dg.materialize(_assets(), selection=["tool_catalog", "api_graph"], partition_key="tickets",
                           resources=build_resources(str(db)), instance=inst)
        assert r.success
    return db


def test_error_injection_at_rate_one_passes_the_blocking_checks(graph_db):
    cfg = {"ops": {"dialogues": {"config": {"error_injection_rate": 1.0}}}}
    with dg.instance_for_test() as inst:
        r = _run(graph_db, inst, "2026-03-01", run_config=cfg)
    checks = _checks(r)
    assert r.success, {k: (v.passed, v.metadata) for k, v in checks.items()}
    for name in ("every_trajectory_replays", "no_empty_turn", "every_sample_replays"):
        assert checks[name].passed, (name, checks[name].metadata)
    with duckdb.connect(str(graph_db), read_only=True) as con:
        rows = con.execute("SELECT error_tool_response, injected_errors, messages FROM dialogues "
                           "WHERE day = '2026-03-01'").fetchall()
        samples = con.execute("SELECT count(*) FROM sft_samples WHERE day = '2026-03-01'").fetchone()[0]
    assert rows and samples and all(flag for flag, _, _ in rows)
    for _, injected, messages in rows:
        shown = {m["tool_call_id"]: json.loads(m["content"]) for m in json.loads(messages) if m["role"] == "tool"}
        assert json.loads(injected) and all(shown[k] == v for k, v in json.loads(injected).items())


def test_a_tampered_stored_dialogue_fails_every_sample_replays_with_its_reason(graph_db):
    day = "2026-03-02"
    with dg.instance_for_test() as inst:
        assert _run(graph_db, inst, day).success
        with duckdb.connect(str(graph_db)) as con:
            dialogue_id, messages = con.execute("SELECT dialogue_id, messages FROM dialogues WHERE day = ? "
                                                "ORDER BY dialogue_id LIMIT 1", [day]).fetchone()
            messages = json.loads(messages)
            tool = next(m for m in messages if m["role"] == "tool")
            tool["content"] = json.dumps({"tampered": True})
            con.execute("UPDATE dialogues SET messages = ? WHERE day = ? AND dialogue_id = ?",
                        [json.dumps(messages), day, dialogue_id])
        sft = dg.AssetSelection.assets("sft_samples").required_multi_asset_neighbors()  # with its rejections, files
        r = _run(graph_db, inst, day, selection=sft)
    check = _checks(r)["every_sample_replays"]
    assert not check.passed and not r.success
    assert check.metadata["failures"].value >= 1
    assert "result_mismatch" in check.metadata["by_reason"].value
    assert dialogue_id in check.metadata["first"].value


def test_mixed_online_offline_run_has_an_exact_card_and_row_provenance(tmp_db, monkeypatch):
    from test_synthesis_llm import ScriptedAgents

    from funreason_pipeline.cli import run_demo
    from testing.llm_server import ServerConfig, TestServer

    with TestServer(ServerConfig(responder=ScriptedAgents([]))) as srv:
        for role in ("TOOLING", "QUERYING"):  # reasoning and critic: no endpoint, so Phase III runs offline
            monkeypatch.setenv(f"FUNREASON_LLM_BASE_URL_{role}", srv.url)
            monkeypatch.setenv(f"FUNREASON_LLM_MODEL_{role}", "writer-model")
        with dg.instance_for_test() as inst:
            assert run_demo("2026-03-03", ["tickets"], instance=inst, run_config=small_day())  # n is any
    with duckdb.connect(str(tmp_db), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM sft_samples").fetchone()[0]
        prov = {p for (p,) in con.execute("SELECT DISTINCT provenance FROM sft_samples").fetchall()}
        models = json.loads(con.execute("SELECT role_models FROM sft_samples LIMIT 1").fetchone()[0])
    assert n > 0 and prov == {"partly_offline"}
    # offline Phase III makes one attempt: no critique, so the critic wrote nothing
    assert models == {"tooling": "writer-model", "querying": "writer-model", "reasoning": "offline",
                      "critic": "unused"}
    out = config.exports_dir(tmp_db) / "2026-03-03"
    card = (out / "README.md").read_text()
    assert "partly-offline-backend" in card and f"Partly offline: {n} of {n} samples" in card
    assert f"| tooling | 100.0% | writer-model ({n}) |" in card
    assert f"| querying | 100.0% | writer-model ({n}) |" in card
    assert f"| reasoning | 0.0% | offline ({n}) |" in card and f"| critic | 0.0% | unused ({n}) |" in card
    assert "(roles with offline text:\n> reasoning)" in card
    assert "| backend | partly offline |" in card
    for name in ("openai.jsonl", "trl_prompt_completion.jsonl", "sharegpt.jsonl", "bfcl_prompting.jsonl"):
        for line in (out / name).read_text().splitlines():
            assert json.loads(line)["provenance"] == "partly_offline", name
    assert f"Partly offline: {n} of {n} samples" in (out / "tickets" / "README.md").read_text()
