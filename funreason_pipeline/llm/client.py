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
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

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

__all__ = ["ROLE_HEADER", "ClientOptions", "EndpointUnavailableError", "LLMClient", "run_sync"]

log = logging.getLogger(__name__)

T = TypeVar("T")
ROLE_HEADER = "X-Funreason-Role"
_PLACEHOLDER_KEY = "not-set"  # local servers (vLLM, Ollama, ...) need no key; the SDK wants a string


class ClientOptions(BaseModel):
    """Retry, rate-limit, breaker and cache knobs (defaults suit real endpoints; tests shorten them)."""

    max_attempts: int = Field(4, ge=1)  # tries for 5xx / timeout / connection / bad body
    max_rate_limit_retries: int = Field(30, ge=0)  # extra tries for 429/503
    backoff_base_s: float = 0.5
    backoff_max_s: float = 20.0
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
    indices: list[int]
    body: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class _Endpoint:
    __slots__ = (
        "_rr",
        "backend",
        "breaker",
        "clients",
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
        if self.backend == "aiohttp":
            shards = 1
            make_http = openai.DefaultAioHttpClient
        else:  # httpx2's pool scans every connection per request: shard it for large C
            shards = max(1, math.ceil(concurrency / opts.pool_shard_size))
            make_http = openai.DefaultAsyncHttpxClient
        per = math.ceil(concurrency / shards)
        self.clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=key or _PLACEHOLDER_KEY,
                max_retries=0,
                http_client=make_http(
                    limits=httpx2.Limits(max_connections=concurrency, max_keepalive_connections=per)
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

    # --- the batch ---------------------------------------------------------------------------------
    async def arun(self, requests: Sequence[LLMRequest]) -> BatchResult:
        t_start = time.perf_counter()
        opts = self.options
        stats = BatchStats(items=len(requests))
        results: list[LLMResponse | LLMFailure | None] = [None] * len(requests)

        jobs: dict[str, _Job] = {}
        for i, req in enumerate(requests):
            s = self.settings.role(req.role)
            if s.is_offline:
                raise ValueError(
                    f"role {s.role.value} is offline (no FUNREASON_LLM_BASE_URL[_{s.role.name}]); "
                    "use the offline backend for it"
                )
            h = request_hash(
                s.base_url,
                s.model,
                req.messages,
                req.tools,
                req.response_format,
                s.sampling(),
                req.prompt_version,
            )
            job = jobs.get(h)
            if job is None:
                jobs[h] = _Job(req, s, h, [i])
            else:
                job.indices.append(i)
        stats.unique_requests = len(jobs)

        # 1. cache hits: no HTTP
        if self.cache is not None and jobs:
            hits = await asyncio.to_thread(self._recover_and_lookup, list(jobs))
            for h, (body, latency) in hits.items():
                job = jobs[h]
                try:
                    content, calls, finish, tin, tout = parse_completion(body)
                except ValueError:
                    continue  # unreadable row: send again
                resp = self._response(job, content, calls, finish, tin, tout, latency or 0.0, cached=True)
                self._assign(results, job, resp, requests)
                stats.cache_hits += 1
                stats.cached_input_tokens += tin
                stats.cached_output_tokens += tout
                del jobs[h]

        # 2. the rest over HTTP, grouped by endpoint
        endpoints: dict[tuple[str, str | None], _Endpoint] = {}
        by_ep: dict[tuple[str, str | None], list[_Job]] = {}
        for job in jobs.values():
            s = job.settings
            key = s.api_key.get_secret_value() if s.api_key else None
            ek = (s.base_url or "", key)
            ep = endpoints.get(ek)
            if ep is None:
                ep = endpoints[ek] = _Endpoint(ek[0], key, self.settings.concurrency, opts)
                by_ep[ek] = []
            ep.roles.add(s.role.value)
            ep.models.add(s.model)
            by_ep[ek].append(job)
            job.body = self._body(job)
            job.options = {"timeout": s.timeout_s, "max_retries": 0}
            if opts.send_role_header:
                job.options["headers"] = {ROLE_HEADER: s.role.value}

        writer = None
        if self.cache is not None and jobs:
            writer = CacheWriter(
                self.cache, opts.cache_flush_interval_s, opts.cache_flush_max_rows, journal=opts.cache_journal
            )
            writer.start()
        counters: Counter[str] = Counter()
        gate = asyncio.Semaphore(opts.max_live_tasks)

        async def one(ep: _Endpoint, job: _Job) -> None:
            try:
                out = await self._execute(ep, job, writer, counters)
                self._assign(results, job, out, requests)
            finally:
                gate.release()

        try:
            tasks = []
            # interleave endpoints so that each one gets work from the start
            queues = [(endpoints[k], v) for k, v in by_ep.items()]
            for n in range(max((len(v) for _, v in queues), default=0)):
                for ep, lst in queues:
                    if n < len(lst):
                        await gate.acquire()
                        tasks.append(asyncio.ensure_future(one(ep, lst[n])))
            if tasks:
                await asyncio.gather(*tasks)
        finally:
            if writer is not None:
                await writer.close()
                stats.cache_flushes = writer.flushes
            for ep in endpoints.values():
                await ep.aclose()

        stats.sent = counters["sent"]
        stats.http_attempts = counters["attempts"]
        stats.retries = counters["attempts"] - counters["sent"]
        stats.rate_limited_responses = counters["rate_limited"]
        kinds: Counter[str] = Counter()
        for r in results:
            if isinstance(r, LLMResponse):
                stats.ok += 1
            elif isinstance(r, LLMFailure):
                stats.failed += 1
                kinds[r.kind.value] += 1
        stats.failures_by_kind = dict(kinds)
        stats.input_tokens = counters["input_tokens"]
        stats.output_tokens = counters["output_tokens"]
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
            dict(kinds),
            stats.wall_s,
        )
        # also when the breaker closed again before the end (a request in flight when it opened came
        # back fine): the requests it refused meanwhile are failures the caller must not take as final
        dead = [ep for ep in endpoints.values() if ep.breaker.is_open or ep.refused]
        if dead and opts.raise_on_circuit_open:
            msg = "; ".join(
                f"LLM endpoint {ep.describe()} is unavailable: {ep.scrub(ep.breaker.reason)}"
                if ep.breaker.is_open
                else f"LLM endpoint {ep.describe()} was declared unavailable ({ep.scrub(ep.refused_reason)}) "
                f"and {ep.refused} requests were refused, though it answered again later"
                for ep in dead
            )
            raise EndpointUnavailableError(
                msg + " -- check that the server runs and FUNREASON_LLM_BASE_URL[_<ROLE>] / _API_KEY. "
                "Responses received so far are cached; a rerun sends only the rest.",
                batch,
            )
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
    def _assign(
        results: list[Any], job: _Job, out: LLMResponse | LLMFailure, requests: Sequence[LLMRequest]
    ) -> None:
        first = True
        for i in job.indices:
            item_id = requests[i].item_id
            if first and item_id == out.item_id:
                results[i] = out
            else:
                results[i] = out.model_copy(update={"item_id": item_id})
            first = False

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
    ) -> LLMResponse:
        return LLMResponse.model_construct(
            item_id=job.req.item_id,
            request_hash=job.hash,
            role=job.settings.role,
            model=job.settings.model,
            prompt_version=job.req.prompt_version,
            content=content,
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

    async def _execute(
        self, ep: _Endpoint, job: _Job, writer: CacheWriter | None, counters: Counter[str]
    ) -> LLMResponse | LLMFailure:
        opts = self.options
        limiter, breaker = ep.limiter, ep.breaker
        attempts = tries = rl_tries = 0
        while True:
            admitted = breaker.allow()
            if not admitted:
                if not ep.refused:
                    ep.refused_reason = breaker.reason
                ep.refused += 1
                return self._fail(
                    job,
                    FailureKind.CIRCUIT_OPEN,
                    f"not sent: endpoint {ep.url} declared unavailable ({ep.scrub(breaker.reason)})",
                    attempts,
                )
            epoch = await limiter.acquire()
            if breaker.is_open and admitted != 2:  # opened while this request waited for a slot
                limiter.release()
                continue
            attempts += 1
            counters["attempts"] += 1
            if attempts == 1:
                counters["sent"] += 1
            status: int | None = None
            headers = None
            t0 = time.perf_counter()
            try:
                http = await ep.client().post(
                    "/chat/completions", cast_to=httpx2.Response, body=job.body, options=job.options
                )
                raw = http.content
                kind = None
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
            except Exception as exc:  # noqa: BLE001 - anything else the SDK/transport raises: recorded
                kind, message = FailureKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"
            finally:
                limiter.release()
            latency = time.perf_counter() - t0

            if kind is None:
                try:
                    content, calls, finish, tin, tout = parse_completion(raw)
                except ValueError as exc:
                    kind, message, status = FailureKind.BAD_RESPONSE, str(exc), 200
                else:
                    breaker.on_success()
                    limiter.on_success()
                    ep.rtt = latency if ep.rtt == 0.0 else 0.9 * ep.rtt + 0.1 * latency
                    counters["input_tokens"] += tin
                    counters["output_tokens"] += tout
                    if writer is not None:
                        writer.add(
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
                    return self._response(job, content, calls, finish, tin, tout, latency, cached=False)

            message = ep.scrub(message)
            if kind is FailureKind.RATE_LIMITED:
                counters["rate_limited"] += 1
                breaker.on_alive()
                ra = _retry_after(headers, opts.max_retry_after_s)
                # no window growth for Retry-After (or one round trip): do not probe again at once
                limiter.on_overload(epoch, ra if ra is not None else ep.rtt)
                rl_tries += 1
                if rl_tries > opts.max_rate_limit_retries:
                    return self._fail(job, kind, message, attempts, status)
                if ra is None:
                    delay = self._backoff(min(rl_tries, 6))
                else:  # a little jitter so the waiting requests do not return in one wave
                    delay = ra * (1.0 + 0.1 * random.random())
            elif kind in (FailureKind.QUOTA, FailureKind.AUTH):
                breaker.on_failure(kind.value, message, fatal=True)
                return self._fail(job, kind, message, attempts, status)
            elif kind is FailureKind.HTTP_4XX:
                breaker.on_alive()
                return self._fail(job, kind, message, attempts, status)
            else:  # 5xx, timeout, connection, bad body
                breaker.on_failure(kind.value, message)
                tries += 1
                if tries >= opts.max_attempts:
                    return self._fail(job, kind, message, attempts, status)
                delay = self._backoff(tries)
                ra = _retry_after(headers, opts.max_retry_after_s)
                if ra is not None:
                    delay = max(delay, ra)
            await asyncio.sleep(delay)
