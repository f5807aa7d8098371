"""The shared session: any number of coroutines `await session.call(request)`; it answers from the
cache, sends the rest through their endpoint (limiter slot, hedged copies, retries) and keeps the
books (stats, latencies, cache writes, dead endpoints)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Self

from funreason_pipeline.llm.cache import CacheRow, CacheWriter, request_hash
from funreason_pipeline.llm.endpoint import Endpoint
from funreason_pipeline.llm.hedging import LatencyTracker, first_reply, hedge_delay
from funreason_pipeline.llm.models import (
    BatchResult,
    BatchStats,
    FailureKind,
    LLMFailure,
    LLMRequest,
    LLMResponse,
)
from funreason_pipeline.llm.retry import RetryBudget
from funreason_pipeline.llm.settings import RoleSettings
from funreason_pipeline.llm.transport import Reply, parse_completion, post, request_body, request_options

if TYPE_CHECKING:
    from funreason_pipeline.llm.client import LLMClient

__all__ = ["EndpointUnavailableError", "LLMSession", "job_hash"]

log = logging.getLogger(__name__)


class EndpointUnavailableError(RuntimeError):
    """An endpoint's circuit breaker opened: it is dead (or rejects our key). `.result` has the batch."""

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result


def job_hash(s: RoleSettings, req: LLMRequest) -> str:
    """The cache key of `req` under its role's settings (never the API key)."""
    return request_hash(
        s.base_url, s.model, req.messages, req.tools, req.response_format, s.sampling(), req.prompt_version
    )


@dataclass(slots=True)
class _Job:
    req: LLMRequest
    settings: RoleSettings
    hash: str
    body: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


def _response(job: _Job, body: bytes | str, latency: float, cached: bool) -> tuple[LLMResponse, int, int]:
    """The response read from a completion body, and its token counts; ValueError if unreadable."""
    content, calls, finish, tin, tout, thought = parse_completion(body)
    resp = LLMResponse.model_construct(
        item_id=job.req.item_id,
        request_hash=job.hash,
        role=job.settings.role,
        model=job.settings.model,
        prompt_version=job.req.prompt_version,
        content=content,
        reasoning=thought,
        tool_calls=calls,
        finish_reason=finish,
        input_tokens=tin,
        output_tokens=tout,
        latency_s=latency,
        cached=cached,
    )
    return resp, tin, tout


def _failure(job: _Job, kind: FailureKind, message: str, attempts: int, status: int | None = None) -> LLMFailure:
    return LLMFailure(
        item_id=job.req.item_id,
        request_hash=job.hash,
        role=job.settings.role,
        kind=kind,
        message=message[:2000],
        attempts=attempts,
        status_code=status,
    )


class LLMSession:
    """One open client: endpoints (HTTP pools, limiter, breaker), the cache writer and the latency
    trackers live as long as the session, so any number of coroutines can `await call(request)` at
    any time and up to C requests are in flight whenever there is work (no batch barrier).

    `call` gives an `LLMResponse` or an `LLMFailure`, never raises for endpoint trouble. Identical
    requests in flight are sent once; answers of this session are remembered, so a repeat is free.
    Cache look-ups of requests that arrive together are coalesced into one DuckDB query. After
    `aclose()`, `raise_if_dead(result)` raises `EndpointUnavailableError` if a breaker refused requests
    (or `dead_message()` says why)."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.settings = client.settings
        self.options = client.options
        self.cache = client.cache
        self.stats = BatchStats()
        self.counters: Counter[str] = Counter()
        self.endpoints: dict[tuple[str, str | None], Endpoint] = {}
        self.latency: dict[tuple[str, str], LatencyTracker] = {}
        # per RoleSettings object (the client's settings live as long as the session): its endpoint
        # and latency tracker, so a request does not rebuild the keys (secret, enum values) each time
        self._routes: dict[int, tuple[RoleSettings, Endpoint, LatencyTracker]] = {}
        self.writer: CacheWriter | None = None
        self.in_flight = 0  # HTTP copies now on the wire (hedges included)
        self.max_in_flight = 0
        self._inflight: dict[str, asyncio.Future] = {}
        self._done: dict[str, LLMResponse] = {}
        self._lookup_wanted: dict[str, asyncio.Future] = {}
        self._lookup_task: asyncio.Task | None = None
        self._recovered = False
        self._hashes: set[str] = set()
        self._t0 = time.perf_counter()
        self._closed = False

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- the one entry point -------------------------------------------------------------------
    async def call(self, req: LLMRequest) -> LLMResponse | LLMFailure:
        out = await self._call(req)
        if isinstance(out, LLMResponse):
            self.stats.ok += 1
        else:
            self.stats.failed += 1
            kinds = self.stats.failures_by_kind
            kinds[out.kind.value] = kinds.get(out.kind.value, 0) + 1
        return out

    async def _call(self, req: LLMRequest) -> LLMResponse | LLMFailure:
        s = self.settings.role(req.role)
        if s.is_offline:
            raise ValueError(
                f"role {s.role.value} is offline (no FUNREASON_LLM_BASE_URL[_{s.role.name}]); "
                "use the offline backend for it"
            )
        h = job_hash(s, req)
        self.stats.items += 1
        self._hashes.add(h)
        done = self._done.get(h)
        if done is not None:
            return self._relabel(done, req)
        fut = self._inflight.get(h)
        if fut is not None:
            return self._relabel(await asyncio.shield(fut), req)
        fut = asyncio.get_running_loop().create_future()
        self._inflight[h] = fut
        job = _Job(req, s, h)
        try:
            out = await self._resolve(job)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: no "never retrieved" warning if nobody else waits
            raise
        finally:
            self._inflight.pop(h, None)
        if isinstance(out, LLMResponse):
            self._done[h] = out
        fut.set_result(out)
        return out

    @staticmethod
    def _relabel(out: LLMResponse | LLMFailure, req: LLMRequest) -> LLMResponse | LLMFailure:
        return out if out.item_id == req.item_id else out.model_copy(update={"item_id": req.item_id})

    async def _resolve(self, job: _Job) -> LLMResponse | LLMFailure:
        if self.cache is not None:
            hit = await self._lookup(job.hash)
            if hit is not None:
                body, latency = hit
                try:
                    resp, tin, tout = _response(job, body, latency or 0.0, cached=True)
                except ValueError:
                    pass  # unreadable row: send again
                else:
                    self.stats.cache_hits += 1
                    self.stats.cached_input_tokens += tin
                    self.stats.cached_output_tokens += tout
                    return resp
        ep, tracker = self._route(job.settings)
        job.body = request_body(job.settings, job.req)
        job.options = request_options(job.settings, self.options.send_role_header)
        if self.cache is not None and self.writer is None:
            self.writer = CacheWriter(
                self.cache,
                self.options.cache_flush_interval_s,
                self.options.cache_flush_max_rows,
                journal=self.options.cache_journal,
            )
            self.writer.start()
        return await self._execute(ep, job, tracker)

    # --- cache look-ups, coalesced ---------------------------------------------------------------
    async def _lookup(self, h: str) -> tuple[str, float] | None:
        # one waiter per hash (`_call` sends identical requests once); a waiter cancelled meanwhile is
        # replaced, and the round skips it (no shield needed)
        fut = self._lookup_wanted.get(h)
        if fut is None or fut.cancelled():
            fut = self._lookup_wanted[h] = asyncio.get_running_loop().create_future()
        if self._lookup_task is None:
            self._lookup_task = asyncio.ensure_future(self._lookup_round())
        return await fut

    async def _lookup_round(self) -> None:
        try:
            while self._lookup_wanted:
                await asyncio.sleep(0)  # let every coroutine that is ready now add its hash
                wanted, self._lookup_wanted = self._lookup_wanted, {}
                try:
                    hits = await asyncio.to_thread(self._read_cache, list(wanted))
                except Exception as exc:  # noqa: BLE001 - a broken cache read is a miss, not a crash
                    log.warning("llm_calls look-up failed (%s); sending the requests", exc)
                    hits = {}
                for h, fut in wanted.items():
                    if not fut.done():
                        fut.set_result(hits.get(h))
        finally:
            self._lookup_task = None

    def _read_cache(self, hashes: list[str]) -> dict[str, tuple[str, float]]:
        cache = self.cache
        assert cache is not None
        if not self._recovered:
            cache.recover()  # responses journalled by a killed process are not paid for twice
            self._recovered = True
        return cache.lookup(hashes)

    # --- sending -----------------------------------------------------------------------------------
    def _route(self, s: RoleSettings) -> tuple[Endpoint, LatencyTracker]:
        """The endpoint of `s` and the latency tracker of its role there."""
        route = self._routes.get(id(s))
        if route is None or route[0] is not s:
            ep = self._endpoint(s)
            key = (ep.url, s.role.value)
            tracker = self.latency.get(key)
            if tracker is None:
                tracker = self.latency[key] = LatencyTracker()
            route = self._routes[id(s)] = (s, ep, tracker)
        return route[1], route[2]

    def _endpoint(self, s: RoleSettings) -> Endpoint:
        key = s.api_key.get_secret_value() if s.api_key else None
        ek = (s.base_url or "", key)
        ep = self.endpoints.get(ek)
        if ep is None:
            ep = self.endpoints[ek] = Endpoint(ek[0], key, self.settings.concurrency, self.options)
        ep.roles.add(s.role.value)
        ep.models.add(s.model)
        return ep

    def hedge_delay(self, ep: Endpoint, s: RoleSettings) -> float | None:
        """Seconds after which a copy still unanswered gets a hedge, or None (off / not known yet)."""
        return hedge_delay(s, self.latency.get((ep.url, s.role.value)), self.options.hedge_min_samples)

    async def _copy(self, ep: Endpoint, job: _Job, sent: list[float]) -> Reply:
        """One HTTP copy, counted on the wire while it lasts (also when cancelled: a hedge lost, or
        made way for a newer one); `sent` gets its send time, the hedge clock's start."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        sent.append(time.perf_counter())
        try:
            return await post(ep.pool.client(), job.body, job.options, job.settings.timeout_s)
        finally:
            self.in_flight -= 1

    async def _execute(self, ep: Endpoint, job: _Job, tracker: LatencyTracker) -> LLMResponse | LLMFailure:
        """Tries until an answer or a final failure. Each try holds one limiter slot for all its
        copies, freed only once breaker and limiter have seen its outcome, so a request waiting for
        the slot already sees an endpoint this answer declared dead."""
        counters = self.counters
        limiter, breaker = ep.limiter, ep.breaker
        budget = RetryBudget(self.options)
        attempts = 0
        since = time.monotonic()  # a retry keeps its first try's place in the limiter's queue
        s, min_samples = job.settings, self.options.hedge_min_samples

        def send(sent: list[float]) -> Coroutine[Any, Any, Reply]:
            return self._copy(ep, job, sent)

        def delay() -> float | None:
            return hedge_delay(s, tracker, min_samples)

        while True:
            admitted = breaker.allow()
            if not admitted:
                ep.refuse()
                return _failure(
                    job,
                    FailureKind.CIRCUIT_OPEN,
                    f"not sent: endpoint {ep.url} declared unavailable ({ep.scrub(breaker.reason)})",
                    attempts,
                )
            epoch = await limiter.acquire(since)
            try:
                if breaker.is_open and admitted != 2:
                    continue  # it opened while this request waited for its slot: look again
                reply = await first_reply(send, delay, s, ep.hedges, self.options.hedge_poll_s, counters)
                attempts += 1
                counters["attempts"] += 1
                if attempts == 1:
                    counters["sent"] += 1
                outcome = self._outcome(ep, job, reply, epoch, attempts, budget, tracker)
            finally:
                limiter.release()
            if not isinstance(outcome, float):
                return outcome
            await asyncio.sleep(outcome)

    def _outcome(self, ep: Endpoint, job: _Job, reply: Reply, epoch: int, attempts: int,
                 budget: RetryBudget, tracker: LatencyTracker) -> LLMResponse | LLMFailure | float:
        """A try's outcome: the response, a final failure, or the delay before the next try."""
        kind, message, status = reply.kind, reply.message, reply.status
        if kind is None:
            try:
                resp, tin, tout = _response(job, reply.raw, reply.latency, cached=False)
            except ValueError as exc:
                kind, message, status = FailureKind.BAD_RESPONSE, str(exc), 200
            else:
                self._answered(ep, job, reply, resp, tin, tout, tracker)
                return resp
        message = ep.scrub(message)
        if kind is FailureKind.RATE_LIMITED:
            self.counters["rate_limited"] += 1
        delay = budget.after_failure(kind, message, reply.headers, epoch, ep.rtt, ep.limiter, ep.breaker)
        return _failure(job, kind, message, attempts, status) if delay is None else delay

    def _answered(self, ep: Endpoint, job: _Job, reply: Reply, resp: LLMResponse, tin: int, tout: int,
                  tracker: LatencyTracker) -> None:
        ep.answered(reply.latency)
        tracker.add(reply.latency)
        self.counters["input_tokens"] += tin
        self.counters["output_tokens"] += tout
        if self.writer is not None:
            self.writer.add(
                CacheRow(
                    job.hash,
                    job.settings.role.value,
                    job.settings.model,
                    job.req.prompt_version,
                    tin,
                    tout,
                    reply.latency,
                    resp.finish_reason,
                    reply.raw.decode("utf-8", "replace"),
                )
            )

    # --- the end -----------------------------------------------------------------------------------
    def snapshot(self) -> BatchStats:
        """The session's figures so far (`wall_s` since it opened)."""
        st = self.stats.model_copy(deep=True)
        c = self.counters
        st.unique_requests = len(self._hashes)
        st.sent = c["sent"]
        st.http_attempts = c["attempts"]
        st.retries = c["attempts"] - c["sent"]
        st.hedges = c["hedges"]
        st.hedges_replaced = c["hedges_replaced"]
        st.rate_limited_responses = c["rate_limited"]
        st.input_tokens = c["input_tokens"]
        st.output_tokens = c["output_tokens"]
        st.max_in_flight = self.max_in_flight
        st.wall_s = time.perf_counter() - self._t0
        if self.writer is not None:
            st.cache_flushes = self.writer.flushes
        return st

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self.writer is not None:
                await self.writer.close()
                self.stats.cache_flushes = self.writer.flushes
        finally:
            for ep in self.endpoints.values():
                await ep.aclose()

    def dead_message(self) -> str | None:
        """Why requests of this session were refused (every dead endpoint), or None."""
        dead = [m for m in (ep.dead_message() for ep in self.endpoints.values()) if m is not None]
        if not dead:
            return None
        return (
            "; ".join(dead) + " -- check that the server runs and FUNREASON_LLM_BASE_URL[_<ROLE>] / _API_KEY. "
            "Responses received so far are cached; a rerun sends only the rest."
        )

    def raise_if_dead(self, result: BatchResult) -> None:
        """Raise `EndpointUnavailableError` (carrying `result`) if a breaker refused requests and the
        client's options say so. Also when the breaker closed again before the end (a request in
        flight when it opened came back fine): the requests it refused meanwhile are failures the
        caller must not take as final."""
        dead = self.dead_message()
        if dead and self.options.raise_on_circuit_open:
            raise EndpointUnavailableError(dead, result)
