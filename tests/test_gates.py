"""Every gate rejects a wrong answer that has calls, and says why.

The gates: `verify_turn` (Phase III), the trajectory replay (Phase I, and the `every_trajectory_replays`
check), the sample replay (the blocking `every_sample_replays` check). Each is fed the same five
wrong answers on a real TicketAPI world: a wrong argument, an order that changes state, a missing
call, an extra state-changing call, a tampered stored result. Each test expects the exact set of
reason codes, so leaving out one comparison in a gate turns a test red.
"""

from __future__ import annotations

import json

import pytest
from flow_helpers import run_llm

from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.export.formats import dialogue_to_samples
from funreason_pipeline.models import ToolCall, Trajectory, Turn
from funreason_pipeline.verify.execution import ProposedCall, start_world, verify_turn
from funreason_pipeline.verify.replay import reason_of, replay_sample, replay_trajectory, seal_trajectory

TS = toolset_by_name("tickets")
TOOLS = toolset_tools(TS)
SCENARIO = json.loads(json.dumps(generate_scenario(TS, 1)))
NEW = 1741  # the id TicketAPI gives the first ticket created in this scenario

# the ground truth: two turns on one evolving state
GT = [
    [("create_ticket", {"title": "Monitor flickers", "description": "Desk 12", "priority": 3}),
     ("get_ticket", {"ticket_id": NEW})],
    [("resolve_ticket", {"ticket_id": NEW, "resolution": "Replaced the cable"}),
     ("close_ticket", {"ticket_id": NEW})],
]


def _mutate(name: str) -> tuple[list, int]:
    """A wrong answer (the calls a model might make) and the turn it is wrong in."""
    spec = [list(t) for t in GT]
    if name == "wrong_argument":
        spec[0][0] = ("create_ticket", {**GT[0][0][1], "priority": 4})
        return spec, 0
    if name == "wrong_order":  # close then resolve: the same results, another end status
        spec[1] = [GT[1][1], GT[1][0]]
        return spec, 1
    if name == "missing_call":
        spec[1] = [GT[1][1]]
        return spec, 1
    if name == "extra_call":
        spec[1] = [*GT[1], ("create_ticket", {"title": "Extra"})]
        return spec, 1
    raise AssertionError(name)


def record(spec, end_states=None) -> Trajectory:
    """Execute the calls on a fresh world and record them with their real results (a consistent record)."""
    world = World.from_scenario(TS, SCENARIO, TOOLS)
    turns = []
    for calls in spec:
        recorded = []
        for tool, args in calls:
            res = world.call(tool, args)
            assert res.ok, (tool, res.error)
            recorded.append(ToolCall(tool=tool, arguments=args, result=res.value))
        turns.append(Turn(target_tool=calls[-1][0], calls=recorded))
    traj = Trajectory(trajectory_id="tickets-2026-01-01-0000", toolset="tickets", seed=1, scenario=SCENARIO,
                      turns=turns)
    if end_states is not None:
        traj = traj.model_copy(update={"turns": [t.model_copy(update={"end_state": s})
                                                 for t, s in zip(traj.turns, end_states)]})
    return traj


def sealed_gt() -> Trajectory:
    traj, problems, _ = seal_trajectory(record(GT), TS, TOOLS)
    assert problems == []
    return traj


def tamper_result(traj: Trajectory, turn: int, position: int) -> Trajectory:
    data = traj.model_dump()
    data["turns"][turn]["calls"][position]["result"]["title"] = "Something else"
    return Trajectory.model_validate(data)


def reasons(problems: list[str]) -> set[str]:
    return {reason_of(p) for p in problems}


MUTATIONS = ["wrong_argument", "wrong_order", "missing_call", "extra_call"]


# ---- verify_turn (Phase III) --------------------------------------------------------------------
VERIFY_EXPECTED = {
    "wrong_argument": {"state_mismatch", "response_mismatch"},
    "wrong_order": {"state_mismatch"},
    "missing_call": {"state_mismatch", "response_mismatch"},
    "extra_call": {"state_mismatch"},
}


def test_verify_turn_passes_the_ground_truth():
    gt = sealed_gt()
    for k in range(len(gt.turns)):
        check = verify_turn(start_world(TS, TOOLS, gt, k), gt, k,
                            [ProposedCall(c.tool, c.arguments) for c in gt.turns[k].calls])
        assert check.passed and check.problems == []


@pytest.mark.parametrize("name", MUTATIONS)
def test_verify_turn_rejects_a_wrong_answer(name):
    gt = sealed_gt()
    spec, k = _mutate(name)
    check = verify_turn(start_world(TS, TOOLS, gt, k), gt, k, [ProposedCall(t, a) for t, a in spec[k]])
    assert not check.passed
    assert reasons(check.problems) == VERIFY_EXPECTED[name], check.problems


def test_verify_turn_rejects_against_a_tampered_stored_result():
    gt = tamper_result(sealed_gt(), 0, 1)  # the stored get_ticket result no longer matches the world
    check = verify_turn(start_world(TS, TOOLS, gt, 0), gt, 0,
                        [ProposedCall(c.tool, c.arguments) for c in gt.turns[0].calls])
    assert not check.passed and reasons(check.problems) == {"response_mismatch"}


def test_verify_turn_rejects_no_calls():
    gt = sealed_gt()
    check = verify_turn(start_world(TS, TOOLS, gt, 1), gt, 1, [])
    assert reasons(check.problems) == {"empty_turn", "state_mismatch", "response_mismatch"}


def test_phase3_records_the_reason_of_a_failed_verification():
    """Through the flow production runs: the offline reasoner proposes the stored calls, the stored
    result was tampered, the turn fails and its rejection carries the verifier's reason; the next
    turn's query is never written."""
    gt = tamper_result(sealed_gt(), 0, 1)
    out = run_llm(TS, TOOLS, [gt])
    assert [r.turn_index for r in out.queries.rows] == [0]
    assert [r.passed for r in out.traces.rows] == [False]
    rej = {r.item_id: r for r in out.traces.rejections}
    assert set(rej) == {f"{gt.trajectory_id}/0"}
    assert rej[f"{gt.trajectory_id}/0"].reason == "verification_failed"
    assert "response_mismatch" in json.loads(rej[f"{gt.trajectory_id}/0"].detail)["problems"][0]
    assert [(r.item_id, r.reason) for r in out.queries.rejections] == [(f"{gt.trajectory_id}/1", "after_failed_turn")]


# ---- the trajectory replay (Phase I) ------------------------------------------------------------
REPLAY_EXPECTED = {
    # the argument was changed in the record, the results left as they were
    "wrong_argument": {"result_mismatch", "state_mismatch"},
    # the others are consistent records of other calls: only the recorded end states show it
    "wrong_order": {"state_mismatch"},
    "missing_call": {"state_mismatch"},
    "extra_call": {"state_mismatch"},
}


def test_trajectory_replay_passes_the_sealed_ground_truth():
    gt = sealed_gt()
    assert all(t.end_state for t in gt.turns)
    assert replay_trajectory(gt, TS, TOOLS)[0] == []


@pytest.mark.parametrize("name", MUTATIONS)
def test_trajectory_replay_rejects_a_tampered_record(name):
    gt = sealed_gt()
    spec, _ = _mutate(name)
    ends = [t.end_state for t in gt.turns]
    if name == "wrong_argument":
        data = gt.model_dump()
        data["turns"][0]["calls"][0]["arguments"]["priority"] = 4
        traj = Trajectory.model_validate(data)
    else:
        traj = record(spec, ends)
    problems, _ = replay_trajectory(traj, TS, TOOLS)
    assert reasons(problems) == REPLAY_EXPECTED[name], problems


def test_trajectory_replay_rejects_a_tampered_stored_result():
    problems, _ = replay_trajectory(tamper_result(sealed_gt(), 0, 1), TS, TOOLS)
    assert reasons(problems) == {"result_mismatch"}, problems


# ---- the sample replay (every_sample_replays) ---------------------------------------------------
SAMPLE_EXPECTED = {
    "wrong_argument": {"state_mismatch", "response_mismatch"},
    "wrong_order": {"state_mismatch"},
    "missing_call": {"state_mismatch", "response_mismatch"},
    "extra_call": {"state_mismatch"},
}


def dialogue_of(gt: Trajectory, shown: Trajectory, error_rate: float = 0.0) -> dict:
    """The dialogue Phase IV builds when the reasoner's (verified) calls were `shown`'s."""
    traces = {k: {"passed": True, "reasoning": "r", "reply": "done",
                  "calls": [{"name": c.tool, "arguments": c.arguments, "result": c.result} for c in turn.calls]}
              for k, turn in enumerate(shown.turns)}
    d, rej = build_dialogue(gt, TOOLS, {0: "q0", 1: "q1"}, traces, error_rate)
    assert d is not None and rej == []
    return d


def last_sample(d: dict) -> list[dict]:
    return dialogue_to_samples(d)[-1]["messages"]


def test_sample_replay_passes_every_sample_of_the_ground_truth():
    gt = sealed_gt()
    d = dialogue_of(gt, gt)
    for s in dialogue_to_samples(d):
        assert replay_sample(s["messages"], gt, TS, TOOLS, d["injected_errors"]) == []


@pytest.mark.parametrize("name", MUTATIONS)
def test_sample_replay_rejects_a_wrong_answer(name):
    """The dialogue shows other calls than the ground truth, with the results they really return."""
    gt = sealed_gt()
    spec, _ = _mutate(name)
    problems = replay_sample(last_sample(dialogue_of(gt, record(spec))), gt, TS, TOOLS)
    assert reasons(problems) == SAMPLE_EXPECTED[name], problems


def test_sample_replay_rejects_a_tampered_tool_message():
    gt = sealed_gt()
    messages = last_sample(dialogue_of(gt, gt))
    tool = next(m for m in messages if m["role"] == "tool" and m["name"] == "get_ticket")
    tool["content"] = json.dumps({**json.loads(tool["content"]), "title": "Something else"})
    assert reasons(replay_sample(messages, gt, TS, TOOLS)) == {"result_mismatch"}


def test_sample_replay_rejects_a_changed_argument_with_the_old_results():
    gt = sealed_gt()
    messages = last_sample(dialogue_of(gt, gt))
    call = next(c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or [])
    call["function"]["arguments"] = json.dumps({**json.loads(call["function"]["arguments"]), "priority": 4})
    assert reasons(replay_sample(messages, gt, TS, TOOLS)) == {"result_mismatch", "state_mismatch",
                                                                 "response_mismatch"}


def test_sample_replay_rejects_orphans_and_unanswered_calls():
    gt = sealed_gt()
    messages = last_sample(dialogue_of(gt, gt))
    i = next(i for i, m in enumerate(messages) if m["role"] == "tool")
    unanswered = messages[:i] + messages[i + 1:]
    assert "unanswered_call" in reasons(replay_sample(unanswered, gt, TS, TOOLS))
    orphan = [*messages[:i + 1], dict(messages[i], tool_call_id="call_9_9"), *messages[i + 1:]]
    assert "orphan_tool_message" in reasons(replay_sample(orphan, gt, TS, TOOLS))


# ---- error injection: part of the recorded trace ------------------------------------------------
def test_injected_errors_replay_exactly_and_only_when_known():
    gt = sealed_gt()
    d = dialogue_of(gt, gt, error_rate=1.0)
    assert d["error_tool_response"] and set(d["injected_errors"]) == {"call_0_0", "call_1_0"}
    shown = {m["tool_call_id"]: json.loads(m["content"]) for m in d["messages"] if m["role"] == "tool"}
    assert all(shown[k] == v for k, v in d["injected_errors"].items())
    for s in dialogue_to_samples(d):
        assert replay_sample(s["messages"], gt, TS, TOOLS, d["injected_errors"]) == []
    messages = last_sample(d)
    # not knowing the injection: the failed call is executed, so create_ticket runs twice
    assert {"result_mismatch", "state_mismatch"} <= reasons(replay_sample(messages, gt, TS, TOOLS))
    # an injected message that is not the recorded one
    forged = [dict(m, content=json.dumps({"error": "other"})) if m.get("tool_call_id") == "call_0_0" else m
              for m in messages]
    assert reasons(replay_sample(forged, gt, TS, TOOLS, d["injected_errors"])) == {"injection_mismatch"}
    # an injected failure the assistant never retried
    retry = next(i for i, m in enumerate(messages)
                 if m["role"] == "assistant" and any(c["id"] == "call_0_0r" for c in m.get("tool_calls") or []))
    dropped = messages[:retry] + [m for m in messages[retry:] if m.get("tool_call_id") != "call_0_0r"]
    dropped[retry] = dict(messages[retry], tool_calls=messages[retry]["tool_calls"][1:])
    got = reasons(replay_sample(dropped, gt, TS, TOOLS, d["injected_errors"]))
    assert {"injection_not_retried", "state_mismatch", "response_mismatch"} <= got


def test_sample_replay_reports_malformed_calls_and_messages_instead_of_crashing():
    gt = sealed_gt()
    messages = last_sample(dialogue_of(gt, gt))
    call = next(c for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or [])
    call["function"]["arguments"] = "{not json"
    tool = next(m for m in messages if m["role"] == "tool" and m["tool_call_id"] != call["id"])
    tool["content"] = "plain text"
    got = reasons(replay_sample(messages, gt, TS, TOOLS))
    assert {"unparsable_call", "orphan_tool_message", "result_mismatch"} <= got
