"""Request, response, failure and stats models of the LLM layer."""

from __future__ import annotations

import json
from collections import Counter
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from funreason_pipeline.llm.settings import Role

__all__ = [
    "BatchResult",
    "BatchStats",
    "FailureKind",
    "LLMFailure",
    "LLMRequest",
    "LLMResponse",
    "LLMResult",
    "ToolCall",
]


class FailureKind(StrEnum):
    HTTP_5XX = "http_5xx"  # 500/502/504/... after the retries
    HTTP_4XX = "http_4xx"  # 400/404/422...: the request itself is wrong; not retried
    AUTH = "auth"  # 401/403: not retried, trips the circuit breaker
    RATE_LIMITED = "rate_limited"  # 429/503 after the rate-limit retries
    QUOTA = "quota_exceeded"  # 429 with code insufficient_quota: not retried
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    BAD_RESPONSE = "bad_response"  # HTTP 200 whose body is not a chat completion (malformed JSON)
    CIRCUIT_OPEN = "circuit_open"  # the endpoint was declared dead; not sent
    CLIENT_ERROR = "client_error"  # an unexpected exception in the SDK/transport (retried like 5xx)


class LLMRequest(BaseModel):
    """One chat request for a role. Sampling params come from the role's settings."""

    model_config = ConfigDict(frozen=True)

    role: Role
    item_id: str
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    response_format: dict[str, Any] | None = None
    prompt_version: str = ""


class ToolCall(BaseModel):
    id: str
    name: str
    arguments: str  # raw JSON string as the model produced it


class LLMResponse(BaseModel):
    """A complete response (usable or not: parsing is the structured layer's job)."""

    item_id: str
    request_hash: str
    role: Role
    model: str
    prompt_version: str = ""
    content: str | None = None
    # the chain of thought when the server returns it apart from the content (vLLM and SGLang with a
    # reasoning parser: `reasoning_content`; some servers: `reasoning`)
    reasoning: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cached: bool = False

    @property
    def ok(self) -> Literal[True]:
        return True


class LLMFailure(BaseModel):
    """A request that produced no complete response: the caller writes a rejection from it."""

    item_id: str
    request_hash: str
    role: Role
    kind: FailureKind
    message: str
    attempts: int = 0
    status_code: int | None = None

    @property
    def ok(self) -> Literal[False]:
        return False


LLMResult = LLMResponse | LLMFailure


class BatchStats(BaseModel):
    """What one batch did; `as_metadata()` gives plain values for Dagster asset metadata."""

    items: int = 0
    unique_requests: int = 0
    cache_hits: int = 0
    sent: int = 0  # unique requests that went over HTTP
    http_attempts: int = 0  # including retries
    retries: int = 0
    ok: int = 0
    failed: int = 0
    failures_by_kind: dict[str, int] = Field(default_factory=dict)
    rate_limited_responses: int = 0  # 429/503 answers seen (each one retried or failed)
    input_tokens: int = 0  # tokens of the requests sent in this batch
    output_tokens: int = 0
    cached_input_tokens: int = 0  # tokens of responses served from the cache
    cached_output_tokens: int = 0
    wall_s: float = 0.0
    cache_flushes: int = 0
    hedges: int = 0  # extra copies sent for requests slower than their role's hedge delay
    hedges_replaced: int = 0  # of those, cancelled to make way for a fresh copy (rolling hedges)
    max_in_flight: int = 0  # most HTTP attempts on the wire at once

    _MAXED = frozenset({"max_in_flight"})

    def merge(self, other: BatchStats) -> BatchStats:
        data = self.model_dump()
        for k, v in other.model_dump().items():
            if k == "failures_by_kind":
                data[k] = dict(Counter(data[k]) + Counter(v))
            elif k in self._MAXED:
                data[k] = max(data[k], v)
            else:
                data[k] = data[k] + v
        return BatchStats(**data)

    def as_metadata(self) -> dict[str, Any]:
        md: dict[str, Any] = self.model_dump(exclude={"failures_by_kind"})
        md["wall_s"] = round(self.wall_s, 3)
        md["failures_by_kind"] = json.dumps(self.failures_by_kind, sort_keys=True)
        return md


class BatchResult(BaseModel):
    """Results in input order (one per request) plus the batch's stats."""

    results: list[LLMResponse | LLMFailure]
    stats: BatchStats

    @property
    def responses(self) -> list[LLMResponse]:
        return [r for r in self.results if isinstance(r, LLMResponse)]

    @property
    def failures(self) -> list[LLMFailure]:
        return [r for r in self.results if isinstance(r, LLMFailure)]
