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
    assert any(p.startswith("failed_result") for p in turn_problems(failed, 0, 0, lambda r, tool: "error in list"))
    # and a clean turn passes
    clean = [_c("create_ticket", {"title": "Printer"}), _c("get_ticket", {"ticket_id": 4990}, 1, {"ticket_id": 0})]
    assert turn_problems(clean, 1, 0, lambda r, tool: None) == []


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


def test_a_write_whose_minted_id_moved_when_an_unrequested_write_went_is_the_same_write():
    # the clinic numbers prescriptions and appointments from one counter: without the prescription
    # nobody asked for, the appointment gets the number the prescription had taken
    world, specs = _world("clinic")
    state = world.snapshot()[CLINIC]
    user = next(iter(state["staff"].values()))
    patient = next(iter(state["patients"]))
    slot = next(s for s, v in state["slots"].items() if not v["booked"])
    allergies = state["patients"][patient]["allergies"]
    medication = next(m for m in ["amoxicillin", "ibuprofen", "lisinopril", "metformin", "cetirizine"]
                      if m not in allergies)
    calls = _walk(world, [("login", {"username": user["username"], "password": user["password"]}),
                          ("prescribe", {"patient_id": patient, "medication": medication, "dose_mg": 200}),
                          ("book_appointment", {"patient_id": patient, "slot_id": slot})])
    walked_id = calls[2].result["appointment_id"]
    shaped = shape_turn(world, calls, target_pos=2, offset=0, specs=specs)
    assert [c.tool for c in shaped.calls] == ["login", "book_appointment"]
    assert [(c.tool, why) for c, why in shaped.dropped] == [("prescribe", "unrequested_write")]
    booked = shaped.calls[1].result["appointment_id"]
    # the recorded result is what the kept calls return, and the world holds that appointment
    assert booked in shaped.world.snapshot()[CLINIC]["appointments"]
    assert not shaped.world.snapshot()[CLINIC].get("prescriptions")
    if booked != walked_id:
        assert walked_id not in shaped.world.snapshot()[CLINIC]["appointments"]


def test_a_write_that_lands_elsewhere_without_a_dropped_call_is_not_the_same_write():
    # the masked comparison must still see *where* a write acted: touch in the root is not touch
    # in `reports` (the state prerequisite test above keeps mkdir and cd for this reason)
    from funreason_pipeline.sampling.task import _masked_delta
    in_reports = frozenset({("/root/contents/reports/contents/q3.txt", None)})
    in_root = frozenset({("/root/contents/q3.txt", None)})
    assert _masked_delta(in_reports) != _masked_delta(in_root)
    a7 = frozenset({("/appointments/A-0007/status", '"booked"'), ("/next_number", "8")})
    a6 = frozenset({("/appointments/A-0006/status", '"booked"'), ("/next_number", "7")})
    assert _masked_delta(a7) == _masked_delta(a6)
    cancelled = frozenset({("/appointments/A-0006/status", '"cancelled"'), ("/next_number", "7")})
    assert _masked_delta(cancelled) != _masked_delta(a6)


def test_a_turn_that_undoes_its_own_write_is_not_kept():
    world, specs = _world("files")
    calls = _walk(world, [("mkdir", {"dir_name": "scratch"}), ("rmdir", {"dir_name": "scratch"})])
    with pytest.raises(TurnNotKept, match="no_net_effect: mkdir, rmdir"):
        shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    world, specs = _world("twitter")
    calls = _walk(world, [("follow_user", {"username_to_follow": "hzimmerman90"}),
                          ("follow_user", {"username_to_follow": "olivia"}),
                          ("unfollow_user", {"username_to_unfollow": "hzimmerman90"})])
    # olivia stays followed, so the state did change; but the request takes back its own write
    with pytest.raises(TurnNotKept, match="undoes_own_write: unfollow_user takes back \"hzimmerman90\""):
        shape_turn(world, calls, target_pos=2, offset=0, specs=specs)


def test_cancelling_what_the_same_request_booked_is_not_kept_and_checking_it_in_is():
    world, specs = _world("clinic")
    state = world.snapshot()[CLINIC]
    user = next(iter(state["staff"].values()))
    slot = next(s for s, v in state["slots"].items() if not v["booked"])
    login = ("login", {"username": user["username"], "password": user["password"]})
    book = ("book_appointment", {"patient_id": next(iter(state["patients"])), "slot_id": slot})
    calls = _walk(world, [login, book])
    appointment = calls[1].result["appointment_id"]
    cancel = _walk(world, [("cancel_appointment", {"appointment_id": appointment})], calls)
    with pytest.raises(TurnNotKept, match=f"undoes_own_write: cancel_appointment takes back \"{appointment}\""):
        shape_turn(world, [c.model_copy(deep=True) for c in calls] + cancel, target_pos=2, offset=0, specs=specs)
    # a travel login makes the token cancel_booking then uses: it acts with it, it does not take it back
    tworld, tspecs = _world("travel")
    tstate = tworld.snapshot()["TravelAPI"]
    booking = next(iter(tstate["booking_record"]))
    auth = _walk(tworld, [("authenticate_travel", {
        "client_id": "CLI-15762", "client_secret": "qatngff79tnu3enm",
        "refresh_token": "tbm9rrw3g4f997er", "grant_type": "read_write",
        "user_first_name": "Ana", "user_last_name": "Lee"})])
    cancel_b = _walk(tworld, [("cancel_booking", {"access_token": auth[0].result["access_token"],
                                                  "booking_id": booking})], auth)
    shaped = shape_turn(tworld, auth + cancel_b, target_pos=1, offset=0, specs=tspecs)
    assert [c.tool for c in shaped.calls] == ["authenticate_travel", "cancel_booking"]
    check_in = _walk(world, [("check_in", {"appointment_id": appointment})], calls)
    shaped = shape_turn(world, [c.model_copy(deep=True) for c in calls] + check_in, target_pos=2, offset=0,
                        specs=specs)
    assert [c.tool for c in shaped.calls] == ["login", "book_appointment", "check_in"]


def test_a_read_of_what_the_request_itself_made_is_not_kept_and_a_read_of_what_was_there_is():
    world, specs = _world("files")
    calls = _walk(world, [("touch", {"file_name": "fresh_notes.txt"}), ("tail", {"file_name": "fresh_notes.txt"})])
    with pytest.raises(TurnNotKept, match="reads_own_write: tail reads \"fresh_notes.txt\" that touch"):
        shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    # also when a file of that name exists elsewhere in the tree: what counts is what touch made here
    root = world.snapshot()["GorillaFileSystem"]["root"]["contents"]
    elsewhere = next(f for d in root.values() if isinstance(d.get("contents"), dict) for f in d["contents"]
                     if f not in root)
    calls = _walk(world, [("touch", {"file_name": elsewhere}), ("tail", {"file_name": elsewhere})])
    with pytest.raises(TurnNotKept, match="reads_own_write: tail"):
        shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    world, specs = _world("messages")
    calls = _walk(world, [("add_contact", {"user_name": "Nora Tanaka"}), ("get_user_id", {"user": "Nora Tanaka"})])
    with pytest.raises(TurnNotKept, match="reads_own_write: get_user_id"):
        shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    # a folder made to move a file into is what the user asked for: kept
    world, specs = _world("files")
    files = [n for n, v in world.snapshot()["GorillaFileSystem"]["root"]["contents"].items() if "content" in v]
    calls = _walk(world, [("mkdir", {"dir_name": "archive_2026"}),
                          ("mv", {"source": files[0], "destination": "archive_2026"})])
    shaped = shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    assert [c.tool for c in shaped.calls] == ["mkdir", "mv"]
    # a login made by the turn is a state prerequisite, not a thing read back: kept
    world, specs = _world("twitter")
    snap = world.snapshot()["TwitterAPI"]
    calls = _walk(world, [("authenticate_twitter", {"username": snap["username"], "password": snap["password"]}),
                          ("get_user_tweets", {"username": snap["username"]})])
    shaped = shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    assert shaped.calls[-1].tool == "get_user_tweets"


def test_a_small_id_a_needed_write_returned_is_taken_from_its_result_not_from_the_user():
    world, specs = _world("twitter")
    calls = _walk(world, [("post_tweet", {"content": "Release notes are up for v2.4", "tags": [], "mentions": []})])
    tweet_id = calls[0].result["id"]
    calls += _walk(world, [("comment", {"tweet_id": tweet_id, "comment_content": "Thanks all, great work"})], calls)
    shaped = shape_turn(world, calls, target_pos=1, offset=4, specs=specs)
    assert [c.tool for c in shaped.calls] == ["post_tweet", "comment"]
    assert shaped.calls[1].sources == {"tweet_id": 4}
    assert [c.step for c in shaped.calls] == [0, 1]


def test_a_turn_that_only_takes_back_its_own_write_names_the_write_to_ask_for_first():
    # trading starts logged in: logging in needs a logout first, and the pair changes nothing. The
    # sampler then asks for the logout in a turn of its own and for the login in the next
    world, specs = _world("trading")
    calls = _walk(world, [("trading_logout", {}), ("trading_login", {"username": "u", "password": "p"})])
    with pytest.raises(TurnNotKept, match="no_net_effect") as caught:
        shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    assert caught.value.undone_by == ["trading_logout"]


def test_a_status_read_answering_no_is_an_answer_and_a_refused_login_is_a_failure():
    from funreason_pipeline.environments.failures import failure_of
    status = [_c("message_get_login_status", {}, result={"login_status": False})]
    assert turn_problems(status, 0, 0, failure_of) == []
    refused = [_c("message_login", {"user_id": "USR999"},
                  result={"login_status": False, "message": "User ID 'USR999' not found."})]
    assert any(p.startswith("failed_result: message_login") for p in turn_problems(refused, 0, 0, failure_of))


def test_a_write_that_ends_where_it_ended_without_an_earlier_write_is_the_same_write():
    world, specs = _world("vehicle")
    world.call("lockDoors", {"unlock": True, "door": ["driver"]})  # an earlier turn left the driver's open
    doors = ["driver", "passenger", "rear_left", "rear_right"]
    calls = _walk(world, [("lockDoors", {"unlock": True, "door": ["rear_left"]}),
                          ("lockDoors", {"unlock": False, "door": doors})])
    shaped = shape_turn(world, calls, target_pos=1, offset=0, specs=specs)
    # every door ends locked with or without the unlock nobody asked for
    assert [c.tool for c in shaped.calls] == ["lockDoors"] and shaped.calls[0].arguments["unlock"] is False
    assert [(c.tool, why) for c, why in shaped.dropped] == [("lockDoors", "unrequested_write")]


def test_a_conversion_and_its_inverse_is_not_a_request():
    world, _ = _world("vehicle")
    there = _walk(world, [("gallon_to_liter", {"gallon": 12.5})])
    back = _walk(world, [("liter_to_gallon", {"liter": there[0].result["liter"]})], there)
    back[0].sources = {"liter": 0}
    back[0].step = 1
    assert any(p.startswith("round_trip: liter_to_gallon gives back 12.49") for p in turn_problems(there + back, 1, 0))
    # converting a number the user gave once is a request
    assert turn_problems(there, 0, 0) == []


def test_adding_what_is_there_already_adds_nothing_and_a_stateless_add_is_an_answer():
    world, specs = _world("trading")
    watched = world.snapshot()["TradingBot"]["watch_list"][0]
    calls = _walk(world, [("add_to_watchlist", {"stock": watched})])
    with pytest.raises(TurnNotKept, match="adds_nothing: add_to_watchlist"):
        shape_turn(world, calls, target_pos=0, offset=0, specs=specs)
    new = next(s for s in world.snapshot()["TradingBot"]["stocks"] if s not in world.snapshot()["TradingBot"]["watch_list"])
    calls = _walk(world, [("add_to_watchlist", {"stock": new})])
    assert shape_turn(world, calls, target_pos=0, offset=0, specs=specs).calls[0].tool == "add_to_watchlist"
    world, specs = _world("math")  # MathAPI keeps no state: its `add` changes nothing by design
    calls = _walk(world, [("add", {"a": 2, "b": 3})])
    assert shape_turn(world, calls, target_pos=0, offset=0, specs=specs).calls[0].tool == "add"


def test_a_record_comes_from_a_result_only_whole():
    """create_entities([{name: "Nova Lab", entityType: "person", observations: ["worked on COBOL"]}])
    after a search that returned "worked on COBOL": the new name is the user's, so the record is the
    user's to give, whole; a relation read back whole from read_graph is that result's."""
    from funreason_pipeline.sampling.task import link_values

    search = _c("search_nodes", {"query": "COBOL"}, result={"entities": [
        {"name": "Grace Hopper", "entityType": "person", "observations": ["worked on COBOL"]}]})
    create = _c("create_entities", {"entities": [
        {"name": "Nova Lab", "entityType": "person", "observations": ["worked on COBOL"]}]})
    link_values([search, create], 0)
    assert "entities" not in create.sources
    graph = _c("read_graph", {}, result={"relations": [{"from": "Grace Hopper", "to": "COBOL", "relationType": "influenced"}]})
    delete = _c("delete_relations", {"relations": [{"from": "Grace Hopper", "to": "COBOL", "relationType": "influenced"}]})
    link_values([graph, delete], 10)
    assert delete.sources == {"relations": 10}
