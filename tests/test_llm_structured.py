"""Structured outputs: parse, up to two repair retries, then a failure that keeps the raw text."""

import asyncio
import json

from llm_helpers import make_client, reqs
from pydantic import BaseModel

from funreason_pipeline.llm import LLMRequest, LLMResponse, run_structured
from funreason_pipeline.llm.structured import acall_structured, parse_response
from testing.llm_server import TestServer


class Query(BaseModel):
    query: str
    difficulty: int


GOOD = '{"query": "weather in {first_user}?", "difficulty": 2}'


def test_bad_first_answer_is_repaired_once(tmp_path):
    # turn 0 (first answer): not JSON; turn 1 (the repair): right
    script = {"querying": [{"content": "Sure! Here it is: {last_user}"}, {"content": GOOD}]}
    with TestServer(scripts=script, record=True) as srv:
        out = run_structured(make_client(srv.url, tmp_path / "s.duckdb"), reqs(6), {"querying": Query})
        log = srv.stats()["log"]
    assert [r.ok for r in out.results] == [True] * 6
    assert all(r.repaired and r.attempts == 2 for r in out.results)
    assert out.results[2].value == Query(query="weather in q item 2?", difficulty=2)
    assert out.repairs_sent == 6 and out.repaired_ok == 6
    assert len(log) == 12  # one repair each, no more
    repair_msgs = [e for e in log if "could not be used" in e["last_user"]]
    assert len(repair_msgs) == 6 and "JSON" in repair_msgs[0]["last_user"]


def test_three_bad_answers_end_as_a_failure_with_raw_text_and_error(tmp_path):
    script = {"querying": [{"content": '{"query": "x"}'}, {"content": "still not json"}]}
    with TestServer(scripts=script) as srv:
        out = run_structured(make_client(srv.url, tmp_path / "s.duckdb"), reqs(3), {"querying": Query})
        assert srv.stats()["total"] == 9  # two repairs each, no more
    r = out.results[1]
    assert not r.ok and r.reason == "parse_error" and r.attempts == 3 and r.repairs_sent == 2
    assert r.raw_text == "still not json"
    assert "difficulty" in r.error  # the first error (missing field) is kept too
    rej = r.rejection("queries")
    assert rej["item_id"] == "q-1" and rej["reason"] == "llm_parse_error"
    assert json.loads(rej["detail"])["raw_text"] == "still not json"
    assert out.rejected_by_reason == {"parse_error": 3}
    md = out.as_metadata()
    assert md["accepted"] == 0 and md["rejected"] == 3 and md["repairs_sent"] == 6


def test_truncated_output_is_a_parse_failure_and_gets_repaired(tmp_path):
    script = {"critic": [{"content": GOOD, "finish_reason": "length"}, {"content": GOOD}]}
    with TestServer(scripts=script) as srv:
        out = run_structured(
            make_client(srv.url, tmp_path / "s.duckdb"), reqs(2, role="critic"), {"critic": Query}
        )
    assert all(r.ok and r.repaired for r in out.results)


def test_a_repair_cut_off_again_gets_a_second_repair(tmp_path):
    """R1 cuts 1 answer in 11 off: with one repair, two cut-offs in a row ended the turn."""
    cut = {"content": GOOD, "finish_reason": "length"}
    script = {"critic": [cut, cut, {"content": GOOD}]}
    with TestServer(scripts=script, record=True) as srv:
        two = run_structured(make_client(srv.url, None), reqs(2, role="critic"), {"critic": Query})
        sent_two = srv.stats()["total"]
        srv.reset()
        client = make_client(srv.url, None)

        async def one_repair():
            async with client.session() as s:
                return [await acall_structured(s, r, Query, repairs=1) for r in reqs(2, role="critic", tag="o")]

        one = asyncio.run(one_repair())
        log = srv.stats()["log"]
    assert all(r.ok and r.repaired and r.attempts == 3 and r.repairs_sent == 2 for r in two.results)
    assert sent_two == 6 and two.repairs_sent == 4 and two.repaired_ok == 2
    repairs = [e for e in log if e["last_user"].startswith("Your previous reply")]
    assert len(repairs) == 2 and len(log) == 4  # the one-repair run: one repair each, then the failure
    assert all(not r.ok and r.reason == "truncated" and r.attempts == 2 for r in one)


def test_structured_rerun_replays_from_the_cache(tmp_path):
    db = tmp_path / "s.duckdb"
    script = {"querying": [{"content": "nope"}, {"content": GOOD}]}
    with TestServer(scripts=script) as srv:
        a = run_structured(make_client(srv.url, db), reqs(4), {"querying": Query})
        b = run_structured(make_client(srv.url, db), reqs(4), {"querying": Query})
        assert srv.stats()["total"] == 8  # the rerun sent nothing, repairs included
    assert [r.value for r in a.results] == [r.value for r in b.results]
    assert b.stats.cache_hits == 8


def test_callable_parser_for_tool_calls_and_transport_failures_are_kept(tmp_path):
    def calls(resp: LLMResponse):
        if not resp.tool_calls:
            raise ValueError("expected tool calls")
        return [(c.name, json.loads(c.arguments)) for c in resp.tool_calls]

    script = {"reasoning": [{"content": None, "tool_calls": [{"name": "cd", "arguments": {"folder": "x"}}]}]}
    with TestServer(scripts=script) as srv:
        ok = run_structured(make_client(srv.url, None), reqs(2, role="reasoning"), {"reasoning": calls})
    assert ok.results[0].value == [("cd", {"folder": "x"})]
    with TestServer(rate_500=1.0) as srv:
        bad = run_structured(
            make_client(srv.url, None, max_attempts=2, breaker_failures=100),
            reqs(2, role="reasoning"),
            {"reasoning": calls},
        )
    assert [r.reason for r in bad.results] == ["http_5xx", "http_5xx"]
    assert bad.results[0].failure is not None and bad.repairs_sent == 0


def test_parse_never_evaluates_model_output():
    hostile = LLMResponse(
        item_id="x",
        request_hash="h",
        role="critic",
        model="m",
        content='__import__("os").system("echo pwned")',
        finish_reason="stop",
    )
    ok, value, reason, _error = parse_response(hostile, Query)
    assert not ok and reason == "parse_error" and value is None
    fenced = hostile.model_copy(update={"content": '```json\n{"query": "q", "difficulty": 1}\n```'})
    assert parse_response(fenced, Query)[1] == Query(query="q", difficulty=1)
    req = LLMRequest(role="critic", item_id="x", messages=[{"role": "user", "content": "hi"}])
    assert req.messages[0]["content"] == "hi"
