"""Tail latency (targets.md P8): hedge copies hold no slot of their own, rolling hedges, the first copy
kept for long generations, the retry budget. Real HTTP to the test server; the server scripts which
copies of a request stall (`hang_copies`), fail (`error_copies`) or answer slowly (`delay`), and logs
each copy's arrival and end ("done" = answered, "gone" = the client hung up)."""

import asyncio

from llm_helpers import options, run_batch

from funreason_pipeline.llm import LLMClient, LLMRequest, LLMResponse, LLMSettings
from testing.llm_server import ServerConfig, TestServer

WARM = 5  # answers before the p95 (and so the hedge delay) is known


def _responder(hang: int = 0, error: int = 0, delay: float | None = None):
    def answer(role, body):
        last = body["messages"][-1]["content"]
        ans = {"content": f"answer to {last}"}
        if last.startswith("odd"):
            if hang:
                ans["hang_copies"] = hang
            if error:
                ans["error_copies"] = error
            if delay is not None:
                ans["delay"] = delay
        return ans

    return answer


def _req(text: str) -> LLMRequest:
    return LLMRequest(role="querying", item_id=text, messages=[{"role": "user", "content": text}])


def _run(srv, odd: int, concurrency: int, hedge_max: int = 2, hedge_factor: float = 3.0, **opts):
    """WARM plain requests (the hedge delay becomes max(0.3 s, factor x p95)), then `odd` scripted ones
    at once, on one session: (results of the odd ones, stats, the endpoint after the session)."""
    settings = LLMSettings.for_endpoint(srv.url, concurrency=concurrency, timeout_s=60.0, hedge_min_s=0.3,
                                        hedge_max=hedge_max, hedge_factor=hedge_factor)
    client = LLMClient(settings, cache=False, options=options(hedge_min_samples=WARM, **opts))

    async def go():
        async with client.session() as s:
            await asyncio.gather(*(s.call(_req(f"warm {i}")) for i in range(WARM)))
            out = await asyncio.gather(*(s.call(_req(f"odd {i}")) for i in range(odd)))
        return out, s.snapshot(), next(iter(s.endpoints.values()))

    return asyncio.run(go())


def _copies(log, text):
    return [e for e in log if e["last_user"] == text]


def test_hedge_copies_hold_no_slot_of_their_own_within_the_budget():
    # every odd request's first copy stalls; C = 2, budget 0.5 x C = 1 hedge copy on the wire at once
    with TestServer(ServerConfig(latency=0.05, responder=_responder(hang=1), hang_s=600, record=True)) as srv:
        res, st, ep = _run(srv, 6, concurrency=2, max_attempts=1)
        log = srv.stats()["log"]
    assert all(isinstance(r, LLMResponse) for r in res)
    assert st.hedges == 6 and st.http_attempts == WARM + 6  # one attempt each, however many copies
    # two stalled first copies hold the 2 slots, and a hedge still went out: copies on the wire > C
    # (when a hedge needed a slot of its own, it waited for one the stalled copies held) ...
    assert st.max_in_flight == 3
    # ... but no more than the budget allows, and every slot and budget unit came back
    assert ep.hedges.size == 1 and ep.hedges.in_use == 0 and ep.limiter.in_flight == 0
    pairs = [_copies(log, f"odd {i}") for i in range(6)]
    for first, hedge in pairs:  # each request: the stalled first copy, cancelled once its hedge answered
        assert (first["outcome"], first["end"]) == ("stalled", "gone")
        assert (hedge["outcome"], hedge["end"]) == ("ok", "done")
    # the server saw it too: the first hedge arrived while both slot holders still stalled
    holders = sorted(pairs, key=lambda p: p[0]["t"])[:2]
    assert min(h["t"] for _, h in pairs) < min(f["end_t"] for f, _ in holders)


def test_no_hedge_budget_no_hedges():
    with TestServer(ServerConfig(latency=0.05, responder=_responder(hang=1), hang_s=600, record=True)) as srv:
        settings = LLMSettings.for_endpoint(srv.url, concurrency=2, timeout_s=1.0, hedge_min_s=0.3)
        client = LLMClient(settings, cache=False, options=options(hedge_min_samples=WARM, max_attempts=1,
                                                                 hedge_budget=0.0, breaker_failures=100))
        res = run_batch(client, [_req(f"warm {i}") for i in range(WARM)] + [_req("odd 0")])
    assert res.stats.hedges == 0 and res.stats.failures_by_kind == {"timeout": 1}


def test_rolling_hedges_answer_a_request_whose_first_copies_all_stall():
    # the first copy and both hedges stall: without rolling, the request waits out its 60 s timeout
    with TestServer(ServerConfig(latency=0.05, responder=_responder(hang=3), hang_s=600, record=True)) as srv:
        res, st, ep = _run(srv, 1, concurrency=4, hedge_max=2, max_attempts=1)
        log = srv.stats()["log"]
    assert isinstance(res[0], LLMResponse) and res[0].content == "answer to odd 0"
    assert st.http_attempts == WARM + 1 and st.hedges == 3 and st.hedges_replaced == 1
    c1, c2, c3, c4 = _copies(log, "odd 0")
    assert [c["outcome"] for c in (c1, c2, c3, c4)] == ["stalled", "stalled", "stalled", "ok"]
    assert c4["end"] == "done"  # the fourth copy won
    assert c2["end"] == "gone" and c2["end_t"] < c4["t"]  # the oldest hedge made way for it
    assert c1["end"] == "gone" and c1["end_t"] > c4["t"]  # the first copy was kept until the answer
    assert ep.hedges.in_use == 0 and ep.limiter.in_flight == 0


def test_a_slow_healthy_generation_outlives_rolling_hedges():
    # every copy takes 3 s (about 10 hedge delays): hedges go out and make way for each other, and the
    # first copy, never cancelled by rolling, answers
    with TestServer(ServerConfig(latency=0.05, responder=_responder(delay=3.0), record=True)) as srv:
        res, st, _ep = _run(srv, 1, concurrency=4, hedge_max=2, hedge_factor=1.0, max_attempts=1)
        log = srv.stats()["log"]
    assert isinstance(res[0], LLMResponse)
    copies = _copies(log, "odd 0")
    assert copies[0]["end"] == "done"
    assert all(c["end"] == "gone" for c in copies[1:])
    assert st.hedges == len(copies) - 1 >= 3 and st.hedges_replaced >= 1


def test_the_default_retry_budget_outlasts_a_run_of_transient_failures():
    # 7 failures in a row happen to 1 request in ~4,000 at R1's ~30% failing attempts; 4 tries lost ~1%
    with TestServer(ServerConfig(responder=_responder(error=7), record=True)) as srv:
        res, st, _ep = _run(srv, 2, concurrency=4)
        with_4 = run_batch(LLMClient(LLMSettings.for_endpoint(srv.url), cache=False,
                                     options=options(max_attempts=4)), [_req("odd 9")])
    assert all(isinstance(r, LLMResponse) for r in res)
    assert st.http_attempts == WARM + 2 * 8 and st.retries == 2 * 7
    assert with_4.stats.failures_by_kind == {"http_5xx": 1} and with_4.results[0].attempts == 4


def test_a_retry_keeps_its_place_in_the_queue():
    # C = 1: "odd 0" fails once and is retried while 6 later requests wait for the one slot; it
    # goes next, not behind them (a FIFO queue sent it last: chains with failures made the tail)
    with TestServer(ServerConfig(latency=0.05, responder=_responder(error=1), record=True)) as srv:
        client = LLMClient(LLMSettings.for_endpoint(srv.url, concurrency=1), cache=False, options=options())
        res = run_batch(client, [_req("odd 0")] + [_req(f"later {i}") for i in range(6)])
        log = srv.stats()["log"]
    assert res.stats.ok == 7 and res.stats.retries == 1
    assert [e["last_user"] for e in log][:3] == ["odd 0", "later 0", "odd 0"]
    assert [e["outcome"] for e in log][:3] == ["error_500", "ok", "ok"]
