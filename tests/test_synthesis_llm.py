"""Phases II-III against the local OpenAI-compatible test server, over real HTTP."""

import hashlib
import json
import shutil
import sys
from functools import cache
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from flow_helpers import run_llm
from graph_helpers import bfcl_graph
from stage_rows import small_day

from funreason_pipeline.agents import prompts
from funreason_pipeline.agents.advanced_tool import mentionable
from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.flow import STEP_RESULTS
from funreason_pipeline.llm import LLMClient, LLMSettings
from funreason_pipeline.llm.structured import REPAIR_PROMPT
from funreason_pipeline.sampling.phase1 import sample_partition
from testing.llm_server import R1_FAULTS, ServerConfig, TestServer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.scripted_agents import stepwise_answer

WRONG_FIRST = "I will just look around first."
REPAIR = REPAIR_PROMPT.split("{")[0]


@cache
def phase1(name="tickets"):
    ts, tools, edges = bfcl_graph(name)  # probed once per session
    trajs = sample_partition(ts, tools, edges, "2026-07-01", 3, max_extra=0).trajectories
    return ts, tools, [type(t).model_validate_json(t.model_dump_json()) for t in trajs]


def turn_steps(t, level) -> list[int]:
    """The steps of a turn's calls: each after the calls of the turn it takes values or state from
    (`sources`, `after`), in call order; never earlier than the step the trajectory gives it."""
    offset = sum(len(x.calls) for x in t.turns[:level])
    steps: list[int] = []
    for i, c in enumerate(t.turns[level].calls):
        deps = [steps[j - offset] + 1 for j in [*c.sources.values(), *c.after] if offset <= j < offset + i]
        steps.append(max([steps[-1] if steps else 0, c.step, *deps]))
    return steps


def gt_calls(t, level) -> list[dict]:
    """A turn's ground-truth calls as the stand-in reasoner knows them, with their steps."""
    return [{"name": c.tool, "arguments": c.arguments, "result": c.result, "step": s}
            for c, s in zip(t.turns[level].calls, turn_steps(t, level), strict=True)]


def _chain_key(calls) -> str:
    """A turn's calls as the tooling request shows them ({tool, arguments, result}), as one text."""
    return json.dumps([[c["tool"], c["arguments"], c.get("result")] for c in calls], sort_keys=True)


class ScriptedAgents:
    """A stand-in model: right answers derived from the request, the reasoner wrong on its first try
    (it answers at once, without calls) and step by step after the critic's feedback.

    It learns which turn a query is for as the flow asks: the tooling request shows the turn's calls,
    the tooling answer names the advanced tool after that turn, and the querying request names the
    tool; the query written then maps to the turn (`gt_by_query`)."""

    def __init__(self, trajs, reasoning_field: bool = False):
        self.turns = {_chain_key(json.loads(json.dumps([c.model_dump() for c in t.turns[k].calls]))): (t, k)
                      for t in trajs for k in range(len(t.turns))}
        self.by_tool: dict = {}  # advanced tool name -> (trajectory, turn)
        self.gt_by_query: dict = {}  # query -> (trajectory, turn)
        self.reasoning_field = reasoning_field  # thinking in `reasoning_content`, not in <think>

    def __call__(self, role, body):
        msgs = body["messages"]
        user = [m for m in msgs if m["role"] == "user"][-1]["content"]
        if role == "tooling":
            key = _chain_key(json.loads(next(m for m in msgs if m["role"] == "user")["content"])["calls"])
            name = "handle_" + hashlib.sha1(key.encode()).hexdigest()[:10]
            if key in self.turns:  # a turn of the trajectories it was given (none: it writes queries only)
                self.by_tool[name] = self.turns[key]
            return {"content": json.dumps({"name": name, "description": "Does what the user asks."})}
        if role == "querying":
            spec = json.loads(user)
            values = [s for v in spec["user_supplied_values"].values() for s in mentionable(v)]
            ref = hashlib.sha1(user.encode()).hexdigest()[:8]  # distinct queries for distinct turns
            query = f"Please take care of this for me (ref {ref}): " + "; ".join(values) + "."
            if spec["advanced_tool"]["name"] in self.by_tool:
                self.gt_by_query[query] = self.by_tool[spec["advanced_tool"]["name"]]
            return {"content": json.dumps({"query": query})}
        if role == "critic":
            return {"content": json.dumps({"critique": "Your calls did not change anything the request asked for."})}
        if msgs[0]["content"].startswith(prompts.prompt("reply")[:40]):
            return {"content": json.dumps({"reply": "All done."})}
        query = next(m["content"] for m in reversed(msgs) if m["role"] == "user"
                     and not m["content"].startswith(("Feedback on your previous attempt", STEP_RESULTS, REPAIR)))
        if not any(m["role"] == "user" and m["content"].startswith("Feedback on your previous attempt") for m in msgs):
            if not body.get("tools"):  # the JSON fallback
                return {"content": json.dumps({"reasoning": WRONG_FIRST, "calls": []})}
            return {"content": f"<think>{WRONG_FIRST}</think>Done."}
        return stepwise_answer(gt_calls(*self.gt_by_query[query]), body, self.reasoning_field)


def _run(server_url, db, ts, tools, trajs):
    client = LLMClient(LLMSettings.for_endpoint(server_url, api_key="sk-test-PLANTED-0123456789"), db_path=db)
    out = run_llm(ts, tools, trajs, client, k_max=3)
    return out.queries, out.traces


def test_critic_loop_passes_on_attempt_two_and_keeps_clean_reasoning(tmp_path):
    ts, tools, trajs = phase1()
    agents = ScriptedAgents(trajs)
    with TestServer(ServerConfig(responder=agents)) as srv:
        p2, p3 = _run(srv.url, tmp_path / "c.duckdb", ts, tools, trajs)
        by_role = srv.stats()["by_role"]
    assert p2.rows and not [r for r in p2.rejections if r.reason != "after_rejected_turn"]
    assert p3.rows and all(r.passed and r.attempts == 2 for r in p3.rows)
    assert all(len(r.critiques) == 1 for r in p3.rows)
    assert by_role["critic"] == len(p3.rows)
    for r in p3.rows:
        assert WRONG_FIRST not in r.reasoning and "did not change" not in r.reasoning
        assert r.model == "test-model"
    t = trajs[0]
    q = {r.turn_index: r.query for r in p2.rows if r.trajectory_id == t.trajectory_id}
    tr = {r.turn_index: {"passed": r.passed, "reasoning": r.reasoning, "calls": r.calls, "reply": r.reply,
                         "step_reasoning": r.step_reasoning}
          for r in p3.rows if r.trajectory_id == t.trajectory_id}
    d, _ = build_dialogue(t, tools, q, tr)
    text = json.dumps(d["messages"])
    assert "Feedback on your previous attempt" not in text and "Hint:" not in text and WRONG_FIRST not in text


def test_prompt_edit_resends_exactly_the_changed_requests(tmp_path, monkeypatch):
    pdir = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPT_DIR, pdir)
    monkeypatch.setenv("FUNREASON_PROMPTS_DIR", str(pdir))
    ts, tools, trajs = phase1()
    agents = ScriptedAgents(trajs)
    db = tmp_path / "p5.duckdb"
    with TestServer(ServerConfig(responder=agents)) as srv:
        _, p3 = _run(srv.url, db, ts, tools, trajs)
        first = srv.stats()["total"]
        assert first > 0
        _run(srv.url, db, ts, tools, trajs)  # unchanged rerun: everything from the cache
        assert srv.stats()["total"] == first
        (pdir / "critic.md").write_text((pdir / "critic.md").read_text() + "\nBe brief.\n")
        _run(srv.url, db, ts, tools, trajs)
        stats = srv.stats()
    changed = len(p3.rows)  # one critic request per turn; the critique text is unchanged, so nothing else
    assert stats["total"] - first == changed
    assert stats["by_role"]["critic"] == 2 * changed


@pytest.mark.parametrize("garbage", ["Sorry, I cannot help with that.", '{"wrong": "shape"}'])
def test_unusable_endpoint_demo_finishes_and_every_turn_is_a_rejection(tmp_db, monkeypatch, garbage):
    """A small day (stage_rows.small_day): every turn rejected, the raw answer kept and no secret in the
    logs or the database hold for any number of turns."""
    from funreason_pipeline.cli import run_demo

    with TestServer(ServerConfig(scripts={r: [{"content": garbage}] for r in
                                          ("tooling", "querying", "reasoning", "critic")})) as srv:
        monkeypatch.setenv("FUNREASON_LLM_BASE_URL", srv.url)
        monkeypatch.setenv("FUNREASON_LLM_MODEL", "test-model")
        monkeypatch.setenv("FUNREASON_LLM_API_KEY", "sk-test-PLANTED-0123456789")
        with dg.instance_for_test() as inst:
            assert run_demo("2026-07-02", ["tickets"], instance=inst, run_config=small_day())
            events = [str(e) for e in inst.all_logs(inst.get_runs()[0].run_id)]
    with duckdb.connect(str(tmp_db), read_only=True) as con:
        turns = sum(len(json.loads(t)) for (t,) in con.execute("SELECT turns FROM trajectories").fetchall())
        rej = con.execute("SELECT reason, count(*) FROM rejections WHERE stage = 'queries' GROUP BY 1").fetchall()
        assert con.execute("SELECT count(*) FROM queries").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM sft_samples").fetchone()[0] == 0
        raw = con.execute("SELECT detail FROM rejections WHERE reason = 'tooling_failed' LIMIT 1").fetchone()[0]
    assert turns > 0 and sum(n for _, n in rej) == turns, rej
    assert garbage[:10] in raw  # the raw answer is kept with the rejection
    assert not any("sk-test-PLANTED" in e for e in events)
    assert b"sk-test-PLANTED" not in tmp_db.read_bytes()


def test_fault_mix_every_item_is_accepted_or_rejected_with_a_reason(tmp_path):
    """R1: 20% 500, 10% 429 (Retry-After), 5% timeouts, 5% malformed JSON, 5% truncated output."""
    from funreason_pipeline.llm import ClientOptions

    ts, tools, trajs = phase1()
    agents = ScriptedAgents(trajs)
    cfg = ServerConfig(responder=agents, retry_after=0.05, hang_s=3.0, seed=7, **R1_FAULTS)
    opts = ClientOptions(backoff_base_s=0.02, backoff_max_s=0.1, max_retry_after_s=0.1, breaker_failures=50)
    with TestServer(cfg) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url, timeout_s=0.5), db_path=tmp_path / "f.duckdb",
                           options=opts)
        out = run_llm(ts, tools, trajs, client, k_max=3)
        p2, p3 = out.queries, out.traces
        outcomes = srv.stats()["by_outcome"]
    assert len(outcomes) >= 4, outcomes  # the faults really happened
    turns = {f"{t.trajectory_id}/{k}" for t in trajs for k in range(len(t.turns))}
    accepted = {f"{r.trajectory_id}/{r.turn_index}" for r in p2.rows}
    rejected = {r.item_id for r in p2.rejections}
    assert accepted | rejected == turns and not accepted & rejected
    assert all(r.reason and r.item_id for r in p2.rejections + p3.rejections)
    traced = {f"{r.trajectory_id}/{r.turn_index}" for r in p3.rows}
    assert accepted <= traced | {r.item_id for r in p3.rejections}
    assert {f"{r.trajectory_id}/{r.turn_index}" for r in p3.rows if not r.passed} <= {r.item_id for r in p3.rejections}


class NoReplyAgents(ScriptedAgents):
    """Right calls on the second attempt, but the closing reply is not usable JSON."""

    def __call__(self, role, body):
        if role == "reasoning" and body["messages"][0]["content"].startswith(prompts.prompt("reply")[:40]):
            return {"content": "I'd rather not summarise."}
        return super().__call__(role, body)


def test_a_turn_without_a_closing_reply_is_one_reply_failed_rejection(tmp_path):
    ts, tools, trajs = phase1()
    agents = NoReplyAgents(trajs)
    with TestServer(ServerConfig(responder=agents)) as srv:
        p2, p3 = _run(srv.url, tmp_path / "r.duckdb", ts, tools, trajs)
    first = [r for r in p3.rows if r.turn_index == 0]
    assert first and all(not r.passed and r.reply == "" for r in first)
    reasons = {}
    for rej in p3.rejections:
        reasons.setdefault(rej.item_id, []).append(rej.reason)
    # the calls passed verification; the turn fails once, for the missing reply, not twice
    assert all(reasons[f"{r.trajectory_id}/0"] == ["reply_failed"] for r in first)
    # its later turns are not attempted, each with its own reason (where the work stopped: their
    # queries were never written)
    assert {(r.trajectory_id, r.turn_index) for r in p2.rows} == {(t.trajectory_id, 0) for t in trajs}
    later = {f"{t.trajectory_id}/{k}" for t in trajs for k in range(1, len(t.turns))}
    assert later and {r.item_id: r.reason for r in p2.rejections} == dict.fromkeys(later, "after_failed_turn")


# --- the step-wise reasoner ------------------------------------------------------------------------
def _reasoning_requests(log):
    """(messages, tools, answer) of the reasoner's step requests (not its closing replies)."""
    reply_head = prompts.prompt("reply")[:40]
    return [(b["messages"], b.get("tools"), a) for role, b, a in log
            if role == "reasoning" and not b["messages"][0]["content"].startswith(reply_head)]


def _recording(agents, log):
    def responder(role, body):
        answer = agents(role, body)
        log.append((role, body, answer))
        return answer
    return responder


def _turn_of(agents, messages):
    query = next(m["content"] for m in reversed(messages) if m["role"] == "user"
                 and not m["content"].startswith(("Feedback on your previous attempt", STEP_RESULTS, REPAIR)))
    return agents.gt_by_query[query], query


def _shown_results(messages, query):
    """The current turn's tool results a request shows, in order."""
    start = max(i for i, m in enumerate(messages) if m["role"] == "user" and m["content"] == query)
    return [json.loads(m["content"]) for m in messages[start:] if m["role"] == "tool"]


def test_each_step_is_asked_for_after_the_results_it_uses_are_in_the_conversation(tmp_path):
    """Native tool calls: a call that uses a value another call of its turn returns is proposed only in
    a request whose messages already hold that call's result (as a tool message)."""
    ts, tools, trajs = phase1()
    agents = ScriptedAgents(trajs, reasoning_field=True)
    log: list = []
    with TestServer(ServerConfig(responder=_recording(agents, log))) as srv:
        _p2, p3 = _run(srv.url, tmp_path / "s.duckdb", ts, tools, trajs)
    checked = 0
    for messages, tools_sent, answer in _reasoning_requests(log):
        assert tools_sent and {t["type"] for t in tools_sent} == {"function"}  # native: OpenAI tools
        assert "Tools:\n" not in messages[-1]["content"]
        if not answer.get("tool_calls"):
            continue
        (t, level), query = _turn_of(agents, messages)
        shown = _shown_results(messages, query)
        offset = sum(len(x.calls) for x in t.turns[:level])
        calls = t.turns[level].calls
        for i in range(len(shown), len(shown) + len(answer["tool_calls"])):  # the calls this request proposes
            for j in [*calls[i].sources.values()]:
                if j >= offset:  # a value made in this turn: its result is in the request already
                    assert j - offset < len(shown), (calls[i].tool, "proposed before its source ran")
                    assert shown[j - offset] == json.loads(json.dumps(calls[j - offset].result))
                    checked += 1
    assert checked >= 2, "the partition has turns with values made within the turn"
    assert p3.rows and all(r.passed for r in p3.rows)
    multi = [r for r in p3.rows if len({c["step"] for c in r.calls}) > 1]
    assert multi, "some kept turns have several steps"
    for r in multi:
        steps = sorted({c["step"] for c in r.calls})
        assert steps == list(range(len(steps))) and len(r.step_reasoning) == len(steps)
        # the thinking came from `reasoning_content`; the kept steps are the passing attempt's alone
        assert all(text.startswith(f"Step {k + 1}: ") for k, text in enumerate(r.step_reasoning))
        assert WRONG_FIRST not in r.reasoning


def test_json_fallback_sends_no_tools_and_returns_results_as_messages(tmp_path):
    ts, tools, trajs = phase1()
    agents = ScriptedAgents(trajs)
    log: list = []
    with TestServer(ServerConfig(responder=_recording(agents, log))) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url, tool_calling="json"), db_path=tmp_path / "j.duckdb")
        p3 = run_llm(ts, tools, trajs, client, k_max=3).traces
        sent = srv.stats()["total"]
        again = run_llm(ts, tools, trajs, client, k_max=3).traces  # same history: every step cached
        assert srv.stats()["total"] == sent and again.rows == p3.rows
    requests = _reasoning_requests(log)
    assert requests and all(tools_sent is None for _, tools_sent, _ in requests)
    assert all("Tools:\n" in next(m["content"] for m in msgs if "Hint:" in (m.get("content") or ""))
               for msgs, _, _ in requests)
    later = [msgs for msgs, _, _ in requests if msgs[-1]["content"].startswith(STEP_RESULTS)]
    assert later and not any(m["role"] == "tool" or "tool_calls" in m for msgs, _, _ in requests for m in msgs)
    assert any(m["role"] == "assistant" and json.loads(m["content"])["calls"] for msgs in later for m in msgs)
    assert p3.rows and all(r.passed and r.attempts == 2 for r in p3.rows)
    assert any(len({c["step"] for c in r.calls}) > 1 for r in p3.rows)


def _wrong_ids(t, level) -> dict[int, list[str]]:
    """Per call of the turn: its integer arguments that another call of the turn returned (ids)."""
    offset = sum(len(x.calls) for x in t.turns[:level])
    return {i: [p for p, j in c.sources.items() if j >= offset and isinstance(c.arguments.get(p), int)
                and not isinstance(c.arguments.get(p), bool)]
            for i, c in enumerate(t.turns[level].calls)}


class WrongStepAgents(ScriptedAgents):
    """On the first attempt, a step that passes an id another call of the turn returned passes a wrong
    one (a value it did not read off the results); right after the critic's feedback."""

    def __call__(self, role, body):
        msgs = body["messages"]
        if role != "reasoning" or msgs[0]["content"].startswith(prompts.prompt("reply")[:40]) or any(
                m["role"] == "user" and m["content"].startswith("Feedback on your previous attempt") for m in msgs):
            return super().__call__(role, body)
        (t, level), _ = _turn_of(self, msgs)
        calls = gt_calls(t, level)
        for i, params in _wrong_ids(t, level).items():
            calls[i]["arguments"] = {k: v + 100000 if k in params else v for k, v in calls[i]["arguments"].items()}
        return stepwise_answer(calls, body)


def test_a_wrong_step_fails_verification_and_the_critic_loop_recovers(tmp_path):
    ts, tools, trajs = phase1()
    agents = WrongStepAgents(trajs)
    log: list = []
    with TestServer(ServerConfig(responder=_recording(agents, log))) as srv:
        _p2, p3 = _run(srv.url, tmp_path / "w.duckdb", ts, tools, trajs)
    wrong = {(t.trajectory_id, k) for t in trajs for k in range(len(t.turns)) if any(_wrong_ids(t, k).values())}
    assert len(wrong) >= 2 and p3.rows and all(r.passed for r in p3.rows)
    for r in p3.rows:
        assert r.attempts == (2 if (r.trajectory_id, r.turn_index) in wrong else 1)
    critic = [json.loads(b["messages"][1]["content"]) for role, b, _ in log if role == "critic"]
    assert len(critic) == len(wrong)
    assert all("response_mismatch" in " ".join(c["problems"]) for c in critic)
    assert all(any(c["step"] > 0 for c in payload["calls"]) for payload in critic)  # the wrong step was a later one
    # the kept trace is the passing attempt's: no wrong id, no critique in the reasoning
    for r in p3.rows:
        assert not any(v >= 100000 for c in r.calls for v in c["arguments"].values() if isinstance(v, int))
        assert not any(c in r.reasoning for c in r.critiques)


class LoopingAgents(ScriptedAgents):
    """A reasoner that never stops calling tools."""

    def __call__(self, role, body):
        msgs = body["messages"]
        if role != "reasoning" or msgs[0]["content"].startswith(prompts.prompt("reply")[:40]):
            return super().__call__(role, body)
        (t, level), _ = _turn_of(self, msgs)
        c = t.turns[level].calls[0]
        return {"content": "<think>Once more.</think>", "tool_calls": [{"name": c.tool, "arguments": c.arguments}]}


def test_the_step_limit_ends_an_attempt_with_a_clear_problem(tmp_path):
    ts, tools, trajs = phase1()
    agents = LoopingAgents(trajs)
    log: list = []
    with TestServer(ServerConfig(responder=_recording(agents, log))) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url), db_path=tmp_path / "l.duckdb")
        p3 = run_llm(ts, tools, trajs, client, k_max=2, max_steps=2).traces
    first = [r for r in p3.rows if r.turn_index == 0]
    assert len(first) == len(trajs) and not any(r.passed for r in p3.rows)
    rejected = {r.item_id: json.loads(r.detail) for r in p3.rejections if r.reason == "verification_failed"}
    assert len(rejected) == len(trajs)
    assert all(d["attempts"] == 2 and d["problems"][0].startswith("step_limit: still calling tools after 2 steps")
               for d in rejected.values())
    # per attempt: two steps with calls, then a third request whose calls are refused
    assert len(_reasoning_requests(log)) == len(trajs) * 2 * 3


class BadCallAgents(ScriptedAgents):
    """First attempt: a tool the toolset lacks; second: a real tool with arguments of the wrong type."""

    def __call__(self, role, body):
        msgs = body["messages"]
        if role != "reasoning" or msgs[0]["content"].startswith(prompts.prompt("reply")[:40]):
            return super().__call__(role, body)
        if not any(m["role"] == "user" and m["content"].startswith("Feedback") for m in msgs):
            return {"content": "", "tool_calls": [{"name": "os.system", "arguments": '{"cmd": "rm -rf /"}'}]}
        fn, param = next((t["function"], p) for t in body["tools"]
                         for p, schema in t["function"]["parameters"].get("properties", {}).items()
                         if schema.get("type") == "string")
        return {"content": "", "tool_calls": [{"name": fn["name"], "arguments": {param: ["not", "a", "string"]}}]}


def test_unknown_tools_and_bad_argument_types_fail_the_attempt_with_a_clear_problem(tmp_path):
    ts, tools, trajs = phase1()
    agents = BadCallAgents(trajs)
    log: list = []
    with TestServer(ServerConfig(responder=_recording(agents, log))) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url), db_path=tmp_path / "b.duckdb")
        p3 = run_llm(ts, tools, trajs, client, k_max=2).traces
    critic = [json.loads(b["messages"][1]["content"]) for role, b, _ in log if role == "critic"]
    assert critic and all(c["problems"] == ["unknown_tool: 'os.system' is not a tool of this toolset"]
                          and c["calls"] == [] for c in critic)
    details = [json.loads(r.detail) for r in p3.rejections if r.reason == "verification_failed"]
    assert details and all(d["problems"][0].startswith("bad_arguments: argument ") and "got array" in d["problems"][0]
                           for d in details)
    assert all(not r.passed and r.calls == [] for r in p3.rows)  # nothing ran


def test_a_step_reads_its_thinking_from_reasoning_content_or_think_tags():
    from funreason_pipeline.agents.flow import _native_step, as_json_protocol
    from funreason_pipeline.llm import LLMResponse, ToolCall

    def resp(content, reasoning=None):
        return LLMResponse(item_id="i", request_hash="h", role="reasoning", model="m", content=content,
                           reasoning=reasoning, tool_calls=[ToolCall(id="x", name="f", arguments='{"a": 1}')])

    assert _native_step(resp("", "Need a first.")).reasoning == "Need a first."
    assert _native_step(resp("<think>\nNeed a.\n</think>\n")).reasoning == "Need a."
    assert _native_step(resp("Need a.</think>")).reasoning == "Need a."  # <think> opened by the template
    assert _native_step(resp("Looking it up.")).reasoning == "Looking it up."
    assert _native_step(resp(None)).calls == [{"name": "f", "arguments": '{"a": 1}'}]
    shown = [{"role": "user", "content": "q"},
             {"role": "assistant", "content": "<think>\nNeed a.\n</think>", "tool_calls": [
                 {"id": "call_0_0", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}]},
             {"role": "tool", "tool_call_id": "call_0_0", "name": "f", "content": '{"b": 2}'},
             {"role": "assistant", "content": "Done."}]
    assert as_json_protocol(shown) == [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": json.dumps({"reasoning": "Need a.", "calls": [{"name": "f", "arguments": {"a": 1}}]})},
        {"role": "user", "content": STEP_RESULTS + json.dumps([{"name": "f", "result": {"b": 2}}])},
        {"role": "assistant", "content": "Done."}]
