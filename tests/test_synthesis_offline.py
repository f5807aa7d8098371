"""Phases II-IV on the offline backend, checked by BFCL's own multi-turn checker and by replay."""

import json
from functools import cache

import pytest
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker
from flow_helpers import run_llm
from graph_helpers import bfcl_graph

from funreason_pipeline.agents.advanced_tool import structure
from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.query_check import check_query
from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.export.formats import dialogue_to_samples
from funreason_pipeline.sampling.phase1 import sample_partition

TOOLSETS = ["tickets", "travel", "files_twitter", "trading_messages"]


@cache
def synthesize(name):
    ts, tools, edges = bfcl_graph(name)  # probed once per session
    trajs = sample_partition(ts, tools, edges, "2026-05-05", 4).trajectories
    # what the assets do: trajectories go through JSON (DuckDB) before the next stage
    trajs = [type(t).model_validate_json(t.model_dump_json()) for t in trajs]
    out = run_llm(ts, tools, trajs)
    p2, p3 = out.queries, out.traces
    dialogues = []
    for t in trajs:
        q = {r.turn_index: r.query for r in p2.rows if r.trajectory_id == t.trajectory_id}
        tr = {r.turn_index: {"passed": r.passed, "reasoning": r.reasoning, "calls": r.calls, "reply": r.reply}
              for r in p3.rows if r.trajectory_id == t.trajectory_id}
        d, _ = build_dialogue(t, tools, q, tr)
        if d:
            dialogues.append((t, d))
    return ts, tools, trajs, p2, p3, dialogues


def _pycall(name, args):
    return f"{name}(" + ", ".join(f"{k}={v!r}" for k, v in args.items()) + ")"


@pytest.mark.parametrize("name", TOOLSETS)
def test_every_dialogue_passes_bfcl_multi_turn_checker(name):
    ts, _tools, _trajs, _p2, _p3, dialogues = synthesize(name)
    assert dialogues
    for t, d in dialogues:
        model_turns, gt_turns = [], []
        turn = -1
        for m in d["messages"]:
            if m["role"] == "user":
                turn += 1
                model_turns.append([])
                gt_turns.append([_pycall(c.tool, c.arguments) for c in t.turns[turn].calls])
            elif m["role"] == "assistant" and m.get("tool_calls"):
                model_turns[-1].append([_pycall(c["function"]["name"], json.loads(c["function"]["arguments"]))
                                        for c in m["tool_calls"]])
        entry = {"id": f"multi_turn_base_{t.trajectory_id}", "initial_config": t.scenario,
                 "involved_classes": ts.classes}
        verdict = multi_turn_checker(model_turns, gt_turns, entry, "multi_turn_base", f"fr_{t.trajectory_id}")
        assert verdict["valid"], (t.trajectory_id, verdict)


@pytest.mark.parametrize("name", TOOLSETS)
def test_dialogues_replay_their_tool_messages(name):
    ts, tools, _trajs, _p2, _p3, dialogues = synthesize(name)
    for t, d in dialogues:
        world = World.from_scenario(ts, t.scenario, tools)
        pending = {}
        for m in d["messages"]:
            if m["role"] == "assistant":
                for c in m.get("tool_calls", []):
                    pending[c["id"]] = c
            elif m["role"] == "tool":
                c = pending.pop(m["tool_call_id"])
                res = world.call(c["function"]["name"], json.loads(c["function"]["arguments"]))
                assert json.loads(m["content"]) == res.value


def test_queries_are_complete_and_hide_intermediates():
    _ts, tools, trajs, p2, _p3, _ = synthesize("travel")
    specs = {t.name: t for t in tools}
    by_id = {t.trajectory_id: t for t in trajs}
    assert p2.rows
    for r in p2.rows:
        adv = structure(by_id[r.trajectory_id], r.turn_index, specs)
        assert check_query(r.query, adv, []) == []
        assert r.model == "offline"
    assert all(r.reason for r in p2.rejections)


def test_kept_reasoning_is_clean_and_samples_split_per_turn():
    _, _, _, _, _p3, dialogues = synthesize("tickets")
    for _, d in dialogues:
        text = json.dumps(d["messages"])
        assert "Hint:" not in text and "Feedback on your previous attempt" not in text
        samples = dialogue_to_samples(d)
        assert len(samples) == d["n_turns"]
        for s in samples:
            assert s["messages"][s["train_from"] - 1]["role"] == "user"
            assert s["messages"][-1]["role"] == "assistant"


def test_leak_check_flags_ids_and_numbers_not_plain_words():
    from funreason_pipeline.agents.advanced_tool import AdvancedInput, AdvancedTool

    adv = AdvancedTool(name="book", description="d", steps=["a", "b"], output=None,
                       inputs=[AdvancedInput(name="first_name", value="Gabriel", tool="a", param="first_name")])
    intermediates = [{"class": "first", "booking_id": "3426812", "token": "abc123xyz"}]
    assert check_query("Book it for Gabriel, my first name.", adv, intermediates) == []
    problems = check_query("Book it for Gabriel, booking 3426812 please.", adv, intermediates)
    assert problems == ["leaks intermediate value '3426812'"]
    assert check_query("Book it for Gabriel with abc123xyz.", adv, intermediates) == [
        "leaks intermediate value 'abc123xyz'"]
    assert check_query("Book it for Gabriel, ref 34268120.", adv, intermediates) == []  # not the same number
    mention = AdvancedTool(name="m", description="d", steps=["a"], output=None,
                           inputs=[AdvancedInput(name="mentions", value=["@rxu39"], tool="a", param="mentions")])
    assert check_query("Mention @rxu39 please.", mention, [{"following": ["rxu39"]}]) == []
