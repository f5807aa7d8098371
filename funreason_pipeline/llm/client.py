"""The LLM client: settings, options and the cache, and the sessions that send requests with them.

The pipeline opens one session for a whole run (`client.session()`, agents/flow_runner.py) and its
coroutines `await session.call(request)`; every call ends as an `LLMResponse` or an `LLMFailure`
with a kind, never silent. The rooms behind a session:
- settings.py   per-role settings (environment) and `ClientOptions` (retry, breaker, cache, hedging knobs)
- session.py    the shared session: dedup, cache look-ups and writes, the try loop, stats, dead endpoints
- endpoint.py   one endpoint's HTTP pool, AIMD limiter, circuit breaker and hedge budget
- transport.py  one HTTP copy through the openai client, and reading a chat completion body
- retry.py      what a failed try means: breaker and limiter told, backoff or give up
- hedging.py    the hedge delay (role p95) and racing copies of a slow try
- limiter.py    the AIMD limiter and the circuit breaker themselves; cache.py the `llm_calls` table

`LLMClient.run` / `arun` send a whole batch on a session of its own: the benchmarks' entry
(bench/bench_llm.py, bench/bench_e2e.py); the pipeline does not use it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from funreason_pipeline.llm.cache import LLMCache
from funreason_pipeline.llm.models import BatchResult, LLMFailure, LLMRequest, LLMResponse
from funreason_pipeline.llm.session import EndpointUnavailableError, LLMSession, job_hash
from funreason_pipeline.llm.settings import ClientOptions, LLMSettings
from funreason_pipeline.llm.transport import ROLE_HEADER

# re-exported: callers import these from here
__all__ = ["ROLE_HEADER", "ClientOptions", "EndpointUnavailableError", "LLMClient", "LLMSession", "run_sync"]

log = logging.getLogger(__name__)

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion on a fresh event loop, from sync code (a Dagster asset).

    In a thread that already runs a loop, it runs in a worker thread. The result travels in a box,
    not as the main task's result: on Python 3.11 `asyncio.run` ends by formatting the repr of its
    main task (signal handler restore), which would repr a whole batch (~0.1 ms per item).
    """
    box: list[T] = []

    async def main() -> None:
        box.append(await coro)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(main())
    else:
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm-batch") as pool:
            pool.submit(asyncio.run, main()).result()
    return box[0]


class LLMClient:
    """Settings, options and the cache; `session()` opens a session on them. One instance can serve
    many sessions, one after another or at once."""

    def __init__(
        self,
        settings: LLMSettings | None = None,
        *,
        db_path: str | Path | None = None,
        cache: bool = True,
        options: ClientOptions | None = None,
    ) -> None:
        self.settings = settings or LLMSettings.from_env()
        self.options = options or ClientOptions()
        self.cache = LLMCache(db_path) if cache else None

    def request_hash(self, req: LLMRequest) -> str:
        """The cache key of `req` under this client's settings."""
        return job_hash(self.settings.role(req.role), req)

    def session(self) -> LLMSession:
        """An open session: `async with client.session() as s: await s.call(req)` from many coroutines."""
        return LLMSession(self)

    # --- a batch on its own session (benchmarks) ---------------------------------------------------
    def run(self, requests: Sequence[LLMRequest]) -> BatchResult:
        """Blocking `arun` on its own event loop (a worker thread if this thread already runs one)."""
        return run_sync(self.arun(requests))

    async def arun(self, requests: Sequence[LLMRequest]) -> BatchResult:
        """Every request at once on a session of its own; results in input order. Raises
        `EndpointUnavailableError` (with the batch) if a breaker refused requests."""
        t_start = time.perf_counter()
        for req in requests:  # an offline role is a caller's mistake: fail before sending anything
            s = self.settings.role(req.role)
            if s.is_offline:
                raise ValueError(
                    f"role {s.role.value} is offline (no FUNREASON_LLM_BASE_URL[_{s.role.name}]); "
                    "use the offline backend for it"
                )
        results: list[LLMResponse | LLMFailure | None] = [None] * len(requests)
        session = LLMSession(self)
        gate = asyncio.Semaphore(self.options.max_live_tasks)  # bounds the tasks of a huge batch

        async def one(i: int, req: LLMRequest) -> None:
            try:
                results[i] = await session.call(req)
            finally:
                gate.release()

        try:
            tasks = []
            for i, req in enumerate(requests):
                await gate.acquire()
                tasks.append(asyncio.ensure_future(one(i, req)))
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            await session.aclose()
        stats = session.snapshot()
        stats.wall_s = time.perf_counter() - t_start
        assert all(r is not None for r in results), "every request ends as a response or a failure"
        batch = BatchResult(results=results, stats=stats)  # type: ignore[arg-type]
        log.info(
            "llm batch: %d items, %d cache hits, %d sent, %d ok, %d failed %s, %.1fs",
            stats.items,
            stats.cache_hits,
            stats.sent,
            stats.ok,
            stats.failed,
            stats.failures_by_kind,
            stats.wall_s,
        )
        session.raise_if_dead(batch)
        return batch
