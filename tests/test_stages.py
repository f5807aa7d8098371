"""Every stage function of funreason_pipeline.stages, called without Dagster: one tickets partition
from the tool catalog to the day export, offline; the outputs stored as their assets would be (a real
DuckDB file, an export root). The stages return data only: export files as content, statistics
from the frames they are given. Each stage is also fed an input it must report: a yield below the minimum, an
unverified turn, a duplicate dialogue, a tampered tool result."""

from __future__ import annotations

import hashlib
import json

import duckdb
import polars as pl
import pytest
from stage_rows import DAY, PHASE1, TS, sft_inputs

from funreason_pipeline.export.formats import EXPORT_FILES
from funreason_pipeline.export.rl import RL_FILE
from funreason_pipeline.stages.dialogues import dialogues_stage
from funreason_pipeline.stages.output import Markdown, StageOutput
from funreason_pipeline.stages.phase1 import trajectories_stage
from funreason_pipeline.stages.sft import sft_stage


@pytest.fixture(scope="module")
def chain(stage_chain):
    """The stages in order, each stored as its asset would be (conftest's session `stage_chain`)."""
    return stage_chain


def _checks(out: StageOutput) -> dict:
    return {c.name: c for c in out.checks}


def test_catalog_and_graph(chain):
    cat, graph = chain["catalog"], chain["graph"]
    assert cat.frame.height == cat.metrics["tools"] == sum(cat.metrics["tools_per_class"].values()) > 0
    assert isinstance(cat.metrics["preview"], Markdown) and not cat.rejections and not cat.checks
    check = _checks(graph)["graph_has_edges"]
    assert check.passed and check.warn and check.metadata["edges"] == graph.frame.height > 0
    assert graph.metrics["data_edges"] + graph.metrics["state_edges"] == graph.frame.height
    assert set(graph.frame["graph_version"].to_list()) == {graph.metrics["graph_version"]}


def test_trajectories_stage_checks_what_it_stored(chain):
    t = chain["trajectories"]
    assert t.frame.height == t.metrics["trajectories"] == 3
    assert t.metrics["calls"] == t.frame["n_calls"].sum()
    checks = _checks(t)
    assert all(checks[n].passed for n in ("every_trajectory_replays", "no_empty_turn", "phase1_yield"))
    assert not any(checks[n].warn for n in ("every_trajectory_replays", "no_empty_turn", "phase1_yield"))
    assert set(t.rejections) == {(DAY, TS)} and t.log == []


def test_trajectories_stage_reports_a_yield_below_the_minimum(chain):
    t = trajectories_stage(DAY, TS, chain["catalog"].frame, chain["graph"].frame,
                           **{**PHASE1, "trajectories_per_partition": 50, "candidate_budget": 2})
    check = _checks(t)["phase1_yield"]
    assert not check.passed and check.description and check.metadata["asked"] == 50
    assert "yield_below_minimum" in {r.reason for r in t.rejections[(DAY, TS)]}
    assert t.log and t.log[0][0] == "error"


def test_llm_stages_account_for_every_turn_offline(chain):
    turns = int(chain["trajectories"].frame["n_turns"].sum())
    q, c = chain["queries"], chain["cot_traces"]
    assert q.frame.height + len(q.all_rejections()) == turns
    assert c.frame.height + len(c.all_rejections()) == q.frame.height
    assert set(q.frame["model"].to_list()) == {"offline"}
    assert q.metrics["llm_fingerprints"] == {"tooling": "offline", "querying": "offline"}
    assert c.metrics["llm_fingerprints"] == {"reasoning": "offline", "critic": "offline"}
    assert c.metrics["passed"] == c.frame["passed"].sum() and c.metrics["per_partition"][f"{DAY}|{TS}"]["rows"] == \
        c.frame.height
    assert isinstance(q.metrics["preview"], Markdown)


def test_dialogues_stage_rows(chain):
    d = chain["dialogues"]
    assert d.frame.height == 3 and not d.all_rejections()
    for row in d.frame.iter_rows(named=True):
        msgs = json.loads(row["messages"])
        assert row["n_calls"] == sum(len(m.get("tool_calls", [])) for m in msgs if m["role"] == "assistant") > 0
        assert json.loads(row["models"]) == ["offline"] and len(json.loads(row["role_models"])) == row["n_turns"]
        assert not row["error_tool_response"] and json.loads(row["injected_errors"]) == {}
    assert d.metrics["mean_calls"] == round(float(d.frame["n_calls"].mean()), 2)


def test_dialogues_stage_truncates_at_an_unverified_turn_and_says_so(chain):
    cot = chain["cot_traces"].frame
    first = cot["trajectory_id"][0]
    failed = cot.with_columns(pl.when((pl.col("trajectory_id") == first) & (pl.col("turn_index") == 1))
                              .then(False).otherwise(pl.col("passed")).alias("passed"))
    d = dialogues_stage(DAY, TS, chain["trajectories"].frame, chain["queries"].frame, failed, chain["catalog"].frame,
                        error_injection_rate=1.0)
    row = d.frame.filter(pl.col("trajectory_id") == first).row(0, named=True)
    assert row["n_turns"] == 1 and row["error_tool_response"] and json.loads(row["injected_errors"])
    reasons = {r.item_id: r.reason for r in d.all_rejections()}
    assert reasons[f"{first}/1"] == "turn_not_verified" and d.metrics["rejections_by_reason"]["turn_not_verified"] >= 1


def test_sft_stage_samples_exports_and_checks(chain):
    s = chain["sft"]
    turns = int(chain["dialogues"].frame["n_turns"].sum())
    assert s.frame.height == s.metrics["samples"] == turns
    assert all(c.passed for c in s.checks) and _checks(s)["yield_above_floor"].warn
    out = chain["db"].parent / "exports" / DAY / TS
    assert sorted(s.exports.files) == sorted(f"{DAY}/{TS}/{name}" for name in (*EXPORT_FILES.values(), "README.md"))
    assert s.exports.files[f"{DAY}/{TS}/openai.jsonl"].decode().count("\n") == turns
    assert (out / "openai.jsonl").read_bytes() == s.exports.files[f"{DAY}/{TS}/openai.jsonl"]
    assert set(s.frame["provenance"].to_list()) == {"offline"}


def test_sft_stage_counts_its_own_rejections_before_they_are_stored(chain):
    """A duplicated dialogue's samples are rejected; the card already counts them although the stage
    wrote nothing (the asset stores them after the stage)."""
    dlg = chain["dialogues"].frame
    twin = dlg.head(1).with_columns(pl.lit("dlg-twin").alias("dialogue_id"))
    s = sft_stage(DAY, TS, pl.concat([dlg, twin]), **sft_inputs(chain))
    reasons = s.metrics["rejections_by_reason"]
    assert reasons and s.frame.height == chain["sft"].frame.height
    card = s.exports.files[f"{DAY}/{TS}/README.md"].decode()
    for reason, n in reasons.items():
        assert any("sft_samples" in line and reason in line and str(n) in line for line in card.splitlines()), reason


def test_sft_stage_fails_its_replay_check_on_a_tampered_result(chain):
    dlg = chain["dialogues"].frame
    messages = json.loads(dlg["messages"][0])
    next(m for m in messages if m["role"] == "tool")["content"] = json.dumps({"tampered": True})
    tampered = dlg.with_columns(pl.when(pl.col("dialogue_id") == dlg["dialogue_id"][0]).then(pl.lit(json.dumps(
        messages))).otherwise(pl.col("messages")).alias("messages"))
    s = sft_stage(DAY, TS, tampered, **sft_inputs(chain))
    check = _checks(s)["every_sample_replays"]
    assert not check.passed and not check.warn and "result_mismatch" in check.metadata["by_reason"]


def test_rl_stage_rows_score_one(chain):
    rl = chain["rl"]
    assert rl.frame.height == rl.metrics["rows"] == chain["sft"].frame.height
    assert _checks(rl)["ground_truth_scores_one"].passed
    assert sorted(rl.exports.files) == sorted(f"{DAY}/{TS}/{name}" for name in (
        RL_FILE, "rl_train.parquet", "rl_validation.parquet", "verl_tools.yaml"))
    assert rl.metrics["verl_settings"]["rows"] == rl.frame.height
    assert not rl.all_rejections()


def test_rl_rows_drop_injected_error_responses_and_keep_their_retries(chain):
    """An injected error response never ran: the RL replay runs it on a copy and drops it, so every
    turn's ground truth (calls, results, end state) is the one of the same dialogue without it."""
    from funreason_pipeline.stages.rl import rl_stage

    inputs = (chain["trajectories"].frame, chain["queries"].frame, chain["cot_traces"].frame, chain["catalog"].frame)
    dlg = dialogues_stage(DAY, TS, *inputs, error_injection_rate=1.0)
    assert dlg.frame["error_tool_response"].all()
    sft = sft_stage(DAY, TS, dlg.frame, **sft_inputs(chain))
    rl = rl_stage(DAY, TS, sft.frame, chain["trajectories"].frame, chain["catalog"].frame)
    assert _checks(rl)["ground_truth_scores_one"].passed and not rl.all_rejections()

    def truths(out):
        return {r["sample_id"]: json.loads(r["row"])["reward_model"]["ground_truth"] for r in out.frame.iter_rows(named=True)}

    injected, plain = truths(rl), truths(chain["rl"])
    assert injected and injected == {k: plain[k] for k in injected}
    shown = [m["content"] for ms in sft.frame["messages"] for m in json.loads(ms) if m["role"] == "tool"]
    assert any("error" in json.loads(c) for c in shown)  # the samples do show the injected responses


def test_score_each_gives_the_verdicts_of_scoring_each_row_alone(chain):
    """score_each carries a dialogue's world from one turn's row to the next: only where the next
    row's start is exactly that end. A wrong call, a dropped call, a reordering or a stray row must
    give the verdicts score_calls gives row by row (a wrong world carried on would pass or fail others)."""
    from funreason_pipeline.reward import score_calls, score_each
    from funreason_pipeline.stages.rl import _own_calls

    rows = [json.loads(r) for r in chain["rl"].frame["row"]]
    assert len({r["extra_info"]["dialogue_id"] for r in rows}) < len(rows)  # dialogues of several turns
    own = [_own_calls(r) for r in rows]
    k = next(i for i in range(1, len(rows) - 1)
             if rows[i + 1]["extra_info"]["dialogue_id"] == rows[i]["extra_info"]["dialogue_id"] and own[i])
    wrong = [dict(c) for c in own[k]]
    wrong[0] = {**wrong[0], "arguments": {**wrong[0]["arguments"], "unknown_argument": 1}}
    variants = {
        "as exported": list(zip(rows, own)),
        "a wrong call mid-dialogue": [(r, wrong if i == k else c) for i, (r, c) in enumerate(zip(rows, own))],
        "a call dropped mid-dialogue": [(r, c[:-1] if i == k else c) for i, (r, c) in enumerate(zip(rows, own))],
        "no calls mid-dialogue": [(r, [] if i == k else c) for i, (r, c) in enumerate(zip(rows, own))],
        "reversed": list(zip(rows, own))[::-1],
        "a turn twice": [*list(zip(rows, own))[: k + 1], (rows[k], own[k]), *list(zip(rows, own))[k + 1:]],
    }
    for name, items in variants.items():
        alone = [score_calls(r, c) for r, c in items]
        assert list(score_each(items)) == alone, name
        if name != "as exported" and name != "reversed" and name != "a turn twice":
            assert alone[k].score < 1.0, name


def test_rl_check_fails_on_a_ground_truth_that_does_not_reach_its_end_state(chain):
    from funreason_pipeline.stages.rl import ground_truth_failures

    rows = [json.loads(r) for r in chain["rl"].frame["row"]]
    assert ground_truth_failures(rows) == []
    # a turn is a task now, and its last call is often a read: drop each call of each ground truth
    # in turn; leaving out a state-changing one must be caught, and named by its sample
    caught = 0
    for row in rows:
        truth = json.loads(row["reward_model"]["ground_truth"])
        for i in range(len(truth["calls"])):
            bad = json.loads(json.dumps(row))
            bad["reward_model"]["ground_truth"] = json.dumps({**truth, "calls": truth["calls"][:i] + truth["calls"][i + 1:]})
            failures = ground_truth_failures([bad])
            if failures:
                assert len(failures) == 1 and failures[0].startswith(row["extra_info"]["sample_id"] + ": ")
                caught += 1
    assert caught > 0


def test_day_export_manifest_matches_the_files(chain):
    d = chain["day"]
    out = chain["db"].parent / "exports" / DAY
    assert d.metrics["samples"] == chain["sft"].frame.height and d.metrics["toolsets"] == 1
    assert "README.md" in d.frame["file"].to_list() and "rl.parquet" in d.frame["file"].to_list()
    for row in d.frame.iter_rows(named=True):
        data = (out / row["file"]).read_bytes()
        assert row["bytes"] == len(data) and row["sha256"] == hashlib.sha256(data).hexdigest()
    with duckdb.connect(str(chain["db"]), read_only=True) as con:  # the lineage view was created
        n = con.execute("SELECT count(*) FROM sample_lineage").fetchone()[0]
    assert n == chain["sft"].frame.height
