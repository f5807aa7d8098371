"""A turn is a task: the target and exactly its prerequisites, in steps (sampling/task.py), and the
gate that rejects a stored turn a user would not ask for. Real BFCL environments, no mocks."""

from __future__ import annotations

import pytest

from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.models import ToolCall
from funreason_pipeline.sampling.task import (
    TurnNotKept,
    _check_created_values,
    assign_steps,
    shape_turn,
    turn_problems,
)

CLINIC = "funreason_pipeline.examples.clinic:ClinicSystem"


def _world(name: str, seed: int = 3):
    ts = toolset_by_name(name)
    tools = toolset_tools(ts)
    return World.from_scenario(ts, generate_scenario(ts, seed), tools), {t.name: t for t in tools}


def _walk(world: World, plan: list[tuple[str, dict]], done: list[ToolCall] = ()) -> list[ToolCall]:
    """Execute a plan on a copy (after the calls `done`), as the sampler's walk does, recording
    each result."""
    w = world.copy()
    for c in done:
        w.call(c.tool, c.arguments)
    calls = []
    for tool, args in plan:
        res = w.call(tool, args)
        assert res.ok, res.error
        calls.append(ToolCall(tool=tool, arguments=args, result=res.value))
    return calls


def test_cut_keeps_the_target_and_what_feeds_it_and_drops_the_rest():
    world, specs = _world("tickets")
    calls = _walk(world, [
        ("get_user_tickets", {}),  # a read whose result feeds nothing
        ("create_ticket", {"title": "Printer jam", "description": "Floor 2 printer jams", "priority": 2}),
        ("close_ticket", {"ticket_id": 4886}),  # a write nobody asked for
        ("get_ticket", {"ticket_id": 4990}),  # the target: the id comes from create_ticket's result
    ])
    shaped = shape_turn(world, calls, target_pos=3, offset=10, specs=specs)
    assert [c.tool for c in shaped.calls] == ["create_ticket", "get_ticket"]
    assert {(c.tool, why) for c, why in shaped.dropped} == {("get_user_tickets", "dead_read"),
                                                           ("close_ticket", "unrequested_write")}
    create, get = shaped.calls
    assert get.sources == {"ticket_id": 10}  # found by value, renumbered to its new place
    assert (create.step, get.step) == (0, 1)  # the id is only known after create_ticket's result
    assert create.changes_state and not get.changes_state
    # the world is the one the kept calls leave: ticket 4886 was not closed
    q = shaped.world.snapshot()["TicketAPI"]["ticket_queue"]
    assert next(t for t in q if t["id"] == 4886)["status"] == "Open"
    assert turn_problems(shaped.calls, 1, 10) == []


def test_a_dropped_write_the_target_needs_comes_back_as_a_state_prerequisite():
    world, specs = _world("files")
    calls = _walk(world, [("mkdir", {"dir_name": "reports"}), ("cd", {"folder": "reports"}),
                          ("touch", {"file_name": "q3.txt"})])
    shaped = shape_turn(world, calls, target_pos=2, offset=0, specs=specs)
    # touch in `reports` needs the cd, and cd needs the mkdir: nothing said so, the replay did
    assert [c.tool for c in shaped.calls] == ["mkdir", "cd", "touch"]
    assert [c.step for c in shaped.calls] == [0, 1, 2]


def test_a_value_created_in_the_state_and_never_shown_is_not_kept():
    world, specs = _world("clinic")
    state = world.snapshot()["funreason_pipeline.examples.clinic:ClinicSystem"]
    user = next(iter(state["staff"].values()))
    slot = next(s for s, v in state["slots"].items() if not v["booked"])
    calls = _walk(world, [("login", {"username": user["username"], "password": user["password"]}),
                          ("book_appointment", {"patient_id": next(iter(state["patients"])), "slot_id": slot})])
    appointment = calls[1].result["appointment_id"]
    calls += _walk(world, [("check_in", {"appointment_id": appointment})], calls)
    # the turn as it is is kept: the id check_in uses is in book_appointment's result
    shaped = shape_turn(world, [c.model_copy(deep=True) for c in calls], target_pos=2, offset=0, specs=specs)
    assert shaped.calls[2].sources == {"appointment_id": 1}
    # as if book_appointment had not shown the id it created: check_in then uses a value only the
    # state holds, which neither the user nor the model could know
    w = world.copy()
    after = []
    for c in calls:
        w.call(c.tool, c.arguments)
        c.changes_state = c.tool != "check_in"
        after.append(w.envs[CLINIC].snapshot())
    with pytest.raises(TurnNotKept, match="created_value_unseen: check_in"):
        _check_created_values(world.snapshot()[CLINIC], calls, after)


def _c(tool, args, step=0, sources=None, result=None):
    return ToolCall(tool=tool, arguments=args, step=step, sources=sources or {}, result=result)


def test_gate_rejects_each_kind_of_turn_a_user_would_not_ask_for():
    unrequested = [_c("get_user_tickets", {}), _c("get_ticket", {"ticket_id": 4886})]
    assert any(p.startswith("unrequested_call: get_user_tickets") for p in turn_problems(unrequested, 1, 0))
    repeated = [_c("get_ticket", {"ticket_id": 4886}), _c("get_ticket", {"ticket_id": 4886}, 1, {"ticket_id": 0})]
    assert any(p.startswith("repeated_call") for p in turn_problems(repeated, 1, 0))
    dup = [_c("divide", {"a": 399.49, "b": 399.49})]
    assert any(p.startswith("duplicate_value: divide") for p in turn_problems(dup, 0, 0))
    merged = [_c("create_ticket", {"title": "x"}), _c("get_ticket", {"ticket_id": 4990}, 0, {"ticket_id": 0})]
    assert any(p.startswith("clairvoyant_step: get_ticket") for p in turn_problems(merged, 1, 0))
    failed = [_c("get_ticket", {"ticket_id": 1}, result=[{"error": "not found"}])]
    assert any(p.startswith("failed_result") for p in turn_problems(failed, 0, 0, lambda r: "error in list"))
    # and a clean turn passes
    clean = [_c("create_ticket", {"title": "Printer"}), _c("get_ticket", {"ticket_id": 4990}, 1, {"ticket_id": 0})]
    assert turn_problems(clean, 1, 0, lambda r: None) == []


def test_steps_never_put_a_call_with_the_result_it_uses():
    calls = [_c("a", {}), _c("b", {}), _c("c", {"x": "v"}, sources={"x": 5})]
    assign_steps(calls, 4, {"a": "A", "b": "B", "c": "C"})
    assert [c.step for c in calls] == [0, 0, 1]  # a and b are independent reads: one step


def test_the_working_directory_a_call_needs_stays_and_a_write_it_does_not_need_goes():
    world, specs = _world("files")
    calls = _walk(world, [("cd", {"folder": "docs"}), ("mkdir", {"dir_name": "scratch"}),
                          ("touch", {"file_name": "minutes.txt"})])
    shaped = shape_turn(world, calls, target_pos=2, offset=0, specs=specs)
    # touch must run in docs (state no snapshot shows: found by replay), the mkdir nobody needs goes
    assert [c.tool for c in shaped.calls] == ["cd", "touch"]
    assert [(c.tool, why) for c, why in shaped.dropped] == [("mkdir", "unrequested_write")]
    assert shaped.calls[1].after == [0]
