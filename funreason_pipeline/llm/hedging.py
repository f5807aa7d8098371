"""Tail latency: a try still unanswered after the hedge delay gets another copy; the first to finish wins.

The hedge delay is `hedge_factor` x the recent p95 latency of the role on its endpoint (at least
`hedge_min_s`). Why p95 and not the mean: an answer slower than nearly all of its peers is most likely
stalled (a hung connection, an overloaded replica), while long generations of a role are part of its
own distribution and so move its p95 up with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable

from funreason_pipeline.llm.settings import RoleSettings
from funreason_pipeline.llm.transport import Reply

__all__ = ["HedgeBudget", "LatencyTracker", "first_reply", "hedge_delay"]


class LatencyTracker:
    """Recent successful latencies of one (endpoint, role)."""

    __slots__ = ("_p95", "_since", "samples")

    def __init__(self, window: int = 256) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self._p95: float | None = None
        self._since = 0  # samples added since the p95 was computed

    def add(self, latency: float) -> None:
        self.samples.append(latency)
        self._since += 1
        if self._p95 is None or self._since >= 32:
            self._p95 = None

    def p95(self, min_samples: int) -> float | None:
        if len(self.samples) < min_samples:
            return None
        if self._p95 is None:
            ordered = sorted(self.samples)
            self._p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
            self._since = 0
        return self._p95


def hedge_delay(s: RoleSettings, tracker: LatencyTracker | None, min_samples: int) -> float | None:
    """Seconds after which a copy still unanswered gets a hedge, or None (off / not known yet / not
    shorter than the role's timeout, which ends the copy anyway)."""
    if s.hedge_factor <= 0:
        return None
    p95 = tracker.p95(min_samples) if tracker is not None else None
    if p95 is None:
        return None
    delay = max(s.hedge_min_s, s.hedge_factor * p95)
    return delay if delay < s.timeout_s else None


class HedgeBudget:
    """An endpoint's hedge copies on the wire at once (`in_use`), at most `size`: the copies hold no
    limiter slot, so this bounds the extra load if a server stalls everything."""

    __slots__ = ("in_use", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.in_use = 0


async def first_reply(
    send: Callable[[list[float]], Awaitable[Reply]],
    delay: Callable[[], float | None],
    s: RoleSettings,
    budget: HedgeBudget,
    poll_s: float,
    counters: Counter[str],
) -> Reply:
    """One try: the reply of the first copy to finish. `send(sent)` starts a copy and appends its send
    time to `sent`; `delay()` is the current hedge delay (None while not known). The caller holds the
    try's limiter slot for all its copies.

    When the newest copy has been on the wire longer than the hedge delay, another copy goes out; the
    first copy to finish, with an answer or an error, ends the try and the others are cancelled (an
    error is retried like any other, after its backoff). A stalled request thus costs about one hedge
    delay instead of the role timeout, and a slow but healthy generation is not thrown away for being
    slow. The clock starts when a copy is sent, not while the try waits for its slot.
    - One slot per try, however many copies: a stalled copy does not shrink the requests in flight
      (each copy used to hold a slot, so a stalled one kept its slot while its hedge waited for
      another). Copies beyond the first come from the endpoint's `budget` (else the hedge waits), so
      hedging can neither multiply the load on a server that stalls everything nor go past C by more.
    - Rolling: with `hedge_max` hedges out and none answered, each further hedge delay cancels the
      oldest hedge and sends a fresh copy. A request whose copies all stall keeps trying at the hedge
      delay's pace instead of waiting out the role timeout (E3: 120 s / 300 s tails). The first copy
      is never cancelled this way: a genuinely long generation still finishes, and its HTTP timeout
      (the role's) bounds the try."""
    hedging = s.hedge_factor > 0 and s.hedge_max > 0 and budget.size > 0
    sends: list[list[float]] = [[]]
    if not hedging:  # no hedge can ever be due: the one copy, awaited here (no task, no timer)
        return await send(sends[0])
    loop = asyncio.get_running_loop()
    copies = [loop.create_task(send(sends[0]))]
    dropped: list[asyncio.Future] = []  # hedges cancelled to make way for newer ones
    extra = 0  # this try's copies beyond the first (counted in budget.in_use)
    try:
        await asyncio.sleep(0)  # let the copy start, so its send time is known (no poll timer for it)
        while True:
            d = delay()
            newest = sends[-1][0] if sends[-1] else None
            if d is None or newest is None:  # not known yet / not sent yet: look again soon
                timeout = poll_s
            else:
                timeout = max(0.0, newest + d - time.perf_counter())
                if timeout == 0.0 and len(copies) <= s.hedge_max and budget.in_use >= budget.size:
                    timeout = poll_s  # budget spent: look again soon
            done = await _first_done(loop, copies, timeout)
            if done:  # an answer (a success if several came at once), or the try's failure
                return min(done, key=lambda f: f.result().kind is not None).result()
            if d is None or newest is None or time.perf_counter() < newest + d:
                continue
            if len(copies) > s.hedge_max:  # all hedges out: the oldest makes way (not the first copy)
                old = copies.pop(1)
                sends.pop(1)
                old.cancel()
                dropped.append(old)
                counters["hedges_replaced"] += 1
            elif budget.in_use < budget.size:
                extra += 1
                budget.in_use += 1
            else:
                continue
            sends.append([])
            copies.append(loop.create_task(send(sends[-1])))
            counters["hedges"] += 1
    finally:
        budget.in_use -= extra
        for c in copies:
            c.cancel()  # no-op for the finished ones
        for c in copies + dropped:
            if not c.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await c
            elif not c.cancelled():
                c.exception()  # retrieved: no "never retrieved" warning


async def _first_done(loop: asyncio.AbstractEventLoop, copies: list[asyncio.Task[Reply]],
                      timeout: float) -> list[asyncio.Task[Reply]]:
    """The copies that are done, waiting until one is or `timeout` passes: `asyncio.wait(...,
    FIRST_COMPLETED)` without its sets, checks and per-call generality (one future, one timer)."""
    done = [c for c in copies if c.done()]
    if done or timeout <= 0.0:
        return done
    waiter = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    handle = loop.call_later(timeout, wake)
    for c in copies:
        c.add_done_callback(wake)
    try:
        await waiter
    finally:
        handle.cancel()
        for c in copies:
            c.remove_done_callback(wake)
    return [c for c in copies if c.done()]
