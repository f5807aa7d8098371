"""The clairvoyance gate: a call may not use a value that only a result it has not seen yet shows."""

from __future__ import annotations

import json

from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.filtering.samples import build_samples, clairvoyance_filter
from funreason_pipeline.verify.clairvoyance import clairvoyant_calls, telling

TOOLS = [
    {"type": "function", "function": {"name": "book_appointment", "description": "Book a visit.", "parameters": {
        "type": "object", "properties": {"doctor": {"type": "string"}, "date": {"type": "string"},
                                         "kind": {"type": "string", "enum": ["checkup", "followup"]}}}}},
    {"type": "function", "function": {"name": "check_in", "description": "Check in.", "parameters": {
        "type": "object", "properties": {"appointment_id": {"type": "string"}, "party": {"type": "integer"}}}}},
    {"type": "function", "function": {"name": "post_note", "description": "Post a note.", "parameters": {
        "type": "object", "properties": {"text": {"type": "string"}}}}},
]
QUERY = "Book me a checkup with Dr. Lee on 2026-12-10, then check me in (2 people)."
BOOKED = {"appointment_id": "A-0004", "status": "booked"}


def _call(i, name, args):
    return {"id": f"call_0_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def _result(i, name, value):
    return {"role": "tool", "tool_call_id": f"call_0_{i}", "name": name, "content": json.dumps(value)}


BOOK = ("book_appointment", {"doctor": "Dr. Lee", "date": "2026-12-10", "kind": "checkup"})
CHECK_IN = ("check_in", {"appointment_id": "A-0004", "party": 2})


def merged() -> list[dict]:
    """The old shape: both calls in one assistant message, check_in using book_appointment's result."""
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": QUERY},
            {"role": "assistant", "content": "<think>\nBook, then check in.\n</think>",
             "tool_calls": [_call(0, *BOOK), _call(1, *CHECK_IN)]},
            _result(0, "book_appointment", BOOKED), _result(1, "check_in", {"checked_in": True}),
            {"role": "assistant", "content": "Booked A-0004 and checked you in."}]


def stepwise() -> list[dict]:
    return [{"role": "system", "content": "You are a helpful assistant."}, {"role": "user", "content": QUERY},
            {"role": "assistant", "content": "<think>\nBook first.\n</think>", "tool_calls": [_call(0, *BOOK)]},
            _result(0, "book_appointment", BOOKED),
            {"role": "assistant", "content": "<think>\nNow check in with its id.\n</think>",
             "tool_calls": [_call(1, *CHECK_IN)]},
            _result(1, "check_in", {"checked_in": True}),
            {"role": "assistant", "content": "Booked A-0004 and checked you in."}]


def test_a_merged_step_is_clairvoyant_and_named():
    found = clairvoyant_calls(merged(), TOOLS)
    assert [(f.call, f.parameter, f.value, f.source_call) for f in found] == \
        [("check_in", "appointment_id", "A-0004", "book_appointment")]
    assert "check_in(appointment_id='A-0004')" in found[0].detail()
    assert "result of book_appointment" in found[0].detail()


def test_the_same_calls_step_by_step_pass():
    assert clairvoyant_calls(stepwise(), TOOLS) == []


def test_a_value_first_written_in_the_reasoning_is_still_clairvoyant():
    msgs = merged()
    msgs[2]["content"] = "<think>\nThe id will be A-0004.\n</think>"
    assert [f.value for f in clairvoyant_calls(msgs, TOOLS)] == ["A-0004"]


def test_a_reveal_by_a_call_run_later_is_read_as_an_echo():
    """check_in in step 0 with the id that only step 1's result shows: the data cannot tell a guess
    from check_in having written the id into the state that book_appointment then shows, so the
    gate treats it as an echo (documented limit); the merged order, book first, is caught."""
    msgs = stepwise()
    msgs[2]["tool_calls"] = [_call(1, *CHECK_IN)]
    msgs[4]["tool_calls"] = [_call(0, *BOOK)]
    assert clairvoyant_calls(msgs, TOOLS) == []
    msgs = merged()
    msgs[2]["tool_calls"].reverse()  # check_in runs before book_appointment in the one message
    assert clairvoyant_calls(msgs, TOOLS) == []
    assert len(clairvoyant_calls(merged(), TOOLS)) == 1


def test_trivial_known_and_echoed_values_are_not_flagged():
    # small numbers, booleans, enum members, values of the query: in results by chance or known
    msgs = merged()
    msgs[2]["tool_calls"] = [_call(0, *BOOK), _call(1, "check_in", {"appointment_id": "A-0001", "party": 2})]
    msgs[3] = _result(0, "book_appointment", {"appointment_id": "A-0004", "party": 2, "kind": "checkup",
                                              "doctor": "Dr. Lee", "confirmed": True})
    assert clairvoyant_calls(msgs, TOOLS) == []
    # a call's result repeating its own argument reveals nothing
    echo = [{"role": "user", "content": "Post a note."},
            {"role": "assistant", "content": "", "tool_calls": [_call(0, "post_note", {"text": "Remember the milk"})]},
            _result(0, "post_note", {"text": "Remember the milk", "id": 7}), {"role": "assistant", "content": "Done."}]
    assert clairvoyant_calls(echo, TOOLS) == []
    # ...but a parallel call using the note's new id, which only that result shows, is clairvoyant
    echo[1]["tool_calls"].append(_call(1, "check_in", {"appointment_id": "note-777"}))
    echo[2] = _result(0, "post_note", {"text": "Remember the milk", "id": "note-777"})
    echo.insert(3, _result(1, "check_in", {"checked_in": False}))
    assert [(f.call, f.source_call) for f in clairvoyant_calls(echo, TOOLS)] == [("check_in", "post_note")]


def test_what_counts_as_telling():
    assert telling("A-0004") and telling(1234) and telling(45.99) and telling(100.0)
    assert not any(telling(v) for v in (True, None, "ok", 2, 50, 0.5, 12.0))


def test_numbers_match_whole_numbers_only():
    msgs = merged()
    msgs[2]["tool_calls"] = [_call(0, *BOOK), _call(1, "check_in", {"appointment_id": "x", "party": 123})]
    msgs[3] = _result(0, "book_appointment", {"slot": 1234})  # 123 is not in 1234
    assert clairvoyant_calls(msgs, TOOLS) == []
    msgs[3] = _result(0, "book_appointment", {"slot": 123.0})
    assert [f.value for f in clairvoyant_calls(msgs, TOOLS)] == [123]


def _dialogue_row(messages):
    return {"dialogue_id": "dlg-t", "trajectory_id": "t", "messages": json.dumps(messages),
            "tools": json.dumps(TOOLS), "role_models": None, "injected_errors": None}


def test_sample_building_rejects_a_clairvoyant_sample_with_the_call_and_value():
    bad, good = clairvoyance_filter([{"sample_id": "s:0", "messages": merged(), "tools": TOOLS},
                                     {"sample_id": "s:1", "messages": stepwise(), "tools": TOOLS}])
    assert [s["sample_id"] for s in bad] == ["s:1"]
    assert good == [{"item_id": "s:0", "reason": "clairvoyant_call", "detail": good[0]["detail"]}]
    assert "check_in(appointment_id='A-0004')" in good[0]["detail"]
    # through the stage's own sample building (no trajectory: the replay reports it, the gate ran first)
    out = build_samples([_dialogue_row(merged())], {}, toolset_by_name("files"), [])
    assert out.samples == [] and [(r.item_id, r.reason) for r in out.rejections] == [("dlg-t:0", "clairvoyant_call")]
    assert "A-0004" in out.rejections[0].detail and "check_in" in out.rejections[0].detail
    out = build_samples([_dialogue_row(stepwise())], {}, toolset_by_name("files"), [])
    assert [s["sample_id"] for s in out.samples] == ["dlg-t:0"] and not out.rejections


def test_a_value_the_model_wrote_earlier_in_the_message_is_an_echo_through_state():
    """create then list in one message: the listing shows what the model wrote, no result told it.
    The other order (list, then use what the listing shows) is clairvoyant."""
    text = {"text": "Remember the milk"}
    msgs = [{"role": "user", "content": "Post a note, then show my notes."},
            {"role": "assistant", "content": "", "tool_calls": [_call(0, "post_note", text),
                                                                _call(1, "list_notes", {})]},
            _result(0, "post_note", {"id": 7}), _result(1, "list_notes", {"notes": ["Remember the milk"]}),
            {"role": "assistant", "content": "Done."}]
    assert clairvoyant_calls(msgs, TOOLS) == []
    msgs[1]["tool_calls"].reverse()
    assert [(f.call, f.source_call) for f in clairvoyant_calls(msgs, TOOLS)] == [("post_note", "list_notes")]
