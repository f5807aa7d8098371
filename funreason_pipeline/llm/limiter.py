"""Adaptive concurrency (AIMD) and a circuit breaker, one of each per endpoint.

AdaptiveLimiter: a semaphore whose size moves. It starts at the configured concurrency (the ceiling).
A 429/503 counts as overload only when 429/503s are a substantial share of the recent answers: a
moving share over about the last 32 answers (429/503 vs. success, weight `share_weight` = 1/32) of
at least `overload_share` (0.3). Sporadic 429s that our concurrency does not cause (a fault mix's
random 10%, a real endpoint's occasional one) stay below it and change nothing: no decrease, no hold.
Without this gate the window collapsed under random 429s: a decrease per round trip and growth held
by every Retry-After (R1 mix at C = 32, L = 0.2 s: window ~5, 12 req/s; with it 32, 48 req/s;
docs/benchmarks.md). Above a server's capacity the extra requests come back as 429s, so the share
rises past 0.3 within a few answers; a local server answers 429 at once, and P3 measured the same
sustained rate with ~2.5x as many 429 answers (the ~10 before each decrease). Where 429s take as
long as a success, the share above capacity is only (window - capacity) / window, so the window
settles higher, ~1.2-1.4 x capacity in simulation: the server is still kept full, and the extra
requests wait their Retry-After.
An overload shrinks the window multiplicatively to `decrease` x the requests that were in flight, at
most once per "epoch": a 429 only counts if its request was sent after the last decrease, so a burst of
429s from one wave shrinks the window once, not once per answer (no collapse to 1). Decreases that
follow each other with no success in between (the client started far above capacity) shrink harder
each time (factor squared, down to 0.5), so it converges in a few steps. Each success grows it
additively by `increase / limit` (about +increase per window of completions) back to the ceiling,
except during a hold after an overload 429: the server's Retry-After (or one round trip), so a
small-capacity server is not probed again at once. It never goes below `min_limit`: no stall.

CircuitBreaker: declares an endpoint dead when it has had no success for `failure_threshold`
(default 25) endpoint failures in a row (connection errors, timeouts, 5xx, broken bodies). A 429 or
another 4xx is neither a failure nor a success: it does not count, and it does not end a run of
failures (only a run of connection failures); any complete response ends the run. Fast paths:
`connect_threshold` (3) connection failures in a row (refused / unreachable) open it, and so does one
authentication error or exhausted quota. While open, requests fail at once with kind `circuit_open`;
after `cooldown_s` one probe is let through (half-open).

Why 25 in a row. A healthy but flaky endpoint fails each attempt independently (measured under the
R1 fault mix: runs of failures as long as in a shuffled sequence), so a run of n failures starts at a
given attempt with probability about p^n for a failure share p. The old n = 10 opened on the R1 mix
(p = 1/3 of the attempts that count) about once per 90,000 attempts, and on the fault suite's
replayed server sequence (seed 7: 10 in a row at draws 125-135) in some runs. n = 25: about 1e-12
per attempt at p = 1/3, 3e-8 at p = 1/2. A dead endpoint fails every attempt, so it opens at its
n-th failure. Measured against the test server with the default backoff: all 500s, open within
0.8 s at concurrency 1, 8 or 32, as with 10; all hanging (1 s timeout), a batch ends after 2.6 s
instead of 1.7 s at concurrency 32 (the default), 4.7 s instead of 2.6 s at 8, 26 s instead of 11 s
at 1: about 25 / concurrency timeouts instead of 10 / concurrency. Among the rules that open after
n failures on a dead endpoint, "n in a row" opens least often on a live one (a "90% of the last 25"
window: 1e-5 per attempt at p = 1/2), so there is no failure-rate window.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

__all__ = ["AdaptiveLimiter", "CircuitBreaker"]


class AdaptiveLimiter:
    __slots__ = (
        "_cap",
        "_clock",
        "_hold_until",
        "_seq",
        "_share",
        "_streak",
        "_waiters",
        "decrease",
        "decreases",
        "epoch",
        "in_flight",
        "increase",
        "limit",
        "max_limit",
        "min_limit",
        "overload_share",
        "share_weight",
    )

    def __init__(
        self,
        max_limit: int,
        min_limit: int = 1,
        decrease: float = 0.95,
        increase: float = 1.0,
        overload_share: float = 0.3,
        share_weight: float = 1 / 32,
        clock: Callable[[], float] = time.monotonic,  # tests pass a simulated one
    ) -> None:
        self._clock = clock
        self.overload_share = overload_share
        self.share_weight = share_weight
        self._share = 0.0  # moving share of 429/503 among the answers (429/503 or success)
        self.max_limit = max_limit
        self.min_limit = max(1, min(min_limit, max_limit))
        self.limit = float(max_limit)
        self._cap = max_limit  # int(limit), cached
        self.decrease = decrease
        self.increase = increase
        self.in_flight = 0
        self.epoch = 0
        self.decreases = 0
        # (queued since, tie-break, future): the oldest request first; cancelled ones are skipped
        self._waiters: list[tuple[float, int, asyncio.Future[int]]] = []
        self._seq = itertools.count()
        self._hold_until = 0.0
        self._streak = 0  # decreases since the last success: a quick series means "far above capacity"

    async def acquire(self, since: float | None = None) -> int:
        """Wait for a slot; return the epoch to pass to `on_overload` if this request gets a 429.
        `since`: when the request first queued (`clock` time; default now). Waiters get slots oldest
        first, so a retry goes ahead of requests that came after its first try: behind hundreds of
        waiting requests a retry waited seconds more each time, and the trajectories that had
        failures made the run's tail."""
        if self.in_flight < self._cap and not self._waiters:
            self.in_flight += 1
            return self.epoch
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (self._clock() if since is None else since, next(self._seq), fut))
        if self.in_flight < self._cap:  # only cancelled waiters were queued
            self._wake()
        try:
            return await fut  # release() counted us in, and gave the epoch of that moment
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()
            raise  # a cancelled waiter stays in the heap until _wake skips it

    def release(self) -> None:
        self.in_flight -= 1
        if self._waiters:
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        while waiters and self.in_flight < self._cap:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                self.in_flight += 1
                fut.set_result(self.epoch)

    def on_success(self) -> None:
        self._streak = 0
        self._share -= self._share * self.share_weight
        if self.limit < self.max_limit:
            if self._hold_until and self._clock() < self._hold_until:
                return
            self._hold_until = 0.0
            self.limit = min(float(self.max_limit), self.limit + self.increase / self.limit)
            cap = int(self.limit)
            if cap != self._cap:
                self._cap = cap
                if self._waiters:
                    self._wake()

    def on_overload(self, epoch: int, hold_s: float = 0.0) -> None:
        """A 429/503 for a request sent at `epoch`; `hold_s`: no growth for that long (Retry-After)."""
        self._share += (1.0 - self._share) * self.share_weight
        if self._share < self.overload_share:
            return  # a sporadic 429, not one of many: not caused by our concurrency
        if hold_s > 0:
            self._hold_until = max(self._hold_until, self._clock() + hold_s)
        if epoch != self.epoch:
            return  # sent before the last decrease: already accounted for
        self.epoch += 1
        self.decreases += 1
        # 0.95, then 0.90, 0.81, 0.66, 0.5 while no success comes back in between
        factor = max(0.5, self.decrease ** (2 ** min(self._streak, 4)))
        self._streak += 1
        basis = min(self.limit, self.in_flight + 1.0)
        self.limit = max(float(self.min_limit), basis * factor)
        self._cap = max(self.min_limit, int(self.limit))


class CircuitBreaker:
    __slots__ = (
        "_probing",
        "connect_threshold",
        "consecutive",
        "consecutive_connect",
        "cooldown_s",
        "failure_threshold",
        "last_error",
        "opened_at",
        "reason",
        "successes",
    )

    def __init__(self, failure_threshold: int = 25, connect_threshold: int = 3, cooldown_s: float = 30.0):
        self.failure_threshold = failure_threshold
        self.connect_threshold = connect_threshold
        self.cooldown_s = cooldown_s
        self.consecutive = 0
        self.consecutive_connect = 0
        self.successes = 0
        self.opened_at: float | None = None
        self.reason = ""
        self.last_error = ""
        self._probing = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> int:
        """May a request be sent now? 0: no (open); 1: yes (closed); 2: yes, as the one half-open probe."""
        if self.opened_at is None:
            return 1
        if not self._probing and time.monotonic() - self.opened_at >= self.cooldown_s:
            self._probing = True
            return 2
        return 0

    def on_success(self) -> None:
        self.consecutive = 0
        self.consecutive_connect = 0
        self.successes += 1
        if self.opened_at is not None:
            self.opened_at = None
            self._probing = False
            self.reason = ""

    def on_alive(self) -> None:
        """The endpoint answered, though not with a result (429, 4xx): end a probe, count nothing else."""
        if self._probing:
            self.on_success()
        else:
            self.consecutive_connect = 0

    def on_failure(self, kind: str, message: str, fatal: bool = False) -> None:
        self.consecutive += 1
        self.consecutive_connect = self.consecutive_connect + 1 if kind == "connection" else 0
        self.last_error = f"{kind}: {message}"
        if self.opened_at is not None:
            if self._probing:  # the probe failed: stay open for another cooldown
                self.opened_at = time.monotonic()
                self._probing = False
            return
        if fatal:
            why = "a fatal error"
        elif self.consecutive_connect >= self.connect_threshold:
            why = f"{self.consecutive_connect} consecutive connection failures"
        elif self.consecutive >= self.failure_threshold:
            why = f"{self.consecutive} consecutive failures"
        else:
            return
        history = "no success so far" if self.successes == 0 else f"{self.successes} successes before"
        self.opened_at = time.monotonic()
        self.reason = f"{why} ({history}); last error {self.last_error}"
