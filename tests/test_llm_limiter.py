"""AIMD limiter and circuit breaker, unit level (no HTTP)."""

import asyncio
import time

from funreason_pipeline.llm.limiter import AdaptiveLimiter, CircuitBreaker


def test_limiter_bounds_in_flight_and_adapts():
    async def main():
        lim = AdaptiveLimiter(8, decrease=0.5)
        peak = 0

        async def one():
            nonlocal peak
            await lim.acquire()
            peak = max(peak, lim.in_flight)
            await asyncio.sleep(0.001)
            lim.release()

        await asyncio.gather(*(one() for _ in range(50)))
        assert peak == 8 and lim.in_flight == 0
        # one wave of 429s from the same epoch shrinks the window once, not once per answer:
        # to `decrease` x the requests that were in flight (6 others + this one)
        epochs = [await lim.acquire() for _ in range(6)]
        e = epochs[0]
        for _ in range(6):
            lim.on_overload(e)
        assert lim.limit == 3.5 and lim.decreases == 1
        for _ in range(6):
            lim.release()
        peak = 0
        await asyncio.gather(*(one() for _ in range(20)))
        assert peak == 3
        assert lim.in_flight == 0
        # successes grow it back additively, never above the ceiling
        for _ in range(500):
            lim.on_success()
        assert lim.limit == 8.0

    asyncio.run(main())


def test_limiter_never_goes_below_one_and_holds_after_retry_after():
    lim = AdaptiveLimiter(4, decrease=0.5)
    for _ in range(20):
        lim.on_overload(lim.epoch)
    assert lim.limit == 1.0 and lim._cap == 1
    lim.on_overload(lim.epoch, hold_s=0.2)
    for _ in range(10):
        lim.on_success()
    assert lim.limit == 1.0  # held: the server asked for a pause
    time.sleep(0.25)
    lim.on_success()
    assert lim.limit == 2.0


def test_breaker_opens_on_consecutive_failures_and_probes_after_cooldown():
    b = CircuitBreaker(failure_threshold=3, connect_threshold=2, cooldown_s=0.1)
    b.on_failure("http_5xx", "x")
    b.on_success()  # a success resets the count
    b.on_failure("http_5xx", "x")
    b.on_failure("timeout", "x")
    assert b.allow() == 1
    b.on_failure("http_5xx", "boom")
    assert b.is_open and b.allow() == 0 and "3 consecutive failures" in b.reason and "boom" in b.reason
    time.sleep(0.12)
    assert b.allow() == 2 and b.allow() == 0  # exactly one probe
    b.on_failure("connection", "refused")  # the probe failed: open for another cooldown
    assert b.allow() == 0
    time.sleep(0.12)
    assert b.allow() == 2
    b.on_alive()  # e.g. a 429: the endpoint is back
    assert not b.is_open and b.allow() == 1


def test_breaker_trips_fast_on_refused_connections_and_fatal_errors():
    b = CircuitBreaker(failure_threshold=100, connect_threshold=2)
    b.on_failure("connection", "refused")
    b.on_failure("connection", "refused")
    assert b.is_open and "no success so far" in b.reason
    b2 = CircuitBreaker()
    b2.on_failure("auth", "HTTP 401", fatal=True)
    assert b2.is_open
