"""Phases II-III against the local OpenAI-compatible test server, over real HTTP."""

import hashlib
import json
import shutil
from functools import cache

import dagster as dg
import duckdb
import pytest

from funreason_pipeline.agents import prompts
from funreason_pipeline.agents.advanced_tool import mentionable
from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.agents.phase2 import run_phase2
from funreason_pipeline.agents.phase3 import run_phase3
from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.llm import LLMClient, LLMSettings
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed
from testing.llm_server import R1_FAULTS, ServerConfig, TestServer

WRONG_FIRST = "I will just look around first."


@cache
def phase1(name="tickets"):
    ts = toolset_by_name(name)
    tools = toolset_tools(ts)
    edges = build_edges(ts, tools, [generate_scenario(ts, stable_seed("probe", name, i)) for i in range(4)], seed=1)
    trajs = sample_partition(ts, tools, edges, "2026-07-01", 3, max_extra=0).trajectories
    return ts, tools, [type(t).model_validate_json(t.model_dump_json()) for t in trajs]


class ScriptedAgents:
    """A stand-in model: right answers derived from the request, the reasoner wrong on its first try."""

    def __init__(self, gt_by_query):
        self.gt_by_query = gt_by_query

    def __call__(self, role, body):
        msgs = body["messages"]
        user = [m for m in msgs if m["role"] == "user"][-1]["content"]
        if role == "tooling":
            return {"content": json.dumps({"name": "handle_request", "description": "Does what the user asks."})}
        if role == "querying":
            spec = json.loads(user)
            values = [s for v in spec["user_supplied_values"].values() for s in mentionable(v)]
            ref = hashlib.sha1(user.encode()).hexdigest()[:8]  # distinct queries for distinct turns
            return {"content": json.dumps({"query": f"Please take care of this for me (ref {ref}): "
                                                    + "; ".join(values) + "."})}
        if role == "critic":
            return {"content": json.dumps({"critique": "Your calls did not change anything the request asked for."})}
        if msgs[0]["content"].startswith(prompts.prompt("reply")[:40]):
            return {"content": json.dumps({"reply": "All done."})}
        query = next(m["content"] for m in reversed(msgs) if m["role"] == "user"
                     and not m["content"].startswith("Feedback on your previous attempt"))
        if not any(m["role"] == "user" and m["content"].startswith("Feedback on your previous attempt") for m in msgs):
            return {"content": json.dumps({"reasoning": WRONG_FIRST, "calls": []})}
        calls = [{"name": c.tool, "arguments": c.arguments} for c in self.gt_by_query[query]]
        return {"content": json.dumps({"reasoning": "Step by step: " + ", ".join(c["name"] for c in calls),
                                       "calls": calls})}


def _run(server_url, db, ts, tools, trajs, agents):
    client = LLMClient(LLMSettings.for_endpoint(server_url, api_key="sk-test-PLANTED-0123456789"), db_path=db)
    p2 = run_phase2(trajs, tools, client)
    for r in p2.rows:
        t = next(t for t in trajs if t.trajectory_id == r.trajectory_id)
        agents.gt_by_query[r.query] = t.turns[r.turn_index].calls
    qmap = {(r.trajectory_id, r.turn_index): {"query": r.query, "advanced_tool": r.advanced_tool} for r in p2.rows}
    p3 = run_phase3(ts, tools, trajs, qmap, k_max=3, client=client)
    return p2, p3


def test_critic_loop_passes_on_attempt_two_and_keeps_clean_reasoning(tmp_path):
    ts, tools, trajs = phase1()
    agents = ScriptedAgents({})
    with TestServer(ServerConfig(responder=agents)) as srv:
        p2, p3 = _run(srv.url, tmp_path / "c.duckdb", ts, tools, trajs, agents)
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
    tr = {r.turn_index: {"passed": r.passed, "reasoning": r.reasoning, "calls": r.calls, "reply": r.reply}
          for r in p3.rows if r.trajectory_id == t.trajectory_id}
    d, _ = build_dialogue(t, tools, q, tr)
    text = json.dumps(d["messages"])
    assert "Feedback on your previous attempt" not in text and "Hint:" not in text and WRONG_FIRST not in text


def test_prompt_edit_resends_exactly_the_changed_requests(tmp_path, monkeypatch):
    pdir = tmp_path / "prompts"
    shutil.copytree(prompts.PROMPT_DIR, pdir)
    monkeypatch.setenv("FUNREASON_PROMPTS_DIR", str(pdir))
    ts, tools, trajs = phase1()
    agents = ScriptedAgents({})
    db = tmp_path / "p5.duckdb"
    with TestServer(ServerConfig(responder=agents)) as srv:
        _, p3 = _run(srv.url, db, ts, tools, trajs, agents)
        first = srv.stats()["total"]
        assert first > 0
        _run(srv.url, db, ts, tools, trajs, agents)  # unchanged rerun: everything from the cache
        assert srv.stats()["total"] == first
        (pdir / "critic.md").write_text((pdir / "critic.md").read_text() + "\nBe brief.\n")
        _run(srv.url, db, ts, tools, trajs, agents)
        stats = srv.stats()
    changed = len(p3.rows)  # one critic request per turn; the critique text is unchanged, so nothing else
    assert stats["total"] - first == changed
    assert stats["by_role"]["critic"] == 2 * changed


@pytest.mark.parametrize("garbage", ["Sorry, I cannot help with that.", '{"wrong": "shape"}'])
def test_unusable_endpoint_demo_finishes_and_every_turn_is_a_rejection(tmp_db, monkeypatch, garbage):
    from funreason_pipeline.cli import run_demo

    with TestServer(ServerConfig(scripts={r: [{"content": garbage}] for r in
                                          ("tooling", "querying", "reasoning", "critic")})) as srv:
        monkeypatch.setenv("FUNREASON_LLM_BASE_URL", srv.url)
        monkeypatch.setenv("FUNREASON_LLM_MODEL", "test-model")
        monkeypatch.setenv("FUNREASON_LLM_API_KEY", "sk-test-PLANTED-0123456789")
        with dg.instance_for_test() as inst:
            assert run_demo("2026-07-02", ["tickets"], instance=inst)
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
    agents = ScriptedAgents({})
    cfg = ServerConfig(responder=agents, retry_after=0.05, hang_s=3.0, seed=7, **R1_FAULTS)
    opts = ClientOptions(backoff_base_s=0.02, backoff_max_s=0.1, max_retry_after_s=0.1, breaker_failures=50)
    with TestServer(cfg) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url, timeout_s=0.5), db_path=tmp_path / "f.duckdb",
                           options=opts)
        p2 = run_phase2(trajs, tools, client)
        for r in p2.rows:
            t = next(t for t in trajs if t.trajectory_id == r.trajectory_id)
            agents.gt_by_query[r.query] = t.turns[r.turn_index].calls
        qmap = {(r.trajectory_id, r.turn_index): {"query": r.query, "advanced_tool": r.advanced_tool}
                for r in p2.rows}
        p3 = run_phase3(ts, tools, trajs, qmap, k_max=3, client=client)
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
    agents = NoReplyAgents({})
    with TestServer(ServerConfig(responder=agents)) as srv:
        p2, p3 = _run(srv.url, tmp_path / "r.duckdb", ts, tools, trajs, agents)
    first = [r for r in p3.rows if r.turn_index == 0]
    assert first and all(not r.passed and r.reply == "" for r in first)
    reasons = {}
    for rej in p3.rejections:
        reasons.setdefault(rej.item_id, []).append(rej.reason)
    # the calls passed verification; the turn fails once, for the missing reply, not twice
    assert all(reasons[f"{r.trajectory_id}/0"] == ["reply_failed"] for r in first)
    # its later turns are not attempted, each with its own reason
    later = {(t.trajectory_id, k) for t in trajs for k in range(1, len(t.turns))}
    assert all(reasons.get(f"{tid}/{k}") == ["after_failed_turn"] for tid, k in later
               if (tid, k) in {(r.trajectory_id, r.turn_index) for r in p2.rows})
