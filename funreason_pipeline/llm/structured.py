"""Structured outputs: parse each response with a per-role parser; one repair retry; then a failure.

A parser is a pydantic model class (the response content must be one JSON object of that schema; a
```json fence around it is tolerated) or a function `LLMResponse -> value` that raises ValueError (or
pydantic's ValidationError) when the response is unusable. Output cut at max_tokens
(`finish_reason == "length"`) is always a parse failure. Model output is parsed, never evaluated.

On a parse failure the request is sent once more with the raw assistant text appended and a user
message naming the error (the repair request has its own cache key, so reruns replay it from the
cache). If the repair fails too, the result keeps the raw text and the error, so the caller can write
a rejection. Transport failures (LLMFailure) are not repaired: they keep their kind.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from funreason_pipeline.llm.client import LLMClient, run_sync
from funreason_pipeline.llm.models import BatchStats, LLMFailure, LLMRequest, LLMResponse
from funreason_pipeline.llm.settings import Role

__all__ = [
    "ParsedResult",
    "Parser",
    "StructuredBatch",
    "arun_structured",
    "parse_response",
    "repair_request",
    "run_structured",
]

Parser = type[BaseModel] | Callable[[LLMResponse], Any]

REPAIR_PROMPT = (
    "Your previous reply could not be used: {error}\n"
    "Reply again with only the corrected output{schema}. No explanations, no code fences."
)
_MAX_ERROR_CHARS = 1500


class ParsedResult(BaseModel):
    """One item's outcome. `ok` with `value`, or not ok with `reason`, `error` and `raw_text`."""

    item_id: str
    ok: bool
    value: Any = None
    reason: str | None = None  # "parse_error" | "truncated" | a transport failure kind ("http_5xx", ...)
    error: str | None = None
    raw_text: str | None = None  # the last raw answer (content, or the tool calls as JSON)
    repaired: bool = False  # True if the value came from the repair retry
    attempts: int = 0  # LLM answers used: 0 (transport failure), 1 or 2
    response: LLMResponse | None = None  # the last complete response
    failure: LLMFailure | None = None  # the transport failure, if that is how it ended

    def rejection(self, stage: str | None = None) -> dict[str, str]:
        """A row for `storage.replace_rejections` (item_id, reason, detail)."""
        detail = json.dumps(
            {"error": self.error, "raw_text": self.raw_text, "stage": stage}, ensure_ascii=False
        )
        return {"item_id": self.item_id, "reason": f"llm_{self.reason}", "detail": detail}


class StructuredBatch(BaseModel):
    """Per item: `results` (input order), accepted/rejected. `stats` counts requests of both rounds
    (first + repair), so its ok/failed/sent include the repair requests; `items` is the item count."""

    results: list[ParsedResult]
    stats: BatchStats
    repairs_sent: int = 0
    repaired_ok: int = 0
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)

    def as_metadata(self) -> dict[str, Any]:
        md = self.stats.as_metadata()
        md.update(
            accepted=sum(r.ok for r in self.results),
            rejected=sum(not r.ok for r in self.results),
            repairs_sent=self.repairs_sent,
            repaired_ok=self.repaired_ok,
            rejected_by_reason=json.dumps(self.rejected_by_reason, sort_keys=True),
        )
        return md


def _raw_text(resp: LLMResponse) -> str:
    if resp.content:
        return resp.content
    if resp.tool_calls:
        return json.dumps(
            [{"name": c.name, "arguments": c.arguments} for c in resp.tool_calls], ensure_ascii=False
        )
    return ""


def _strip_fence(text: str) -> str:
    t = text.strip()
    if t.startswith("```"):
        first_nl = t.find("\n")
        t = t[first_nl + 1 :] if first_nl >= 0 else t[3:]
        if t.rstrip().endswith("```"):
            t = t.rstrip()[:-3]
    return t.strip()


def parse_response(resp: LLMResponse, parser: Parser) -> tuple[bool, Any, str | None, str | None]:
    """(ok, value, reason, error). Never raises for bad model output."""
    if resp.finish_reason == "length":
        return False, None, "truncated", "the output was cut off at the token limit (finish_reason=length)"
    try:
        if isinstance(parser, type) and issubclass(parser, BaseModel):
            text = _strip_fence(resp.content or "")
            if not text:
                return False, None, "parse_error", "empty reply: expected one JSON object"
            return True, parser.model_validate_json(text), None, None
        return True, parser(resp), None, None
    except ValidationError as exc:
        errs = exc.errors(include_url=False, include_input=False)
        msg = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'reply'}: {e['msg']}" for e in errs)
        return False, None, "parse_error", _short(f"{exc.title}: {msg}")
    except (ValueError, TypeError, KeyError) as exc:
        return False, None, "parse_error", _short(f"{type(exc).__name__}: {exc}")


def _short(s: str) -> str:
    return s if len(s) <= _MAX_ERROR_CHARS else s[: _MAX_ERROR_CHARS - 3] + "..."


def repair_request(
    req: LLMRequest, resp: LLMResponse, error: str, parser: Parser | None = None
) -> LLMRequest:
    """The original conversation + the raw answer (as plain assistant text) + a user message with the error."""
    schema = ""
    if isinstance(parser, type) and issubclass(parser, BaseModel):
        schema = ": one JSON object matching this JSON schema " + json.dumps(
            parser.model_json_schema(), separators=(",", ":")
        )
    messages = [
        *req.messages,
        {"role": "assistant", "content": _raw_text(resp)},
        {"role": "user", "content": REPAIR_PROMPT.format(error=error, schema=schema)},
    ]
    return req.model_copy(update={"messages": messages})


def _parser_for(parsers: Mapping[Role | str, Parser], role: Role) -> Parser:
    p = parsers.get(role)
    if p is None:
        p = parsers.get(role.value)
    if p is None:
        raise KeyError(f"no parser for role {role.value}")
    return p


async def arun_structured(
    client: LLMClient, requests: Sequence[LLMRequest], parsers: Mapping[Role | str, Parser]
) -> StructuredBatch:
    first = await client.arun(requests)
    results: list[ParsedResult | None] = [None] * len(requests)
    repair_idx: list[int] = []
    repair_reqs: list[LLMRequest] = []
    first_errors: dict[int, tuple[str, str]] = {}
    for i, (req, res) in enumerate(zip(requests, first.results, strict=True)):
        if isinstance(res, LLMFailure):
            results[i] = ParsedResult(
                item_id=req.item_id, ok=False, reason=res.kind.value, error=res.message, failure=res
            )
            continue
        parser = _parser_for(parsers, req.role)
        ok, value, reason, error = parse_response(res, parser)
        if ok:
            results[i] = ParsedResult(
                item_id=req.item_id, ok=True, value=value, attempts=1, response=res, raw_text=_raw_text(res)
            )
        else:
            assert reason is not None and error is not None
            first_errors[i] = (reason, error)
            repair_idx.append(i)
            repair_reqs.append(repair_request(req, res, error, parser))

    stats = first.stats
    repaired_ok = 0
    if repair_reqs:
        second = await client.arun(repair_reqs)
        stats = stats.merge(second.stats)
        stats.items = first.stats.items  # items are counted once
        for i, res in zip(repair_idx, second.results, strict=True):
            req = requests[i]
            _prev_reason, prev_error = first_errors[i]
            if isinstance(res, LLMFailure):
                results[i] = ParsedResult(
                    item_id=req.item_id,
                    ok=False,
                    reason=res.kind.value,
                    error=f"repair request failed ({res.message}) after: {prev_error}",
                    raw_text=_raw_text(first.results[i]),
                    attempts=1,
                    failure=res,  # type: ignore[arg-type]
                    response=first.results[i],  # type: ignore[arg-type]
                )
                continue
            ok, value, reason, error = parse_response(res, _parser_for(parsers, req.role))
            if ok:
                repaired_ok += 1
                results[i] = ParsedResult(
                    item_id=req.item_id,
                    ok=True,
                    value=value,
                    repaired=True,
                    attempts=2,
                    response=res,
                    raw_text=_raw_text(res),
                )
            else:
                results[i] = ParsedResult(
                    item_id=req.item_id,
                    ok=False,
                    reason=reason,
                    error=f"{error} (first answer: {prev_error})",
                    raw_text=_raw_text(res),
                    attempts=2,
                    response=res,
                )
    final = [r for r in results if r is not None]
    assert len(final) == len(requests), "every item ends as accepted or rejected"
    reasons = Counter(r.reason for r in final if not r.ok)
    return StructuredBatch(
        results=final,
        stats=stats,
        repairs_sent=len(repair_reqs),
        repaired_ok=repaired_ok,
        rejected_by_reason=dict(reasons),
    )


def run_structured(
    client: LLMClient, requests: Sequence[LLMRequest], parsers: Mapping[Role | str, Parser]
) -> StructuredBatch:
    """Blocking `arun_structured` on its own event loop (for Dagster assets)."""
    return run_sync(arun_structured(client, requests, parsers))
