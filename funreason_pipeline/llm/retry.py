"""What a failed try means: the breaker and the limiter hear of it, and the request gets a delay
before its next try or gives up.

5xx, timeouts, connection errors and broken bodies get jittered exponential backoff, at most
`max_attempts` tries; 429/503 wait their Retry-After (else backoff) and get `max_rate_limit_retries`
more tries; 4xx and auth errors are not retried. Exhausted quota and auth errors also open the breaker
at once (limiter.py: the breaker and the AIMD limiter themselves).
"""

from __future__ import annotations

import contextlib
import random
import time
from email.utils import parsedate_to_datetime

import httpx2

from funreason_pipeline.llm.limiter import AdaptiveLimiter, CircuitBreaker
from funreason_pipeline.llm.models import FailureKind
from funreason_pipeline.llm.settings import ClientOptions

__all__ = ["RetryBudget", "backoff", "retry_after"]


def backoff(opts: ClientOptions, n: int) -> float:
    """Seconds before the n-th retry: doubling from `backoff_base_s` up to `backoff_max_s`, jittered
    down to half so the retries of one wave do not come back together."""
    return min(opts.backoff_max_s, opts.backoff_base_s * (2 ** (n - 1))) * (0.5 + 0.5 * random.random())


def retry_after(headers: httpx2.Headers | None, cap: float) -> float | None:
    """The server's Retry-After (`retry-after-ms`, seconds or an HTTP date), at most `cap`."""
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    if ms:
        with contextlib.suppress(ValueError):
            return min(cap, max(0.0, float(ms) / 1000))
    ra = headers.get("retry-after")
    if ra:
        try:
            return min(cap, max(0.0, float(ra)))
        except ValueError:
            with contextlib.suppress(TypeError, ValueError):
                when = parsedate_to_datetime(ra)
                return min(cap, max(0.0, when.timestamp() - time.time()))
    return None


class RetryBudget:
    """One request's tries so far. Rate limits and other failures are counted apart: a 429 says the
    endpoint is busy, not that this request is broken."""

    __slots__ = ("opts", "others", "rate_limited")

    def __init__(self, opts: ClientOptions) -> None:
        self.opts = opts
        self.rate_limited = 0
        self.others = 0

    def after_failure(
        self,
        kind: FailureKind,
        message: str,
        headers: httpx2.Headers | None,
        epoch: int,
        rtt: float,
        limiter: AdaptiveLimiter,
        breaker: CircuitBreaker,
    ) -> float | None:
        """Tell breaker and limiter about a failed try (`message` already scrubbed of the key; `epoch`
        from the limiter slot the try held; `rtt` the endpoint's round trip). Returns the delay before
        the next try, or None: this failure is final."""
        opts = self.opts
        if kind is FailureKind.RATE_LIMITED:
            breaker.on_alive()
            ra = retry_after(headers, opts.max_retry_after_s)
            # no window growth for Retry-After (or one round trip): do not probe again at once
            limiter.on_overload(epoch, ra if ra is not None else rtt)
            self.rate_limited += 1
            if self.rate_limited > opts.max_rate_limit_retries:
                return None
            if ra is None:
                return backoff(opts, min(self.rate_limited, 6))
            return ra * (1.0 + 0.1 * random.random())  # jitter: the waiting requests do not return in one wave
        if kind in (FailureKind.QUOTA, FailureKind.AUTH):
            breaker.on_failure(kind.value, message, fatal=True)
            return None
        if kind is FailureKind.HTTP_4XX:
            breaker.on_alive()
            return None
        # 5xx, timeout, connection, bad body, client error
        breaker.on_failure(kind.value, message)
        self.others += 1
        if self.others >= opts.max_attempts:
            return None
        delay = backoff(opts, self.others)
        ra = retry_after(headers, opts.max_retry_after_s)
        return delay if ra is None else max(delay, ra)
