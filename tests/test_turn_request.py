"""The query gives the user what the user knows, and the reply says what the turn did: created
values never reach the query (negative test), each user value is said once, each action asked for."""

from __future__ import annotations

from funreason_pipeline.agents import offline
from funreason_pipeline.agents.advanced_tool import intermediate_values, structure
from funreason_pipeline.agents.query_check import check_query
from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.models import ToolCall, Trajectory, Turn
from funreason_pipeline.sampling.task import shape_turn

CLINIC = "funreason_pipeline.examples.clinic:ClinicSystem"


def _clinic_turn():
    ts = toolset_by_name("clinic")
    tools = toolset_tools(ts)
    scenario = generate_scenario(ts, 3)
    world = World.from_scenario(ts, scenario, tools)
    state = world.snapshot()[CLINIC]
    user = next(iter(state["staff"].values()))
    slot = next(s for s, v in state["slots"].items() if not v["booked"])
    patient = next(iter(state["patients"]))
    w = world.copy()
    calls = []
    for tool, args in [("login", {"username": user["username"], "password": user["password"]}),
                       ("book_appointment", {"patient_id": patient, "slot_id": slot})]:
        res = w.call(tool, args)
        assert res.ok, res.error
        calls.append(ToolCall(tool=tool, arguments=args, result=res.value))
    appointment = calls[-1].result["appointment_id"]
    res = w.call("check_in", {"appointment_id": appointment})
    calls.append(ToolCall(tool="check_in", arguments={"appointment_id": appointment}, result=res.value))
    shaped = shape_turn(world, calls, 2, 0, {t.name: t for t in tools})
    traj = Trajectory(trajectory_id="t", toolset="clinic", seed=3, scenario=scenario,
                      turns=[Turn(target_tool="check_in", calls=shaped.calls)])
    return traj, {t.name: t for t in tools}, appointment, patient


def test_a_value_created_in_the_turn_in_the_query_is_a_leak():
    traj, specs, appointment, _patient = _clinic_turn()
    book = traj.turns[0].calls[1]
    assert book.changes_state and appointment in book.created
    adv = structure(traj, 0, specs)
    inter = intermediate_values(traj.turns[0].calls, 0)
    good = offline.write_query(adv, specs, seed=1)
    assert check_query(good, adv, inter) == [], good
    bad = good + f" Use {appointment} as the appointment id."
    assert any(appointment in p and p.startswith("leaks") for p in check_query(bad, adv, inter))


def test_the_query_asks_for_every_action_and_the_reply_reports_every_change():
    traj, specs, appointment, patient = _clinic_turn()
    adv = structure(traj, 0, specs)
    assert adv.actions == ["login", "book_appointment", "check_in"]
    query = offline.write_query(adv, specs, seed=2)
    assert "login, then book appointment, then check in" in query.lower()
    assert query.count(patient) == 1  # said once
    reply = offline.write_reply(adv, traj.turns[0].calls)
    assert "checked_in" in reply and appointment in reply and "book appointment" in reply
