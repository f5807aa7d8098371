"""One endpoint (base URL + key) as a session sees it: its HTTP pool, AIMD limiter, circuit breaker and
hedge budget, shared by every role that uses it, and what to say about it when it is dead."""

from __future__ import annotations

import math

from funreason_pipeline.llm.hedging import HedgeBudget
from funreason_pipeline.llm.limiter import AdaptiveLimiter, CircuitBreaker
from funreason_pipeline.llm.settings import ClientOptions
from funreason_pipeline.llm.transport import HttpPool

__all__ = ["Endpoint"]


class Endpoint:
    __slots__ = (
        "breaker",
        "hedges",
        "key",
        "limiter",
        "models",
        "pool",
        "refused",
        "refused_reason",
        "roles",
        "rtt",
        "url",
    )

    def __init__(self, url: str, key: str | None, concurrency: int, opts: ClientOptions) -> None:
        self.url = url
        self.key = key
        self.hedges = HedgeBudget(math.ceil(opts.hedge_budget * concurrency))
        # hedge copies hold no limiter slot, but each needs a connection: the pool has room for them
        # (else a hedge waits for a connection that its own stalled copy holds)
        self.pool = HttpPool(url, key, concurrency, concurrency + self.hedges.size, opts)
        self.rtt = 0.0  # moving average of successful request latency
        self.limiter = AdaptiveLimiter(concurrency, decrease=opts.aimd_decrease, increase=opts.aimd_increase)
        self.breaker = CircuitBreaker(opts.breaker_failures, opts.breaker_connect_failures, opts.breaker_cooldown_s)
        self.roles: set[str] = set()
        self.models: set[str] = set()
        self.refused = 0  # requests failed with circuit_open (the breaker may have closed again since)
        self.refused_reason = ""

    def answered(self, latency: float) -> None:
        """A complete response: the endpoint is alive and may take more."""
        self.breaker.on_success()
        self.limiter.on_success()
        self.rtt = latency if self.rtt == 0.0 else 0.9 * self.rtt + 0.1 * latency

    def refuse(self) -> None:
        """A request not sent because the breaker is open; the first refusal's reason is kept, since
        the breaker may close again before anyone reads it."""
        if not self.refused:
            self.refused_reason = self.breaker.reason
        self.refused += 1

    def scrub(self, text: str) -> str:
        if self.key and self.key in text:
            text = text.replace(self.key, "***")
        return text

    def describe(self) -> str:
        return f"{self.url} (model {', '.join(sorted(self.models))}; roles {', '.join(sorted(self.roles))})"

    def dead_message(self) -> str | None:
        """Why this endpoint counts as unavailable, or None if it does not."""
        if self.breaker.is_open:
            return f"LLM endpoint {self.describe()} is unavailable: {self.scrub(self.breaker.reason)}"
        if self.refused:
            return (f"LLM endpoint {self.describe()} was declared unavailable ({self.scrub(self.refused_reason)}) "
                    f"and {self.refused} requests were refused, though it answered again later")
        return None

    async def aclose(self) -> None:
        await self.pool.aclose()
