"""LLMClient over real HTTP (the official openai client) against the local test server."""

import asyncio
import time

import pytest
from llm_helpers import free_port, make_client, reqs, run_batch

from funreason_pipeline.llm import EndpointUnavailableError, LLMRequest, LLMResponse, LLMSettings
from funreason_pipeline.llm.client import LLMClient
from testing.llm_server import TestServer

BACKENDS = ["aiohttp", "httpx"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrency_bound_holds_and_is_used(backend):
    with TestServer(latency=0.05) as srv:
        client = make_client(srv.url, None, concurrency=4, http_backend=backend)
        res = run_batch(client, reqs(40))
        st = srv.stats()
    assert st["max_in_flight"] == 4  # never above C, and C is actually used
    assert st["total"] == 40
    assert [r.item_id for r in res.results] == [f"q-{i}" for i in range(40)]  # input order
    assert all(r.ok and r.content == f'{{"echo": "q item {i}"}}' for i, r in enumerate(res.results))
    assert res.stats.ok == 40 and res.stats.sent == 40 and res.stats.failed == 0


def test_duplicate_requests_are_sent_once_and_answered_for_each_item():
    base = reqs(5)
    dupes = [r.model_copy(update={"item_id": f"dup-{i}"}) for i, r in enumerate(base)]
    with TestServer() as srv:
        res = run_batch(make_client(srv.url, None), base + dupes)
        assert srv.stats()["total"] == 5
    assert [r.item_id for r in res.results] == [r.item_id for r in base + dupes]
    assert res.results[0].content == res.results[5].content
    assert res.stats.items == 10 and res.stats.unique_requests == 5 and res.stats.ok == 10


def test_429_backs_off_and_recovers():
    # capacity 2, client C 8: the server turns the excess away with 429 + Retry-After 0.2 s
    with TestServer(latency=0.05, capacity=2, retry_after=0.2, record=True) as srv:
        client = make_client(srv.url, None, concurrency=8)
        t0 = time.perf_counter()
        res = run_batch(client, reqs(40))
        wall = time.perf_counter() - t0
        st = srv.stats()
    assert res.stats.ok == 40, res.stats
    assert res.stats.rate_limited_responses == st["by_outcome"]["capacity_429"] > 0
    assert st["max_in_flight"] <= 2
    # it backed off: a request turned away waited its Retry-After before coming back ...
    last: dict[str, tuple[float, str]] = {}
    for e in st["log"]:
        prev = last.get(e["last_user"])
        if prev is not None and prev[1] == "capacity_429":
            assert e["t"] - prev[0] >= 0.2 - 0.01, "retried before Retry-After"
        last[e["last_user"]] = (e["t"], e["outcome"])
    # ... and AIMD shrank the window, so no hot loop of 429s (thousands without backoff) ...
    assert st["by_outcome"]["capacity_429"] < 2 * 40, st
    # ... and it recovered: near capacity (2 / 0.05 s = 40 req/s -> ~1 s), not stuck
    assert wall < 4.0


def test_5xx_and_timeouts_are_retried():
    with TestServer(latency=0.01, rate_500=0.3, rate_timeout=0.15, hang_s=5, seed=7) as srv:
        # 45% of attempts fail: with 8 tries a request is lost with p ~ 0.45^8 = 0.2%, so 60 requests lost one
        # in ~1 run of 10 (seen in CI); 16 tries make that ~2e-4 while still exercising many retries
        client = make_client(srv.url, None, concurrency=8, timeout_s=0.3, max_attempts=16, breaker_failures=50)
        res = run_batch(client, reqs(60))
        st = srv.stats()
    assert st["by_outcome"]["error_500"] > 0 and st["by_outcome"]["timeout"] > 0
    assert res.stats.ok == 60, res.stats.failures_by_kind
    assert res.stats.retries == st["total"] - 60 > 0


def test_exhausted_retries_become_recorded_failures_with_kinds():
    with TestServer(rate_500=1.0) as srv:
        client = make_client(srv.url, None, concurrency=4, max_attempts=3, breaker_failures=1000)
        res = run_batch(client, reqs(10))
        assert srv.stats()["total"] == 30  # 3 tries each, no more
    assert res.stats.failed == 10 and res.stats.failures_by_kind == {"http_5xx": 10}
    f = res.results[3]
    assert not f.ok and f.item_id == "q-3" and f.attempts == 3 and f.status_code == 500
    assert "injected server error" in f.message


def test_4xx_is_not_retried():
    with TestServer() as srv:
        url = srv.url.replace("/v1", "/nope")  # 404 for every request
        res = run_batch(make_client(url, None, concurrency=2), reqs(3))
        assert srv.stats()["total"] == 0
    assert res.stats.failures_by_kind == {"http_4xx": 3}
    assert all(r.attempts == 1 and r.status_code == 404 for r in res.results)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dead_endpoint_trips_the_circuit_breaker_fast(backend):
    url = f"http://127.0.0.1:{free_port()}/v1"  # connection refused
    client = make_client(url, None, concurrency=8, http_backend=backend, backoff_base_s=0.2)
    t0 = time.perf_counter()
    with pytest.raises(EndpointUnavailableError) as exc:
        run_batch(client, reqs(200))
    assert time.perf_counter() - t0 < 5
    msg = str(exc.value)
    assert url in msg and "connection" in msg and "no success" in msg
    result = exc.value.result  # the batch is still fully accounted for
    assert len(result.results) == 200 and result.stats.failed == 200
    assert set(result.stats.failures_by_kind) <= {"connection", "circuit_open"}
    assert result.stats.failures_by_kind.get("circuit_open", 0) > 150  # most were never sent
    assert result.stats.http_attempts < 40


def test_hanging_endpoint_trips_the_breaker_instead_of_waiting_out_every_timeout():
    with TestServer(rate_timeout=1.0, hang_s=10) as srv:
        client = make_client(srv.url, None, concurrency=4, timeout_s=0.3, breaker_failures=6)
        t0 = time.perf_counter()
        with pytest.raises(EndpointUnavailableError, match="consecutive failures"):
            run_batch(client, reqs(100))
        wall = time.perf_counter() - t0
        sent = srv.stats()["total"]
    assert wall < 4 and sent < 20  # not 100 x 4 attempts x 0.3 s


def test_failures_do_not_raise_when_asked_not_to():
    url = f"http://127.0.0.1:{free_port()}/v1"
    res = run_batch(make_client(url, None, raise_on_circuit_open=False), reqs(20))
    assert res.stats.failed == 20 and len(res.failures) == 20


def test_offline_role_is_refused():
    client = LLMClient(LLMSettings.from_env({}), cache=False)
    with pytest.raises(ValueError, match="offline"):
        run_batch(client, reqs(1))
    with pytest.raises(ValueError, match="offline"):
        client.run(reqs(1))


def test_the_benchmarks_batch_path_answers_every_item_in_input_order():
    # LLMClient.run (bench/bench_llm.py, bench/bench_e2e.py): a session of its own, at most
    # max_live_tasks requests started at once, identical requests sent once
    base = reqs(5)
    dupes = [r.model_copy(update={"item_id": f"dup-{i}"}) for i, r in enumerate(base)]
    with TestServer() as srv:
        res = make_client(srv.url, None, concurrency=2, max_live_tasks=3).run(base + dupes)
        assert srv.stats()["total"] == 5
    assert [r.item_id for r in res.results] == [r.item_id for r in base + dupes]
    assert all(r.ok for r in res.results) and res.results[1].content == res.results[6].content
    assert res.stats.items == 10 and res.stats.unique_requests == 5 and res.stats.sent == 5


def test_sync_wrapper_works_inside_a_running_loop_and_tool_calls_parse():
    script = {"tooling": [{"content": None, "tool_calls": [{"name": "ls", "arguments": {"a": 1}}]}]}
    with TestServer(scripts=script) as srv:
        client = make_client(srv.url, None)
        req = LLMRequest(
            role="tooling",
            item_id="t",
            messages=[{"role": "user", "content": "go"}],
            tools=[{"type": "function", "function": {"name": "ls", "parameters": {}}}],
        )

        async def inside():
            return run_batch(client, [req])  # a Dagster asset may be called from async code

        res = asyncio.run(inside())
    r = res.results[0]
    assert isinstance(r, LLMResponse) and r.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in r.tool_calls] == [("ls", '{"a": 1}')]
    assert srv.stats()["by_role"] == {"tooling": 1}  # role header sent
