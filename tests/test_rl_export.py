"""Issue 13: BFCL checker parity on a whole demo day, the RL export and its reward module.

One real demo day (every BFCL toolset, a few trajectories each, offline backend, real Dagster runs on a
real DuckDB file) is built once per test session and shared by the xdist workers (a file lock).
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import importlib.util
import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow.parquet as pq
import pytest
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name
from funreason_pipeline.export.formats import render_pythonic_calls
from funreason_pipeline.export.rl import RL_CARD_SECTION, RL_FILE
from funreason_pipeline.reward import TurnEnv, compute_score, parse_completion, score_calls

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("bfcl_parity", ROOT / "scripts" / "bfcl_parity.py")
parity = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(parity)

DAY = "2026-12-02"  # before the fix, dialogue twitter-2026-12-02-0000 failed BFCL's checker
BFCL_TOOLSETS = parity.BFCL_TOOLSETS
VERL_COLUMNS = ["data_source", "agent_name", "prompt", "prompt_bfcl", "ability", "reward_model", "extra_info"]
CANARY = Path("/tmp/funreason_rl_canary_must_not_exist")


@contextlib.contextmanager
def _env(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _run_day(base: Path, day: str, toolsets: list[str], trajectories: int) -> None:
    from funreason_pipeline.cli import run_demo
    from funreason_pipeline.defs.day import day_run_config

    with _env(FUNREASON_DB=str(base / "funreason.duckdb"), FUNREASON_EXPORTS=str(base / "data" / "exports")), \
            dg.instance_for_test() as instance:
        assert run_demo(day, toolsets, instance=instance, run_config=day_run_config(trajectories=trajectories))


@pytest.fixture(scope="session")
def demo_day(tmp_path_factory, worker_id) -> Path:
    """Every BFCL toolset of DAY (1 trajectory asked for: the sampler adds more until every tool is a
    target), materialized once for all workers."""
    shared = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    base = shared / "rl-demo-day"
    with open(shared / "rl-demo-day.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (base / "done").exists():
            base.mkdir(exist_ok=True)
            _run_day(base, DAY, BFCL_TOOLSETS, trajectories=1)
            (base / "done").touch()
    return base


@pytest.fixture(scope="session")
def rows(demo_day) -> list[dict]:
    return pq.read_table(demo_day / "data" / "exports" / DAY / RL_FILE).to_pylist()


def _truth(row):
    return json.loads(row["reward_model"]["ground_truth"])


def _answer(row):
    return [{"name": c["name"], "arguments": c["arguments"]} for c in _truth(row)["calls"]]


# ---- checker parity ------------------------------------------------------------------------------
def test_every_dialogue_of_every_bfcl_toolset_passes_bfcl_multi_turn_checker(demo_day):
    """BFCL's own checker (scripts/bfcl_parity.py): each dialogue's calls (per step) as the model's
    answer, the trajectory's turns as ground truth, on the trajectory's scenario. Must be 100%, on
    every BFCL toolset."""
    seen, failures = parity.check_day(demo_day / "funreason.duckdb", DAY)
    assert set(seen) == set(BFCL_TOOLSETS) and all(seen.values()), seen
    assert not failures, f"{len(failures)} of {sum(seen.values())} dialogues fail BFCL's checker: {failures[:3]}"


def test_mutable_defaults_are_recorded_explicitly_so_the_checker_cannot_leak_them():
    """The cause of issue 13's failures: `post_tweet(content=...)` eval()ed by BFCL uses the one
    `mentions=[]` list all instances share, `mention()` extends it, and the ground truth's tweet then
    comes back with the model's mentions. The adapter writes the defaults into the recorded call."""
    ts = toolset_by_name("twitter")
    scenario = generate_scenario(ts, 3)
    world = World.from_scenario(ts, scenario)
    user = scenario["TwitterAPI"]
    login = {"username": user["username"], "password": user["password"]}
    post = {"content": "parity check"}
    assert world.call("authenticate_twitter", login).ok
    tweet = world.call("post_tweet", post).value
    mention = {"tweet_id": tweet["id"], "mentioned_usernames": ["@someone"]}
    assert world.call("mention", mention).ok
    recorded = [("authenticate_twitter", login), ("post_tweet", post), ("mention", mention)]
    assert recorded[1][1] == {"content": "parity check", "tags": [], "mentions": []}

    def check(calls, run):
        line = [f"{n}({', '.join(f'{k}={v!r}' for k, v in a.items())})" for n, a in calls]
        entry = {"id": f"leak_{run}", "initial_config": scenario, "involved_classes": ["TwitterAPI"]}
        return multi_turn_checker([[line]], [line], entry, "multi_turn_base", "leak")

    assert check(recorded, "explicit")["valid"]
    # the same calls without the explicit defaults: BFCL's checker rejects a correct answer
    bare = [(n, {k: v for k, v in a.items() if k not in ("tags", "mentions")}) for n, a in recorded]
    assert check(bare, "bare")["error_type"] == "multi_turn:execution_response_mismatch"


def test_a_default_already_mutated_in_this_process_is_not_what_gets_recorded():
    """BFCL's checker (run in the same process, as tests and evaluation loops do) leaves the shared
    default list mutated; the adapter fills in the default written in the source, not that list."""
    from bfcl_eval.eval_checker.multi_turn_eval.func_source_code.posting_api import TwitterAPI

    shared = TwitterAPI.post_tweet.__defaults__[1]
    shared.append("@leaked")
    try:
        ts = toolset_by_name("twitter")
        scenario = generate_scenario(ts, 4)
        world = World.from_scenario(ts, scenario)
        user = scenario["TwitterAPI"]
        world.call("authenticate_twitter", {"username": user["username"], "password": user["password"]})
        post = {"content": "after a checker run"}
        assert world.call("post_tweet", post).value["mentions"] == [] and post["mentions"] == []
    finally:
        shared.remove("@leaked")


# ---- the RL export -------------------------------------------------------------------------------
def test_rl_export_has_one_row_per_sample_in_the_verl_layout(demo_day, rows, tmp_path, monkeypatch):
    con = duckdb.connect(str(demo_day / "funreason.duckdb"), read_only=True)
    samples = dict(con.execute("SELECT sample_id, toolset FROM sft_samples WHERE day = ?", [DAY]).fetchall())
    assert con.execute("SELECT count(*) FROM rejections WHERE stage = 'rl_samples'").fetchone()[0] == 0
    assert sorted(r["extra_info"]["sample_id"] for r in rows) == sorted(samples)
    assert [r["extra_info"]["index"] for r in rows] == list(range(len(rows)))
    for r in rows:
        info = r["extra_info"]
        assert r["data_source"] == f"funreason-mt/{info['toolset']}" and r["ability"] == "multi_turn_function_calling"
        assert r["reward_model"]["style"] == "rule" and set(_truth(r)) == {"calls", "end_state"}
        assert r["agent_name"] == "tool_agent" and info["need_tools_kwargs"] is True
        assert r["prompt"][0]["role"] == "system" and r["prompt"][-1]["role"] == "user"
        assert r["prompt_bfcl"][0]["role"] == "system" and r["prompt_bfcl"][-1] == r["prompt"][-1]
        openai = json.loads(info["messages"])
        assert openai[-1] == {"role": "user", "content": r["prompt"][-1]["content"]}
        # the Hermes prompt: earlier calls as <tool_call> blocks, their results as tool messages, no reasoning
        n_calls = sum(len(m.get("tool_calls") or []) for m in openai)
        assert sum(m["content"].count("<tool_call>") for m in r["prompt"]) == n_calls
        assert sum(m["role"] == "tool" for m in r["prompt"]) == sum(m["role"] == "tool" for m in openai)
        assert not any("<think>" in m["content"] for m in r["prompt"])
        start = info["tools_kwargs"]["funreason_world"]["create_kwargs"]
        assert (start["initial_state"], start["prior_calls"]) == (info["initial_state"], info["prior_calls"])
        assert info["split"] in ("train", "validation") and info["prompt_chars"] > len(r["prompt"][-1]["content"])
        assert len(json.loads(info["prior_calls"])) == info["turn_index"]
        assert set(json.loads(info["initial_state"])) <= set(info["classes"])
        assert {t["function"]["name"] for t in json.loads(info["tools"])} >= {c["name"] for c in _truth(r)["calls"]}
        steps = [c["step"] for c in _truth(r)["calls"]]  # the ground truth per step: 0, 0, 1, 2, ...
        assert steps == sorted(steps) and (not steps or steps[0] == 0) and set(steps) == set(range(len(set(steps))))
        assert "name" not in r["prompt"][-1]  # role and content only
    assert any(c["step"] > 0 for r in rows for c in _truth(r)["calls"])  # turns of more than one step
    # per toolset: the same rows
    per_toolset = [row for name in sorted(set(samples.values()))
                   for row in pq.read_table(demo_day / "data" / "exports" / DAY / name / RL_FILE).to_pylist()]
    strip = lambda r: {**r, "extra_info": {**r["extra_info"], "index": 0}}
    assert sorted(map(json.dumps, map(strip, per_toolset))) == sorted(map(json.dumps, map(strip, rows)))
    # loads with Hugging Face datasets, offline
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import load_dataset

    ds = load_dataset("parquet", data_files=str(demo_day / "data" / "exports" / DAY / RL_FILE), split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert ds.column_names == VERL_COLUMNS and ds.num_rows == len(rows)
    assert ds[0]["reward_model"] == rows[0]["reward_model"] and ds[0]["prompt"] == rows[0]["prompt"]
    assert score_calls(ds[0], _answer(ds[0])).score == 1.0


def test_ground_truth_scores_one_step_by_step_too(rows):
    assert rows
    for r in rows:
        verdict = score_calls(r, _answer(r))
        assert verdict.valid and verdict.score == 1.0, (r["extra_info"]["sample_id"], verdict.problems)
    r = max(rows, key=lambda r: len(_truth(r)["calls"]))
    env = TurnEnv(r)
    for call in _truth(r)["calls"]:  # a trainer that shows the model each result before its next call
        assert env.step([{"name": call["name"], "arguments": call["arguments"]}]) == [call["result"]]
    assert env.verdict().score == 1.0


def _bfcl_accepts(row, calls) -> bool:
    """BFCL's verdict for `calls`, computed here with a World, independently of the reward module:
    the end state equals the ground truth's, and every ground-truth result is among the results of
    the earlier turns and of `calls` (a multiset subset)."""
    info = row["extra_info"]

    def run(calls):
        world = World.from_scenario(toolset_by_name(info["toolset"]), json.loads(info["initial_state"]))
        prior = [world.call(c["name"], c["arguments"]) for turn in json.loads(info["prior_calls"]) for c in turn]
        results = [world.call(c["name"], copy.deepcopy(c["arguments"])) for c in calls]
        return world.snapshot(), Counter(json.dumps(r.value if r.ok else {"error": r.error}, sort_keys=True)
                                         for r in [*prior, *results])

    state, have = run(calls)
    truth_state, _ = run(_answer(row))
    need = Counter(json.dumps(c["result"], sort_keys=True) for c in _truth(row)["calls"])
    return state == truth_state and not need - have


def _wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 7
    if isinstance(value, str):
        return value + "_x"
    return None


def test_a_wrong_argument_or_a_missing_call_scores_below_one(rows):
    """A changed argument or a dropped call scores below 1 exactly when BFCL's checks would reject it
    (most do; a changed argument that changes nothing observable is still a right answer)."""
    wrong_args = missing = 0
    for r in rows:
        answer = _answer(r)
        for i, call in enumerate(answer):
            arg = next((k for k, v in call["arguments"].items() if _wrong(v) is not None), None)
            if arg is None:
                continue
            bad = copy.deepcopy(answer)
            bad[i]["arguments"][arg] = _wrong(call["arguments"][arg])
            verdict = score_calls(r, bad)
            assert (verdict.score == 1.0) == _bfcl_accepts(r, bad), (r["extra_info"]["sample_id"], bad[i])
            wrong_args += verdict.score < 1.0
            break
        verdict = score_calls(r, answer[:-1])
        if len(answer) == 1:
            assert verdict.score == 0.0 and "empty_turn: no call was run" in verdict.problems
        else:
            assert (verdict.score == 1.0) == _bfcl_accepts(r, answer[:-1])
        missing += verdict.score < 1.0
    assert wrong_args > len(rows) / 2 and missing > len(rows) / 2, (wrong_args, missing, len(rows))


def test_partial_score_grades_the_state_and_the_results(rows):
    r = next(r for r in rows if len(_truth(r)["calls"]) >= 3)
    answer = _answer(r)
    full, part, none = (score_calls(r, a).score for a in (answer, answer[:1], []))
    assert full == 1.0 > part and none == 0.0
    # the ground truth plus a call of an unknown tool: BFCL-valid, but the refused call costs score
    extra = score_calls(r, [*answer, {"name": "rm_rf", "arguments": {}}])
    assert extra.valid and extra.score == pytest.approx(len(answer) / (len(answer) + 1))
    assert any("unknown tool 'rm_rf'" in p for p in extra.problems)


@pytest.mark.parametrize("hostile", [
    {"name": "__import__", "arguments": {"name": "os"}},
    {"name": "_load_scenario", "arguments": {"scenario": {}}},
    {"name": "__class__", "arguments": {}},
    {"name": "eval", "arguments": json.dumps({"source": f"open('{CANARY}', 'w')"})},
    {"function": {"name": "exec", "arguments": "__import__('os')"}},
    "os.system('touch /tmp/x')",
])
def test_hostile_calls_are_refused_with_a_reason_and_never_run(rows, hostile):
    CANARY.unlink(missing_ok=True)
    r = rows[0]
    verdict = score_calls(r, [hostile])
    assert verdict.score == 0.0 and not verdict.valid
    assert any(p.startswith("refused call: ") for p in verdict.problems), verdict.problems
    assert not CANARY.exists()


def test_code_in_argument_strings_and_completions_is_data_never_evaluated(rows):
    CANARY.unlink(missing_ok=True)
    payload = f"__import__('os').system('touch {CANARY}')"
    r, i, arg = next((r, i, k) for r in rows for i, c in enumerate(_answer(r))
                     for k, v in c["arguments"].items() if isinstance(v, str))
    bad = _answer(r)
    bad[i]["arguments"][arg] = payload
    verdict = score_calls(r, bad)
    assert verdict.score < 1.0 and not CANARY.exists()
    # completions: Python-like text is parsed with ast, JSON with json; neither is evaluated
    for text in (f"[{payload}]", f"[ls(a={payload})]", f"<tool_call>{payload}</tool_call>", "print(1) or [x()]"):
        result = compute_score(r["data_source"], text, r["reward_model"]["ground_truth"], r["extra_info"])
        assert result["score"] == 0.0 and result["reason"], text
    assert not CANARY.exists()
    with pytest.raises(ValueError):
        parse_completion(f"[{payload}]")


def test_compute_score_reads_bfcl_and_hermes_style_completions(rows):
    r = max(rows, key=lambda r: len(_truth(r)["calls"]))
    answer, truth_text = _answer(r), r["reward_model"]["ground_truth"]
    pythonic = "<think>\nplan\n</think>\n\n" + render_pythonic_calls(answer)
    hermes = "\n".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in answer)
    for text in (pythonic, hermes):
        assert compute_score(r["data_source"], text, truth_text, r["extra_info"])["score"] == 1.0
    assert compute_score(r["data_source"], render_pythonic_calls(answer[:1]), truth_text,
                         r["extra_info"])["score"] < 1.0


def test_rl_exports_are_byte_identical_across_runs(demo_day, tmp_path):
    """R7 for the RL export: another offline run of a partition gives the same rl.parquet bytes."""
    _run_day(tmp_path, DAY, ["twitter"], trajectories=1)
    again, first = (p / "data" / "exports" / DAY / "twitter" / RL_FILE for p in (tmp_path, demo_day))
    assert again.read_bytes() == first.read_bytes()
    assert pq.read_table(again).num_rows > 0


# ---- the documented example runs ----------------------------------------------------------------
def _python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


def _run_example(code: str, cwd: Path) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120,
                         check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.splitlines()


def _check_example_output(lines: list[str]) -> None:
    assert lines[0] == "1.0" and lines[2] == "0.0", lines
    assert "mismatch" in lines[1] or "empty_turn" in lines[1], lines
    assert lines[3].startswith("{'score': 1.0"), lines


def test_rl_doc_and_dataset_card_examples_run(demo_day):
    page = (ROOT / "docs" / "rl.md").read_text()  # the README links it; its example runs from the repo root
    _check_example_output(_run_example(_python_block(page), demo_day))
    card = (demo_day / "data" / "exports" / DAY / "README.md").read_text()
    assert RL_CARD_SECTION in card and "config_name: rl" not in card and "| - | `rl.parquet` |" in card
    _check_example_output(_run_example(_python_block(RL_CARD_SECTION), demo_day / "data" / "exports" / DAY))
