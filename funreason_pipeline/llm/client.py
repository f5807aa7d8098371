"""Batch chat requests against OpenAI-compatible endpoints: bounded, adaptive, cached, never silent.

`LLMClient.arun(requests)` (or the sync `run`) sends a batch and returns one result per request, in
input order: an `LLMResponse` or an `LLMFailure` with a kind. Per endpoint (base URL + key) there is
one `openai.AsyncOpenAI` (max_retries=0: retries are ours; a per-request timeout from the role's
settings), one `AdaptiveLimiter` (AIMD on 429/503, honouring Retry-After) and one `CircuitBreaker`
(a dead endpoint fails fast with `EndpointUnavailableError`, raised after the batch whenever the
breaker refused a request, even if the endpoint answered again before the batch ended).

Retries: 5xx, timeouts, connection errors and broken bodies get jittered exponential backoff, at most
`max_attempts` tries; 429/503 wait their Retry-After (else backoff) and get `max_rate_limit_retries`
more tries; 4xx and auth errors are not retried. Identical requests in a batch are sent once.

CPU per request (measured, see docs/benchmarks.md):
- requests go through `AsyncOpenAI.post(..., cast_to=httpx2.Response)`: no SDK param transform, no
  pydantic `ChatCompletion`; the body is read with one `json.loads` (`parse_completion`). About half
  the CPU of `chat.completions.create` + `with_raw_response` costs as much as `create`.
- the transport is the SDK's own aiohttp client (`openai.DefaultAioHttpClient`) when `aiohttp` is
  installed: another third less CPU than httpx2, whose connection pool scans every connection on each
  request (quadratic in C: at C=256 it could not keep up). Without aiohttp (or behind a proxy) httpx2
  is used and its pool is split over several AsyncOpenAI instances of `pool_shard_size` connections.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import math
import random
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, Self, TypeVar

import httpx2
import openai
from pydantic import BaseModel, Field

from funreason_pipeline.llm.cache import CacheRow, CacheWriter, LLMCache, request_hash
from funreason_pipeline.llm.limiter import AdaptiveLimiter, CircuitBreaker
from funreason_pipeline.llm.models import (
    BatchResult,
    BatchStats,
    FailureKind,
    LLMFailure,
    LLMRequest,
    LLMResponse,
    parse_completion,
)
from funreason_pipeline.llm.settings import LLMSettings, RoleSettings

__all__ = ["ROLE_HEADER", "ClientOptions", "EndpointUnavailableError", "LLMClient", "LLMSession", "run_sync"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ROLE_HEADER = "X-Funreason-Role"
_PLACEHOLDER_KEY = "not-set"  # local servers (vLLM, Ollama, ...) need no key; the SDK wants a string


class ClientOptions(BaseModel):
    """Retry, rate-limit, breaker and cache knobs (defaults suit real endpoints; tests shorten them)."""

    # tries for 5xx / timeout / connection / bad body. A failed request can end a whole trajectory, and
    # at R1's mix (~30% of the attempts that count fail) 4 tries lost 0.9% of requests, 8 lose 1e-4;
    # a dead endpoint is the breaker's job (25 failures in a row), not this budget's
    max_attempts: int = Field(8, ge=1)
    max_rate_limit_retries: int = Field(30, ge=0)  # extra tries for 429/503
    backoff_base_s: float = 0.5
    # the limiter bounds the load retries put on an endpoint, so backoff only spaces tries out over a
    # short outage: 8 tries at 0.5 s doubling to 5 s span ~17 s (4 up to 20 s spanned ~2.6 s), while
    # a 20 s cap let the unluckiest requests of a run (6-7 failures, a few per 10,000) wait 35-55 s
    backoff_max_s: float = 5.0
    max_retry_after_s: float = 60.0
    aimd_decrease: float = Field(0.95, gt=0, lt=1)  # P3: 0.95 -> ~0.91 of capacity, 0.9 -> ~0.86
    aimd_increase: float = Field(1.0, gt=0)
    # no success for this many endpoint failures in a row: dead (limiter.py: why 25, not 10)
    breaker_failures: int = Field(25, ge=1)
    breaker_connect_failures: int = Field(3, ge=1)
    breaker_cooldown_s: float = 30.0
    raise_on_circuit_open: bool = True  # raise EndpointUnavailableError after the batch
    # DuckDB flushes: None = 5 s, since every response is journalled at once (0.25 s if no journal)
    cache_flush_interval_s: float | None = None
    cache_flush_max_rows: int = 1024
    cache_journal: bool = True
    send_role_header: bool = True  # X-Funreason-Role: lets the test server script answers per role
    max_live_tasks: int = 4096  # bounds memory for huge batches (tasks, not concurrency)
    # "auto": aiohttp transport if installed (about 1/3 less CPU per request than httpx2 at C=64, and
    # it scales to C=256) unless a proxy is configured; else httpx2 with its pool split in shards
    http_backend: Literal["auto", "aiohttp", "httpx"] = "auto"
    pool_shard_size: int = Field(32, ge=1)  # httpx2 only: connections per AsyncOpenAI shard
    # hedging (per-role factor / floor / count are RoleSettings): answers needed before the p95 counts,
    # and how often an unanswered request looks again while the p95 is not known yet
    hedge_min_samples: int = Field(20, ge=1)
    hedge_poll_s: float = Field(0.5, gt=0)
    # hedge copies on the wire at once, as a share of the concurrency (they hold no limiter slot):
    # bounds the extra load if a server stalls everything; 0 = no hedging
    hedge_budget: float = Field(0.5, ge=0)


class EndpointUnavailableError(RuntimeError):
    """An endpoint's circuit breaker opened: it is dead (or rejects our key). `.result` has the batch."""

    def __init__(self, message: str, result: BatchResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass(slots=True)
class _Job:
    req: LLMRequest
    settings: RoleSettings
    hash: str
    body: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class _Endpoint:
    __slots__ = (
        "_rr",
        "backend",
        "breaker",
        "clients",
        "extra",
        "extra_max",
        "key",
        "limiter",
        "models",
        "refused",
        "refused_reason",
        "roles",
        "rtt",
        "url",
    )

    def __init__(self, url: str, key: str | None, concurrency: int, opts: ClientOptions) -> None:
        self.url = url
        self.key = key
        self.backend = _pick_backend(opts.http_backend)
        self.extra = 0  # hedge copies on the wire now (copies beyond each attempt's first)
        self.extra_max = math.ceil(opts.hedge_budget * concurrency)
        # hedge copies hold no limiter slot, but each needs a connection: the pool has room for them
        # (else a hedge waits for a connection that its own stalled copy holds)
        connections = concurrency + self.extra_max
        if self.backend == "aiohttp":
            shards = 1
            make_http = openai.DefaultAioHttpClient
        else:  # httpx2's pool scans every connection per request: shard it for large C
            shards = max(1, math.ceil(concurrency / opts.pool_shard_size))
            make_http = openai.DefaultAsyncHttpxClient
        per = math.ceil(connections / shards)
        self.clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=key or _PLACEHOLDER_KEY,
                max_retries=0,
                http_client=make_http(
                    limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=per)
                ),
            )
            for _ in range(shards)
        ]
        self._rr = 0
        self.rtt = 0.0  # moving average of successful request latency
        self.limiter = AdaptiveLimiter(concurrency, decrease=opts.aimd_decrease, increase=opts.aimd_increase)
        self.breaker = CircuitBreaker(
            opts.breaker_failures, opts.breaker_connect_failures, opts.breaker_cooldown_s
        )
        self.roles: set[str] = set()
        self.models: set[str] = set()
        self.refused = 0  # requests failed with circuit_open (the breaker may have closed again since)
        self.refused_reason = ""

    def client(self) -> openai.AsyncOpenAI:
        clients = self.clients
        if len(clients) == 1:
            return clients[0]
        self._rr = (self._rr + 1) % len(clients)
        return clients[self._rr]

    async def aclose(self) -> None:
        for c in self.clients:
            await c.close()

    def scrub(self, text: str) -> str:
        if self.key and self.key in text:
            text = text.replace(self.key, "***")
        return text

    def describe(self) -> str:
        return f"{self.url} (model {', '.join(sorted(self.models))}; roles {', '.join(sorted(self.roles))})"


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


def _pick_backend(choice: str) -> str:
    if choice == "httpx":
        return "httpx"
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        if choice == "aiohttp":
            raise RuntimeError("http_backend='aiohttp' needs the aiohttp package (openai[aiohttp])") from None
        return "httpx"
    if choice == "auto" and any(k in ("http", "https", "all") for k in urllib.request.getproxies()):
        return "httpx"  # aiohttp here ignores HTTP(S)_PROXY; httpx honours it
    return "aiohttp"


def _transport_kind(exc: openai.APIConnectionError, timeout_s: float) -> tuple[FailureKind, str]:
    """Timeout or connection failure, read from the cause chain: the SDK's aiohttp transport maps a
    refused connection to a ConnectTimeout, so the exception type alone is not to be trusted."""
    chain: list[BaseException] = []
    e: BaseException | None = exc.__cause__ or exc.__context__
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    if any(isinstance(c, TimeoutError) for c in chain):
        return FailureKind.TIMEOUT, f"no response within {timeout_s:g}s"
    os_errors = [c for c in chain if isinstance(c, OSError)]
    if os_errors:
        return FailureKind.CONNECTION, f"{type(os_errors[0]).__name__}: {os_errors[0]}"
    if isinstance(exc, openai.APITimeoutError):
        return FailureKind.TIMEOUT, f"no response within {timeout_s:g}s"
    c = chain[0] if chain else exc
    return FailureKind.CONNECTION, f"{type(c).__name__}: {c}"


def _retry_after(headers: httpx2.Headers | None, cap: float) -> float | None:
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


class LLMClient:
    """Runs batches of `LLMRequest`s. One instance can serve many batches (sync or async)."""

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

    # --- hashing -----------------------------------------------------------------------------------
    def request_hash(self, req: LLMRequest) -> str:
        s = self.settings.role(req.role)
        return request_hash(
            s.base_url,
            s.model,
            req.messages,
            req.tools,
            req.response_format,
            s.sampling(),
            req.prompt_version,
        )

    def _recover_and_lookup(self, hashes: list[str]) -> dict[str, tuple[str, float]]:
        assert self.cache is not None
        self.cache.recover()  # responses journalled by a killed process are not paid for twice
        return self.cache.lookup(hashes)

    # --- sync wrapper ------------------------------------------------------------------------------
    def run(self, requests: Sequence[LLMRequest]) -> BatchResult:
        """Blocking `arun` on its own event loop (a worker thread if this thread already runs one)."""
        return run_sync(self.arun(requests))

    # --- sessions and batches ----------------------------------------------------------------------
    def session(self) -> LLMSession:
        """An open session: `async with client.session() as s: await s.call(req)` from many coroutines."""
        return LLMSession(self)

    async def arun(self, requests: Sequence[LLMRequest]) -> BatchResult:
        """One batch on its own session: every request at once, results in input order."""
        t_start = time.perf_counter()
        opts = self.options
        for req in requests:  # an offline role is a caller's mistake: fail before sending anything
            s = self.settings.role(req.role)
            if s.is_offline:
                raise ValueError(
                    f"role {s.role.value} is offline (no FUNREASON_LLM_BASE_URL[_{s.role.name}]); "
                    "use the offline backend for it"
                )
        results: list[LLMResponse | LLMFailure | None] = [None] * len(requests)
        session = LLMSession(self)
        gate = asyncio.Semaphore(opts.max_live_tasks)

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
        # also when the breaker closed again before the end (a request in flight when it opened came
        # back fine): the requests it refused meanwhile are failures the caller must not take as final
        dead = session.dead_message()
        if dead and opts.raise_on_circuit_open:
            raise EndpointUnavailableError(dead, batch)
        return batch

    # --- internals ---------------------------------------------------------------------------------
    @staticmethod
    def _body(job: _Job) -> dict[str, Any]:
        s, req = job.settings, job.req
        body: dict[str, Any] = {"model": s.model, "messages": req.messages, **s.sampling()}
        if req.tools:
            body["tools"] = req.tools
        if req.response_format:
            body["response_format"] = req.response_format
        return body

    @staticmethod
    def _response(
        job: _Job,
        content: str | None,
        calls: list,
        finish: str | None,
        tin: int,
        tout: int,
        latency: float,
        cached: bool,
        reasoning: str | None = None,
    ) -> LLMResponse:
        return LLMResponse.model_construct(
            item_id=job.req.item_id,
            request_hash=job.hash,
            role=job.settings.role,
            model=job.settings.model,
            prompt_version=job.req.prompt_version,
            content=content,
            reasoning=reasoning,
            tool_calls=calls,
            finish_reason=finish,
            input_tokens=tin,
            output_tokens=tout,
            latency_s=latency,
            cached=cached,
        )

    def _fail(self, job: _Job, kind: FailureKind, message: str, attempts: int, status: int | None = None):
        return LLMFailure(
            item_id=job.req.item_id,
            request_hash=job.hash,
            role=job.settings.role,
            kind=kind,
            message=message[:2000],
            attempts=attempts,
            status_code=status,
        )

    def _backoff(self, n: int) -> float:
        o = self.options
        return min(o.backoff_max_s, o.backoff_base_s * (2 ** (n - 1))) * (0.5 + 0.5 * random.random())


class LatencyTracker:
    """Recent successful latencies per (endpoint, role): the hedge delay is `factor` x their p95.

    Why p95 and not the mean: an answer slower than nearly all of its peers is most likely stalled
    (a hung connection, an overloaded replica), while long generations of a role are part of its own
    distribution and so move its p95 up with them."""

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


class LLMSession:
    """One open client: endpoints (HTTP pools, limiter, breaker), the cache writer and the latency
    trackers live as long as the session, so any number of coroutines can `await call(request)` at
    any time and up to C requests are in flight whenever there is work (no batch barrier).

    `call` gives an `LLMResponse` or an `LLMFailure`, never raises for endpoint trouble. Identical
    requests in flight are sent once; answers of this session are remembered, so a repeat is free.
    Cache look-ups of requests that arrive together are coalesced into one DuckDB query. After
    `aclose()`, `raise_if_dead()` raises `EndpointUnavailableError` if a breaker refused requests."""

    def __init__(self, client: LLMClient) -> None:
        self.client = client
        self.settings = client.settings
        self.options = client.options
        self.stats = BatchStats()
        self.counters: Counter[str] = Counter()
        self.endpoints: dict[tuple[str, str | None], _Endpoint] = {}
        self.latency: dict[tuple[str, str], LatencyTracker] = {}
        self.writer: CacheWriter | None = None
        self.in_flight = 0  # HTTP attempts now on the wire (hedges included)
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
        h = request_hash(
            s.base_url, s.model, req.messages, req.tools, req.response_format, s.sampling(), req.prompt_version
        )
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
        if self.client.cache is not None:
            hit = await self._lookup(job.hash)
            if hit is not None:
                body, latency = hit
                try:
                    content, calls, finish, tin, tout, thought = parse_completion(body)
                except ValueError:
                    pass  # unreadable row: send again
                else:
                    self.stats.cache_hits += 1
                    self.stats.cached_input_tokens += tin
                    self.stats.cached_output_tokens += tout
                    return LLMClient._response(job, content, calls, finish, tin, tout, latency or 0.0, cached=True,
                                               reasoning=thought)
        ep = self._endpoint(job.settings)
        job.body = LLMClient._body(job)
        job.options = {"timeout": job.settings.timeout_s, "max_retries": 0}
        if self.options.send_role_header:
            job.options["headers"] = {ROLE_HEADER: job.settings.role.value}
        if self.client.cache is not None and self.writer is None:
            self.writer = CacheWriter(
                self.client.cache,
                self.options.cache_flush_interval_s,
                self.options.cache_flush_max_rows,
                journal=self.options.cache_journal,
            )
            self.writer.start()
        return await self._execute(ep, job)

    # --- cache look-ups, coalesced ---------------------------------------------------------------
    async def _lookup(self, h: str) -> tuple[str, float] | None:
        fut = self._lookup_wanted.get(h)
        if fut is None:
            fut = self._lookup_wanted[h] = asyncio.get_running_loop().create_future()
        if self._lookup_task is None:
            self._lookup_task = asyncio.ensure_future(self._lookup_round())
        return await asyncio.shield(fut)

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
        cache = self.client.cache
        assert cache is not None
        if not self._recovered:
            cache.recover()  # responses journalled by a killed process are not paid for twice
            self._recovered = True
        return cache.lookup(hashes)

    # --- endpoints and hedging -------------------------------------------------------------------
    def _endpoint(self, s: RoleSettings) -> _Endpoint:
        key = s.api_key.get_secret_value() if s.api_key else None
        ek = (s.base_url or "", key)
        ep = self.endpoints.get(ek)
        if ep is None:
            ep = self.endpoints[ek] = _Endpoint(ek[0], key, self.settings.concurrency, self.options)
        ep.roles.add(s.role.value)
        ep.models.add(s.model)
        return ep

    def hedge_delay(self, ep: _Endpoint, s: RoleSettings) -> float | None:
        """Seconds after which a copy still unanswered gets a hedge, or None (off / not known yet)."""
        if s.hedge_factor <= 0:
            return None
        tracker = self.latency.get((ep.url, s.role.value))
        p95 = tracker.p95(self.options.hedge_min_samples) if tracker is not None else None
        if p95 is None:
            return None
        delay = max(s.hedge_min_s, s.hedge_factor * p95)
        return delay if delay < s.timeout_s else None

    async def _post_once(self, ep: _Endpoint, job: _Job, sent: list[float]) -> tuple:
        """One HTTP copy of the request: (kind, raw, status, headers, message, latency). A copy holds no
        limiter slot of its own: its attempt holds one for all its copies (`_hedged_post`). `sent` gets
        the send time."""
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        status: int | None = None
        headers = None
        raw = b""
        message = ""
        kind: FailureKind | None = None
        t0 = time.perf_counter()
        sent.append(t0)
        try:
            http = await ep.client().post(
                "/chat/completions", cast_to=httpx2.Response, body=job.body, options=job.options
            )
            raw = http.content
        except openai.APIStatusError as exc:
            status = exc.status_code
            headers = exc.response.headers
            message = f"HTTP {status}: {exc.message}"
            if status == 429 or status == 503:
                kind = FailureKind.QUOTA if exc.code == "insufficient_quota" else FailureKind.RATE_LIMITED
            elif status in (401, 403):
                kind = FailureKind.AUTH
            elif status >= 500:
                kind = FailureKind.HTTP_5XX
            else:
                kind = FailureKind.HTTP_4XX
        except openai.APIConnectionError as exc:  # includes APITimeoutError
            kind, message = _transport_kind(exc, job.settings.timeout_s)
        except Exception as exc:  # noqa: BLE001 - any other error is this request's failure, with its type
            kind, message = FailureKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"
        finally:  # also when cancelled (a hedge lost, or made way for a newer one)
            self.in_flight -= 1
        return kind, raw, status, headers, message, time.perf_counter() - t0

    async def _hedged_post(self, ep: _Endpoint, job: _Job, admitted: int, since: float) -> tuple | None:
        """One attempt: (kind, raw, status, headers, message, latency, epoch) of the first copy to
        finish, or None if the breaker opened while this attempt waited for its slot (the caller looks
        again). The attempt's limiter slot stays held: the caller frees it once breaker and limiter
        have seen the outcome, so a request waiting for it already sees an endpoint this answer
        declared dead.

        Hedging: when the newest copy has been on the wire longer than the hedge delay, another copy
        goes out; the first copy to finish, with an answer or an error, ends the attempt and the
        others are cancelled (an error is retried like any other, after its backoff). A stalled
        request thus costs about one hedge delay instead of the role timeout, and a slow but healthy
        generation is not thrown away for being slow. The clock starts when a copy is sent, not
        while the attempt waits for its slot.
        - One slot per attempt, however many copies: a stalled copy does not shrink the requests in
          flight (each copy used to hold a slot, so a stalled one kept its slot while its hedge
          waited for another). Copies beyond the first come from the endpoint's hedge budget
          (`ClientOptions.hedge_budget` x C on the wire at once, else the hedge waits), so hedging
          can neither multiply the load on a server that stalls everything nor go past C by more.
        - Rolling: with `hedge_max` hedges out and none answered, each further hedge delay cancels
          the oldest hedge and sends a fresh copy. A request whose copies all stall keeps trying at
          the hedge delay's pace instead of waiting out the role timeout (E3: 120 s / 300 s tails).
          The first copy is never cancelled this way: a genuinely long generation still finishes,
          and its HTTP timeout (the role's) bounds the attempt."""
        s = job.settings
        epoch = await ep.limiter.acquire(since)  # a retry keeps its first try's place in the queue
        if ep.breaker.is_open and admitted != 2:
            ep.limiter.release()
            return None
        hedging = s.hedge_factor > 0 and s.hedge_max > 0 and ep.extra_max > 0
        sends: list[list[float]] = [[]]
        copies = [asyncio.ensure_future(self._post_once(ep, job, sends[0]))]
        dropped: list[asyncio.Future] = []  # hedges cancelled to make way for newer ones
        extra = 0  # this attempt's copies beyond the first (counted in ep.extra)
        try:
            while True:
                delay = self.hedge_delay(ep, s) if hedging else None
                newest = sends[-1][0] if sends[-1] else None
                if not hedging:
                    timeout = None
                elif delay is None or newest is None:  # not known yet / not sent yet: look again soon
                    timeout = self.options.hedge_poll_s
                else:
                    timeout = max(0.0, newest + delay - time.perf_counter())
                    if timeout == 0.0 and len(copies) <= s.hedge_max and ep.extra >= ep.extra_max:
                        timeout = self.options.hedge_poll_s  # budget spent: look again soon
                done, _ = await asyncio.wait(copies, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                if done:  # an answer (a success if several came at once), or the attempt's failure
                    best = min(done, key=lambda d: d.result()[0] is not None)
                    return (*best.result(), epoch)
                if delay is None or newest is None or time.perf_counter() < newest + delay:
                    continue
                if len(copies) > s.hedge_max:  # all hedges out: the oldest makes way (not the first copy)
                    old = copies.pop(1)
                    sends.pop(1)
                    old.cancel()
                    dropped.append(old)
                    self.counters["hedges_replaced"] += 1
                elif ep.extra < ep.extra_max:
                    extra += 1
                    ep.extra += 1
                else:
                    continue
                sends.append([])
                copies.append(asyncio.ensure_future(self._post_once(ep, job, sends[-1])))
                self.counters["hedges"] += 1
        except BaseException:
            ep.limiter.release()
            raise
        finally:
            ep.extra -= extra
            for c in copies:
                c.cancel()  # no-op for the finished ones
            for c in copies + dropped:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await c

    async def _execute(self, ep: _Endpoint, job: _Job) -> LLMResponse | LLMFailure:
        counters = self.counters
        limiter, breaker = ep.limiter, ep.breaker
        attempts = 0
        rl = [0, 0]
        fail = self.client._fail
        since = time.monotonic()  # the limiter's clock
        while True:
            admitted = breaker.allow()
            if not admitted:
                if not ep.refused:
                    ep.refused_reason = breaker.reason
                ep.refused += 1
                return fail(
                    job,
                    FailureKind.CIRCUIT_OPEN,
                    f"not sent: endpoint {ep.url} declared unavailable ({ep.scrub(breaker.reason)})",
                    attempts,
                )
            posted = await self._hedged_post(ep, job, admitted, since)
            if posted is None:  # the breaker opened while this request waited for a slot
                continue
            attempts += 1
            counters["attempts"] += 1
            if attempts == 1:
                counters["sent"] += 1
            try:
                outcome = self._outcome(ep, job, posted, attempts, counters, rl)
            finally:
                limiter.release()  # after breaker and limiter saw this answer (see _post_once)
            if not isinstance(outcome, float):
                return outcome
            delay = outcome
            await asyncio.sleep(delay)

    def _outcome(self, ep: _Endpoint, job: _Job, posted: tuple, attempts: int, counters: Counter[str],
                 rl: list[int]) -> LLMResponse | LLMFailure | float:
        """An HTTP try's outcome: the response, a final failure, or the delay before the next try.
        `rl` = [rate-limit retries, other retries] so far (updated)."""
        opts = self.options
        limiter, breaker = ep.limiter, ep.breaker
        fail = self.client._fail
        kind, raw, status, headers, message, latency, epoch = posted

        if kind is None:
            try:
                content, calls, finish, tin, tout, thought = parse_completion(raw)
            except ValueError as exc:
                kind, message, status = FailureKind.BAD_RESPONSE, str(exc), 200
            else:
                breaker.on_success()
                limiter.on_success()
                ep.rtt = latency if ep.rtt == 0.0 else 0.9 * ep.rtt + 0.1 * latency
                tracker = self.latency.get((ep.url, job.settings.role.value))
                if tracker is None:
                    tracker = self.latency[(ep.url, job.settings.role.value)] = LatencyTracker()
                tracker.add(latency)
                counters["input_tokens"] += tin
                counters["output_tokens"] += tout
                if self.writer is not None:
                    self.writer.add(
                        CacheRow(
                            job.hash,
                            job.settings.role.value,
                            job.settings.model,
                            job.req.prompt_version,
                            tin,
                            tout,
                            latency,
                            finish,
                            raw.decode("utf-8", "replace"),
                        )
                    )
                return LLMClient._response(job, content, calls, finish, tin, tout, latency, cached=False,
                                           reasoning=thought)

        message = ep.scrub(message)
        if kind is FailureKind.RATE_LIMITED:
            counters["rate_limited"] += 1
            breaker.on_alive()
            ra = _retry_after(headers, opts.max_retry_after_s)
            # no window growth for Retry-After (or one round trip): do not probe again at once
            limiter.on_overload(epoch, ra if ra is not None else ep.rtt)
            rl[0] += 1
            if rl[0] > opts.max_rate_limit_retries:
                return fail(job, kind, message, attempts, status)
            if ra is None:
                delay = self.client._backoff(min(rl[0], 6))
            else:  # a little jitter so the waiting requests do not return in one wave
                delay = ra * (1.0 + 0.1 * random.random())
        elif kind in (FailureKind.QUOTA, FailureKind.AUTH):
            breaker.on_failure(kind.value, message, fatal=True)
            return fail(job, kind, message, attempts, status)
        elif kind is FailureKind.HTTP_4XX:
            breaker.on_alive()
            return fail(job, kind, message, attempts, status)
        else:  # 5xx, timeout, connection, bad body
            breaker.on_failure(kind.value, message)
            rl[1] += 1
            if rl[1] >= opts.max_attempts:
                return fail(job, kind, message, attempts, status)
            delay = self.client._backoff(rl[1])
            ra = _retry_after(headers, opts.max_retry_after_s)
            if ra is not None:
                delay = max(delay, ra)
        return delay

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
        dead = [ep for ep in self.endpoints.values() if ep.breaker.is_open or ep.refused]
        if not dead:
            return None
        msg = "; ".join(
            f"LLM endpoint {ep.describe()} is unavailable: {ep.scrub(ep.breaker.reason)}"
            if ep.breaker.is_open
            else f"LLM endpoint {ep.describe()} was declared unavailable ({ep.scrub(ep.refused_reason)}) "
            f"and {ep.refused} requests were refused, though it answered again later"
            for ep in dead
        )
        return (
            msg + " -- check that the server runs and FUNREASON_LLM_BASE_URL[_<ROLE>] / _API_KEY. "
            "Responses received so far are cached; a rerun sends only the rest."
        )
