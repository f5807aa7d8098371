"""scripts/scan_exports.py on small hand-built exports: every metric counts its defect (> 0) and
stays at 0 on a clean fixture. The fixtures are written here by hand, not by the pipeline's
exporters, so the scanner is checked against the file shapes a trainer reads."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "scan_exports.py"
_spec = importlib.util.spec_from_file_location("scan_exports", SCRIPT)
scan_exports = importlib.util.module_from_spec(_spec)
sys.modules["scan_exports"] = scan_exports  # dataclasses look their module up by name
_spec.loader.exec_module(scan_exports)

TOOLS = [
    {"type": "function", "function": {
        "name": name, "description": f"{name} tool",
        "parameters": {"type": "object", "properties": props}}}
    for name, props in {
        "get_user": {"name": {"type": "string"}},
        "get_orders": {"user_id": {"type": "string"}},
        "send_message": {"to": {"type": "string"}, "text": {"type": "string"}},
        "get_balance": {"account": {"type": "string"}},
        "get_weather": {"city": {"type": "string"}},
        "book_flight": {"dest": {"type": "string"}},
        "get_booking": {"booking_id": {"type": "string"}},
        "transfer": {"from_account": {"type": "string"}, "to_account": {"type": "string"},
                     "amount": {"type": "number"}},
        "create_event": {"date": {"type": "string", "description": "Day, in the format YYYY-MM-DD"}},
        "login": {"user": {"type": "string"}},
    }.items()
]

Step = list[tuple[str, dict[str, Any], Any]]  # one assistant step: (tool, arguments, result) per call


def dialogue(turns: list[tuple[str, list[Step], str]], *, old: bool = False, weights: bool = True) -> list[dict]:
    """OpenAI messages: per turn user -> steps (assistant with tool_calls, one tool message per call)
    -> reply. ``old``: all of a turn's calls in ONE assistant message. ``weights``: weight 1 on the
    last turn's assistant messages, 0 before."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    for k, (query, steps, reply) in enumerate(turns):
        w = {"weight": int(k == len(turns) - 1)} if weights else {}
        msgs.append({"role": "user", "content": query})
        if old and steps:
            steps = [[c for s in steps for c in s]]
        n = 0
        for step in steps:
            ids = [f"call_{k}_{n + i}" for i in range(len(step))]
            n += len(step)
            msgs.append({"role": "assistant", "content": "<think>\nplan\n</think>", **w, "tool_calls": [
                {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}
                for cid, (name, args, _) in zip(ids, step)]})
            msgs += [{"role": "tool", "tool_call_id": cid, "name": name, "content": json.dumps(result)}
                     for cid, (name, _, result) in zip(ids, step)]
        msgs.append({"role": "assistant", "content": reply, **w})
    return msgs


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def scan_openai(tmp_path: Path, *dialogues: list[dict], name: str = "d") -> dict[str, Any]:
    """Write the dialogues as openai.jsonl (one record each) and return the openai/ALL counters."""
    d = tmp_path / name
    d.mkdir()
    write_jsonl(d / "openai.jsonl", [{"messages": m, "tools": TOOLS} for m in dialogues])
    return scan_exports.to_json(scan_exports.scan(d))["openai"]["ALL"]


# the defect fixture and a clean twin per metric ---------------------------------------------------
USER_THEN_ORDERS = [[("get_user", {"name": "alice"}, {"user_id": "U-12345"})],
                    [("get_orders", {"user_id": "U-12345"}, {"orders": ["O-777"]})]]


def test_clairvoyant_calls_old_shape_vs_steps(tmp_path):
    old = scan_openai(tmp_path, dialogue([("Show alice's orders", USER_THEN_ORDERS, "done")], old=True), name="old")
    assert old["clairvoyant_calls"] == 1 and old["clairvoyant_records"] == 1
    new = scan_openai(tmp_path, dialogue([("Show alice's orders", USER_THEN_ORDERS, "done")]), name="new")
    assert new.get("clairvoyant_calls", 0) == 0 and new.get("clairvoyant_records", 0) == 0
    # a value seen in an earlier turn's result is not clairvoyant even in one message
    earlier = dialogue([("Who is alice?", [USER_THEN_ORDERS[0]], "U-12345"),
                        ("Her orders", [USER_THEN_ORDERS[1]], "done")], old=True)
    assert scan_openai(tmp_path, earlier, name="earlier").get("clairvoyant_calls", 0) == 0


def test_steps_per_turn(tmp_path):
    new = scan_openai(tmp_path, dialogue([("q", USER_THEN_ORDERS, "done")]), name="new")
    assert (new["steps"], new["turns_with_calls"], new["multistep_turns"], new["calls"]) == (2, 1, 1, 2)
    old = scan_openai(tmp_path, dialogue([("q", USER_THEN_ORDERS, "done")], old=True), name="old")
    assert (old["steps"], old.get("multistep_turns", 0)) == (1, 0)


def test_loss_marking_openai_and_trl(tmp_path):
    bare = scan_openai(tmp_path, dialogue([("q", USER_THEN_ORDERS, "done")], weights=False), name="bare")
    assert bare["openai_rows_missing_weight"] == 1 and bare["openai_rows_no_weight1"] == 1
    two = dialogue([("q", USER_THEN_ORDERS, "done"), ("again", USER_THEN_ORDERS, "done")])
    ok = scan_openai(tmp_path, two, name="ok")
    for k in ("openai_rows_missing_weight", "openai_rows_no_weight1", "openai_rows_weight1_before_turn",
              "openai_rows_turn_not_weight1"):
        assert ok.get(k, 0) == 0, k
    wrong = [dict(m, weight=1) if m["role"] == "assistant" else m for m in two]  # earlier turn trained too
    assert scan_openai(tmp_path, wrong, name="wrong")["openai_rows_weight1_before_turn"] == 1

    d = tmp_path / "trl"
    d.mkdir()
    msgs = dialogue([("q", USER_THEN_ORDERS, "done")])
    with_tool = {"prompt": msgs[:2], "completion": msgs[2:], "tools": TOOLS}
    chat = dialogue([("hi", [], "hello")])
    no_tool = {"prompt": chat[:2], "completion": chat[2:], "tools": TOOLS}
    write_jsonl(d / "trl_prompt_completion.jsonl", [with_tool, no_tool])
    trl = scan_exports.to_json(scan_exports.scan(d))["trl"]["ALL"]
    tool_chars = sum(len(m["content"]) for m in msgs if m["role"] == "tool")
    assert trl["trl_completion_with_tool"] == 1 and trl["trl_tool_chars_in_completion"] == tool_chars
    write_jsonl(d / "trl_prompt_completion.jsonl", [no_tool])
    assert scan_exports.to_json(scan_exports.scan(d))["trl"]["ALL"].get("trl_completion_with_tool", 0) == 0


def test_side_effects_and_dead_reads(tmp_path):
    send = ("send_message", {"to": "bob", "text": "hello there"}, {"sent": True, "message_id": "M-777"})
    balance = ("get_balance", {"account": "ACC-100"}, {"balance": 250.5})
    weather = ("get_weather", {"city": "Paris"}, {"temp": 21.5, "sky": "cloudy"})
    bad = scan_openai(tmp_path, dialogue([("balance of ACC-100 please", [[send], [weather], [balance]], "ok")]),
                      name="bad")
    assert bad["side_effect_turns"] == 1 and bad["side_effect_calls"] == 1
    assert bad["dead_read_calls"] == 1
    # the same turn when the user asks to send the message: a two-action request, not a side effect
    asked = scan_openai(tmp_path, dialogue([("send bob a message, then tell me the balance of ACC-100",
                                             [[send], [weather], [balance]], "ok")]), name="asked")
    assert asked.get("side_effect_turns", 0) == 0 and asked["unused_write_calls"] == 1
    # the same calls where each result feeds the next, the write last, login (state only) first
    login = ("login", {"user": "alice"}, {"login_status": True})
    send_order = ("send_message", {"to": "bob", "text": "alice ordered O-777"}, {"sent": True})
    clean = scan_openai(tmp_path, dialogue([("tell bob what alice ordered", [[login], USER_THEN_ORDERS[0],
                                                                             USER_THEN_ORDERS[1], [send_order]],
                                             "ok")]), name="clean")
    assert clean.get("side_effect_turns", 0) == 0 and clean.get("dead_read_calls", 0) == 0


def test_repeated_calls_and_retries(tmp_path):
    get = ("get_weather", {"city": "Paris"}, {"temp": 21.5})
    bad = scan_openai(tmp_path, dialogue([("weather in Paris", [[get], [get]], "21.5")]), name="bad")
    assert bad["repeated_turns"] == 1 and bad["repeated_calls"] == 1
    failed = ("get_weather", {"city": "Paris"}, {"error": "Service temporarily unavailable"})
    retry = scan_openai(tmp_path, dialogue([("weather in Paris", [[failed], [get]], "21.5")]), name="retry")
    assert retry.get("repeated_turns", 0) == 0 and retry["retries_after_failure"] == 1
    assert scan_openai(tmp_path, dialogue([("weather in Paris", [[get]], "21.5")]), name="ok").get(
        "repeated_turns", 0) == 0


def test_one_value_in_two_parameters(tmp_path):
    same = ("transfer", {"from_account": "ACC-100", "to_account": "ACC-100", "amount": 50}, {"ok": True})
    assert scan_openai(tmp_path, dialogue([("move 50", [[same]], "ok")]), name="bad")["same_value_calls"] == 1
    fine = ("transfer", {"from_account": "ACC-100", "to_account": "ACC-200", "amount": 100}, {"ok": True})
    assert scan_openai(tmp_path, dialogue([("move 100", [[fine]], "ok")]), name="ok").get("same_value_calls", 0) == 0


def test_failures_passed_as_success(tmp_path):
    nested = ("get_orders", {"user_id": "U-1"}, {"orders": [{"error": "backend busy"}]})
    text = ("get_user", {"name": "zed"}, "User not found")
    status = ("transfer", {"from_account": "A-1", "to_account": "B-2", "amount": 5}, {"transfer_status": False})
    bad = scan_openai(tmp_path, dialogue([("orders of U-1", [[nested]], "here they are")]),
                      dialogue([("find zed", [[text]], "found")]),
                      dialogue([("pay B-2", [[status]], "paid")]), name="bad")
    assert bad["failure_turns"] == 3 and bad["failed_results"] == 3
    repaired = scan_openai(tmp_path, dialogue([("orders of U-1", [[nested], [("get_orders", {"user_id": "U-1"},
                                                                              {"orders": []})]], "none")]),
                           name="repaired")
    assert repaired.get("failure_turns", 0) == 0 and repaired["failed_repaired"] == 1
    ok = scan_openai(tmp_path, dialogue([("orders of U-1", [[("get_orders", {"user_id": "U-1"},
                                                              {"orders": [], "error": None})]], "none")]),
                     dialogue([("am I logged in?", [[("get_login_status", {}, {"login_status": False})]], "no")]),
                     name="ok")
    assert ok.get("failed_results", 0) == 0


def test_user_states_values_the_turn_creates(tmp_path):
    book = ("book_flight", {"dest": "Rome"}, {"booking_id": "BK-99812"})
    check = ("get_booking", {"booking_id": "BK-99812"}, {"booking_id": "BK-99812", "status": "confirmed"})
    bad = scan_openai(tmp_path, dialogue([("Book Rome, then check booking BK-99812", [[book], [check]], "ok")]),
                      name="bad")
    assert bad["user_future_turns"] == 1 and bad["user_future_strict_turns"] == 1
    old = scan_openai(tmp_path, dialogue([("Book Rome, then check booking BK-99812", [[book], [check]], "ok")],
                                         old=True), name="old")
    assert old["user_future_turns"] == 1 and old.get("clairvoyant_calls", 0) == 0  # the query leaks it
    # the user names an existing booking: the result echoes it back after the call used it
    ok = scan_openai(tmp_path, dialogue([("Check booking BK-99812", [[check]], "confirmed")]), name="ok")
    assert ok.get("user_future_turns", 0) == 0 and ok.get("user_future_strict_turns", 0) == 0
    # ...and a booking minted in an EARLIER turn may be named by the user later
    later = dialogue([("Book Rome", [[book]], "BK-99812"), ("check booking BK-99812", [[check]], "ok")])
    assert scan_openai(tmp_path, later, name="later").get("user_future_turns", 0) == 0


def test_values_in_their_described_format(tmp_path):
    bad = scan_openai(tmp_path, dialogue([("event on 12/01/2026", [[("create_event", {"date": "12/01/2026"},
                                                                       {"ok": True})]], "ok")]), name="bad")
    assert bad["format_values[YYYY-MM-DD]"] == 1 and bad.get("format_ok[YYYY-MM-DD]", 0) == 0
    ok = scan_openai(tmp_path, dialogue([("event on 2026-12-01", [[("create_event", {"date": "2026-12-01"},
                                                                      {"ok": True})]], "ok")]), name="ok")
    assert ok["format_values[YYYY-MM-DD]"] == ok["format_ok[YYYY-MM-DD]"] == 1


def _bfcl_system(types_as: str) -> str:
    funcs = [{"name": "get_user", "description": "d", "parameters": {
        "type": types_as, "properties": {"name": {"type": "string"}, "n": {"type": "float" if types_as == "dict"
                                                                            else "number"}}}}]
    return "You are an expert...\nHere is a list of functions in json format that you can invoke.\n" + \
        json.dumps(funcs, indent=4) + "\n"


def test_bfcl_prompting_file(tmp_path):
    d = tmp_path / "bfcl"
    d.mkdir()
    ours = {"train_from": 2, "messages": [
        {"role": "system", "content": _bfcl_system("object")},
        {"role": "user", "content": "find alice and bob"},
        {"role": "assistant", "content": "<think>\nx\n</think>\n\n[get_user(name='alice'), get_user(name='bob')]"},
        {"role": "tool", "content": json.dumps([{"id": "U-1", "email": None}, None])},
        {"role": "assistant", "content": "done"}]}
    write_jsonl(d / "bfcl_prompting.jsonl", [ours])
    bad = scan_exports.to_json(scan_exports.scan(d))["bfcl"]["ALL"]
    assert bad["calls"] == 2 and bad["bfcl_tool_msgs"] == 1
    assert bad["bfcl_tool_msgs_no_name"] == 1 and bad["bfcl_results_not_bfcl_rendering"] == 1
    assert bad["bfcl_prompts_jsonschema_types"] == 1 and bad["bfcl_doc_type_number"] == 1

    bfcl_like = {"train_from": 2, "messages": [
        {"role": "system", "content": _bfcl_system("dict")},
        {"role": "user", "content": "find alice and bob"},
        {"role": "assistant", "content": "<think>\nx\n</think>\n\n[get_user(name='alice'), get_user(name='bob')]"},
        {"role": "tool", "name": "get_user(name='alice')", "content": json.dumps({"id": "U-1", "email": None})},
        {"role": "tool", "name": "get_user(name='bob')", "content": str([None, True, "x"])},
        {"role": "assistant", "content": "done"}]}
    write_jsonl(d / "bfcl_prompting.jsonl", [bfcl_like])
    ok = scan_exports.to_json(scan_exports.scan(d))["bfcl"]["ALL"]
    assert ok["calls"] == 2 and ok["bfcl_tool_msgs"] == 2
    for k in ("bfcl_tool_msgs_no_name", "bfcl_tool_msgs_name_not_a_call", "bfcl_results_not_bfcl_rendering",
              "bfcl_prompts_jsonschema_types", "bfcl_doc_type_object", "bfcl_doc_type_number"):
        assert ok.get(k, 0) == 0, k
    assert ok["bfcl_doc_type_dict"] == 1 and ok["bfcl_doc_type_float"] == 1


def test_sharegpt_and_toolsets_from_parquet(tmp_path):
    """ShareGPT's one-observation-per-step list is split per call (old shape: clairvoyant), and the
    toolset of each JSONL record comes from samples.parquet + rl.parquet by position."""
    d = tmp_path / "day"
    d.mkdir()
    conv = [{"from": "human", "value": "orders of alice"},
            {"from": "function_call", "value": "<think>\nx\n</think>\n\n" + json.dumps(
                [{"name": "get_user", "arguments": {"name": "alice"}},
                 {"name": "get_orders", "arguments": {"user_id": "U-12345"}}])},
            {"from": "observation", "value": json.dumps([{"user_id": "U-12345"}, {"orders": []}])},
            {"from": "gpt", "value": "none"}]
    write_jsonl(d / "sharegpt.jsonl", [{"conversations": conv, "system": "sys", "tools": json.dumps(TOOLS)}] * 2)
    msgs_a = dialogue([("Show alice's orders", USER_THEN_ORDERS, "done")], old=True)
    msgs_b = dialogue([("Show alice's orders", USER_THEN_ORDERS, "done")])
    write_jsonl(d / "openai.jsonl", [{"messages": msgs_a, "tools": TOOLS}, {"messages": msgs_b, "tools": TOOLS}])
    pq.write_table(pa.table({"sample_id": ["dlg-a:0", "dlg-b:0"], "dialogue_id": ["dlg-a", "dlg-b"],
                             "turn_index": [0, 0], "messages": [json.dumps(msgs_a), json.dumps(msgs_b)],
                             "tools": [json.dumps(TOOLS)] * 2, "train_from": [2, 2]}), d / "samples.parquet")
    pq.write_table(pa.table({"extra_info": [{"dialogue_id": "dlg-a", "toolset": "shop"},
                                            {"dialogue_id": "dlg-b", "toolset": "bank"}]}), d / "rl.parquet")
    out = scan_exports.to_json(scan_exports.scan(d))
    assert out["sharegpt"]["ALL"]["calls"] == 4 and out["sharegpt"]["ALL"]["clairvoyant_calls"] == 2
    assert out["sharegpt"]["shop"]["records"] == out["sharegpt"]["bank"]["records"] == 1
    assert out["openai"]["shop"]["clairvoyant_calls"] == 1 and out["openai"]["bank"].get("clairvoyant_calls", 0) == 0
    assert out["parquet"]["shop"]["clairvoyant_calls"] == 1 and out["parquet"]["bank"]["multistep_turns"] == 1

    # the CLI: a table by default, the same numbers with --json
    run = subprocess.run([sys.executable, str(SCRIPT), str(d)], capture_output=True, text=True, check=True)
    assert "1 clairvoyant calls" in run.stdout and "bank" in run.stdout
    run = subprocess.run([sys.executable, str(SCRIPT), str(d), "--json"], capture_output=True, text=True, check=True)
    assert json.loads(run.stdout)["openai"]["shop"]["clairvoyant_calls"] == 1
