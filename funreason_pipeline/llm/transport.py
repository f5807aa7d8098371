"""One HTTP copy of a chat request through the official openai client, and reading its answer.

Why `AsyncOpenAI.post(..., cast_to=httpx2.Response)` and one `json.loads` (`parse_completion`): no SDK
param transform and no pydantic `ChatCompletion`, about half the CPU of `chat.completions.create`
(`with_raw_response` costs as much as `create`; docs/benchmarks.md P2).

Why aiohttp when installed (`openai.DefaultAioHttpClient`): another third less CPU than httpx2, whose
connection pool scans every connection on each request (quadratic in C: at C=256 it could not keep
up). Without aiohttp (or behind a proxy, which aiohttp here ignores) httpx2 is used and its pool is
split over several AsyncOpenAI instances of `pool_shard_size` connections.

Retries are not this module's: the SDK's are off (max_retries=0) and `post` only classifies what
happened (`Reply.kind`); `retry.py` decides what to do about it.
"""

from __future__ import annotations

import json
import math
import time
import urllib.request
from typing import Any, NamedTuple

import httpx2
import openai

from funreason_pipeline.llm.models import FailureKind, LLMRequest, ToolCall
from funreason_pipeline.llm.settings import ClientOptions, RoleSettings

__all__ = ["ROLE_HEADER", "HttpPool", "Reply", "parse_completion", "pick_backend", "post", "request_body",
           "request_options"]

ROLE_HEADER = "X-Funreason-Role"
_PLACEHOLDER_KEY = "not-set"  # local servers (vLLM, Ollama, ...) need no key; the SDK wants a string


class Reply(NamedTuple):
    """What one HTTP copy got: `kind` None = a 200 whose body `raw` is still to be parsed."""

    kind: FailureKind | None
    raw: bytes
    status: int | None
    headers: httpx2.Headers | None
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


class HttpPool:
    """The AsyncOpenAI client(s) of one endpoint, with room for `connections` open at once."""

    __slots__ = ("_rr", "backend", "clients")

    def __init__(self, url: str, key: str | None, concurrency: int, connections: int, opts: ClientOptions) -> None:
        self.backend = pick_backend(opts.http_backend)
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

    def client(self) -> openai.AsyncOpenAI:
        clients = self.clients
        if len(clients) == 1:
            return clients[0]
        self._rr = (self._rr + 1) % len(clients)
        return clients[self._rr]

    async def aclose(self) -> None:
        for c in self.clients:
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


async def post(client: openai.AsyncOpenAI, body: dict[str, Any], options: dict[str, Any], timeout_s: float) -> Reply:
    """One HTTP copy; never raises for endpoint trouble (cancellation passes through)."""
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
