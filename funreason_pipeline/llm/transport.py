"""One HTTP copy of a chat request, and reading its answer.

Two senders, picked per endpoint by `pick_backend`:
- aiohttp (the default when installed): `AioHttpSender` posts the JSON body itself on one
  `aiohttp.ClientSession`, with the headers the official openai client would send (taken once from an
  `AsyncOpenAI` built with the same base URL and key: auth, User-Agent, X-Stainless-*, organization /
  project) and the same per-read timeouts as the SDK's aiohttp transport. Why not `AsyncOpenAI.post`:
  on the SDK path each request went through `FinalRequestOptions`, a URL parse, header merging, an
  `httpx2.Request`, httpx2's send / auth / redirect layers, the SDK's aiohttp transport (which builds
  the aiohttp request from the httpx2 one) and an `httpx2.Response` around the aiohttp one: ~2 ms of
  CPU per request, ~80% of the client's (docs/benchmarks.md, P1/P2 profile), for nothing a chat
  completion needs. The sender does one `json.dumps`, one aiohttp request on a kept-alive connection
  and one read. HTTP errors are reported like the SDK's `APIStatusError` (message, `code`), and
  transport errors classified as the SDK path classified them.
- httpx2 (no aiohttp, `http_backend="httpx"`, or behind a proxy, which aiohttp here ignores):
  `AsyncOpenAI.post(..., cast_to=httpx2.Response)` (no param transform and no pydantic
  `ChatCompletion`: about half the CPU of `chat.completions.create`), its pool split over several
  AsyncOpenAI instances of `pool_shard_size` connections (httpx2's pool scans every connection per
  request, quadratic in C).
Either way the answer is read with one `json.loads` (`parse_completion`).

Retries are not this module's: the SDK's are off (max_retries=0) and `post` only classifies what
happened (`Reply.kind`); `retry.py` decides what to do about it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx2
import openai

from funreason_pipeline.llm.models import FailureKind, LLMRequest, ToolCall
from funreason_pipeline.llm.settings import ClientOptions, RoleSettings

__all__ = ["ROLE_HEADER", "AioHttpSender", "HttpPool", "Reply", "parse_completion", "pick_backend", "post",
           "request_body", "request_options"]

ROLE_HEADER = "X-Funreason-Role"
_PLACEHOLDER_KEY = "not-set"  # local servers (vLLM, Ollama, ...) need no key; the SDK wants a string


class Reply(NamedTuple):
    """What one HTTP copy got: `kind` None = a 200 whose body `raw` is still to be parsed."""

    kind: FailureKind | None
    raw: bytes
    status: int | None
    headers: Mapping[str, str] | None  # case-insensitive (httpx2.Headers or aiohttp's CIMultiDictProxy)
    message: str
    latency: float


def pick_backend(choice: str) -> str:
    """ClientOptions.http_backend -> "aiohttp" or "httpx" (see the module doc for why)."""
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


# (base URL, key) -> (the SDK's headers, the chat completions URL): an AsyncOpenAI costs ~60 ms of CPU
# to build (it loads a TLS context), so it is built once per endpoint and process, not per session
_SDK_SHAPES: dict[tuple[str, str | None], tuple[dict[str, str], str]] = {}
_TLS: list[Any] = []  # the SDK's TLS context (certifi, SSL_CERT_FILE), built once, only for https


def _sdk_shape(url: str, key: str | None) -> tuple[dict[str, str], str]:
    """The headers the SDK sends with every request (defaults, platform, organization / project, auth)
    and the URL it posts chat completions to, read from an AsyncOpenAI with this base URL and key."""
    shape = _SDK_SHAPES.get((url, key))
    if shape is None:
        sdk = openai.AsyncOpenAI(base_url=url, api_key=key or _PLACEHOLDER_KEY, max_retries=0)
        merged = {**sdk.default_headers, **sdk.auth_headers}
        headers = {k: v for k, v in merged.items() if isinstance(v, str)}  # drops the SDK's Omit() markers
        shape = _SDK_SHAPES[(url, key)] = (headers, str(sdk.base_url).rstrip("/") + "/chat/completions")
    return shape


def _tls_context() -> Any:
    if not _TLS:
        _TLS.append(httpx2.create_ssl_context(verify=True, trust_env=True))
    return _TLS[0]


def _status_error(status: int, raw: bytes) -> tuple[str, str | None]:
    """(message, code) of an HTTP error answer, as `openai.APIStatusError` words them: "Error code: N"
    plus the body's `error.message`; `code` from `error.code`."""
    message = f"Error code: {status}"
    code = None
    try:
        body = json.loads(raw)
    except ValueError:
        return message, None
    error = body.get("error", body) if isinstance(body, dict) else None
    if isinstance(error, dict):
        msg = error.get("message")
        if isinstance(msg, str) and msg:
            message += f" - {msg}"
        c = error.get("code")
        code = str(c) if c is not None else None
    return message, code


def _status_kind(status: int, code: str | None) -> FailureKind:
    if status == 429 or status == 503:
        return FailureKind.QUOTA if code == "insufficient_quota" else FailureKind.RATE_LIMITED
    if status in (401, 403):
        return FailureKind.AUTH
    if status >= 500:
        return FailureKind.HTTP_5XX
    return FailureKind.HTTP_4XX


class AioHttpSender:
    """Posts chat requests of one endpoint on one `aiohttp.ClientSession` (created on first use, in the
    running loop), with the openai client's headers built once (see the module doc)."""

    __slots__ = ("_connections", "_headers", "_session", "_timeouts", "url")

    def __init__(self, url: str, key: str | None, connections: int) -> None:
        self._headers, self.url = _sdk_shape(url, key)
        self._connections = connections
        self._session: Any = None
        self._timeouts: dict[float, Any] = {}

    def _open(self) -> Any:
        import aiohttp
        import yarl

        # as openai.DefaultAioHttpClient's transport: the SDK's TLS context (https only), a pool of
        # `connections` (C + the hedge budget), idle connections kept 5 s (httpx2.Limits' default)
        connector = aiohttp.TCPConnector(
            limit=self._connections,
            keepalive_timeout=5.0,
            ssl=_tls_context() if self.url.startswith("https:") else True,
        )
        # the SDK's headers as the session's defaults: a request adds only its own (the role header)
        self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        self.url = yarl.URL(self.url)  # parsed once, not per request
        return self._session

    def _timeout(self, timeout_s: float) -> Any:
        t = self._timeouts.get(timeout_s)
        if t is None:
            import aiohttp

            # what the SDK's aiohttp transport makes of `timeout=timeout_s`: per connect and per read
            t = self._timeouts[timeout_s] = aiohttp.ClientTimeout(
                sock_connect=timeout_s, sock_read=timeout_s, connect=timeout_s
            )
        return t

    async def send(self, body: dict[str, Any], options: Mapping[str, Any], timeout_s: float) -> Reply:
        """One HTTP copy; never raises for endpoint trouble (cancellation passes through)."""
        session = self._session or self._open()
        data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        headers = options.get("headers")
        t0 = time.perf_counter()
        try:
            async with session.post(
                self.url, data=data, headers=headers, timeout=self._timeout(timeout_s), allow_redirects=False
            ) as resp:
                raw = await resp.read()
                status = resp.status
                if status < 300:
                    return Reply(None, raw, None, None, "", time.perf_counter() - t0)
                message, code = _status_error(status, raw)
                return Reply(_status_kind(status, code), b"", status, resp.headers,
                             f"HTTP {status}: {message}", time.perf_counter() - t0)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - classified; anything else is this request's failure
            kind, message = _aiohttp_kind(exc, timeout_s)
            return Reply(kind, b"", None, None, message, time.perf_counter() - t0)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _causes(exc: BaseException | None) -> list[BaseException]:
    """The exception and what caused it, at most 10 deep."""
    chain: list[BaseException] = []
    while exc is not None and len(chain) < 10:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def _timeout_or_refused(chain: list[BaseException], timeout_s: float) -> tuple[FailureKind, str] | None:
    """A timeout anywhere in the chain, else an OSError (refused, unreachable, reset), else None."""
    if any(isinstance(c, TimeoutError) for c in chain):
        return FailureKind.TIMEOUT, f"no response within {timeout_s:g}s"
    os_errors = [c for c in chain if isinstance(c, OSError)]
    if os_errors:
        return FailureKind.CONNECTION, f"{type(os_errors[0]).__name__}: {os_errors[0]}"
    return None


def _aiohttp_kind(exc: BaseException, timeout_s: float) -> tuple[FailureKind, str]:
    """A transport error of the aiohttp sender, classified as the SDK path classified it (`post` and
    `_transport_kind` after the SDK's aiohttp transport mapped it): a timeout anywhere in the chain ->
    timeout; an OSError (refused, unreachable, reset) -> connection; a connection the server dropped
    (which the SDK's transport turned into a ConnectTimeout) -> timeout; other aiohttp errors (a broken
    body) -> connection; anything else -> client_error."""
    import aiohttp

    found = _timeout_or_refused(_causes(exc), timeout_s)
    if found:
        return found
    if isinstance(exc, aiohttp.ClientConnectionError):
        return FailureKind.TIMEOUT, f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ClientError):
        return FailureKind.CONNECTION, f"{type(exc).__name__}: {exc}"
    return FailureKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"


class HttpPool:
    """The sender(s) of one endpoint, with room for `connections` open at once: one `AioHttpSender`, or
    (httpx2) AsyncOpenAI client shards."""

    __slots__ = ("_rr", "backend", "clients")

    def __init__(self, url: str, key: str | None, concurrency: int, connections: int, opts: ClientOptions) -> None:
        self.backend = pick_backend(opts.http_backend)
        self._rr = 0
        if self.backend == "aiohttp":
            self.clients: list[Any] = [AioHttpSender(url, key, connections)]
            return
        # httpx2's pool scans every connection per request: shard it for large C
        shards = max(1, math.ceil(concurrency / opts.pool_shard_size))
        per = math.ceil(connections / shards)
        self.clients = [
            openai.AsyncOpenAI(
                base_url=url,
                api_key=key or _PLACEHOLDER_KEY,
                max_retries=0,
                http_client=openai.DefaultAsyncHttpxClient(
                    limits=httpx2.Limits(max_connections=connections, max_keepalive_connections=per)
                ),
            )
            for _ in range(shards)
        ]

    def client(self) -> Any:
        """An `AioHttpSender` or an `AsyncOpenAI` (anything with the SDK's `post`): give it to `post`."""
        clients = self.clients
        if len(clients) == 1:
            return clients[0]
        self._rr = (self._rr + 1) % len(clients)
        return clients[self._rr]

    async def aclose(self) -> None:
        for c in self.clients:
            if isinstance(c, AioHttpSender):
                await c.aclose()
            else:
                await c.close()


def request_body(s: RoleSettings, req: LLMRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"model": s.model, "messages": req.messages, **s.sampling()}
    if req.tools:
        body["tools"] = req.tools
    if req.response_format:
        body["response_format"] = req.response_format
    return body


def request_options(s: RoleSettings, role_header: bool) -> dict[str, Any]:
    """The SDK's per-request options: the role's timeout, no SDK retries, and (for the test server,
    which scripts answers per role) the role header."""
    options: dict[str, Any] = {"timeout": s.timeout_s, "max_retries": 0}
    if role_header:
        options["headers"] = {ROLE_HEADER: s.role.value}
    return options


async def post(client: Any, body: dict[str, Any], options: dict[str, Any], timeout_s: float) -> Reply:
    """One HTTP copy through `client` (an `AioHttpSender`, or the SDK's `AsyncOpenAI.post`); never raises
    for endpoint trouble (cancellation passes through)."""
    if type(client) is AioHttpSender:
        return await client.send(body, options, timeout_s)
    status: int | None = None
    headers = None
    raw = b""
    message = ""
    kind: FailureKind | None = None
    t0 = time.perf_counter()
    try:
        http = await client.post("/chat/completions", cast_to=httpx2.Response, body=body, options=options)
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
        kind, message = _transport_kind(exc, timeout_s)
    except Exception as exc:  # noqa: BLE001 - any other error is this request's failure, with its type
        kind, message = FailureKind.CLIENT_ERROR, f"{type(exc).__name__}: {exc}"
    return Reply(kind, raw, status, headers, message, time.perf_counter() - t0)


def _transport_kind(exc: openai.APIConnectionError, timeout_s: float) -> tuple[FailureKind, str]:
    """Timeout or connection failure, read from the cause chain: the SDK's aiohttp transport maps a
    refused connection to a ConnectTimeout, so the exception type alone is not to be trusted."""
    chain = _causes(exc.__cause__ or exc.__context__)
    found = _timeout_or_refused(chain, timeout_s)
    if found:
        return found
    if isinstance(exc, openai.APITimeoutError):
        return FailureKind.TIMEOUT, f"no response within {timeout_s:g}s"
    c = chain[0] if chain else exc
    return FailureKind.CONNECTION, f"{type(c).__name__}: {c}"


def parse_completion(body: bytes | str) -> tuple[str | None, list[ToolCall], str | None, int, int, str | None]:
    """(content, tool_calls, finish_reason, input_tokens, output_tokens, reasoning) of a chat completion body.

    Raises ValueError if the body is not a chat completion. Plain `json.loads`, no SDK objects.
    """
    try:
        data = json.loads(body)
        choice = data["choices"][0]
        msg = choice["message"]
        content = msg.get("content")
        calls = []
        for tc in msg.get("tool_calls") or ():
            fn = tc["function"]
            args = fn.get("arguments")
            calls.append(
                ToolCall.model_construct(
                    id=tc.get("id") or "",
                    name=fn["name"],
                    arguments=args if isinstance(args, str) else json.dumps(args),
                )
            )
        usage = data.get("usage") or {}
        reasoning = msg.get("reasoning_content") or msg.get("reasoning")
        return (
            content if content is None or isinstance(content, str) else json.dumps(content),
            calls,
            choice.get("finish_reason"),
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
            reasoning if isinstance(reasoning, str) and reasoning else None,
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a chat completion: {type(exc).__name__}: {exc}") from None
