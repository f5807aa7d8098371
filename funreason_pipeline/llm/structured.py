"""Structured outputs: parse each response with a per-role parser; up to two repair retries; then a failure.

A parser is a pydantic model class (the response content must be one JSON object of that schema; a
```json fence around it is tolerated) or a function `LLMResponse -> value` that raises ValueError (or
pydantic's ValidationError) when the response is unusable. Output cut at max_tokens
(`finish_reason == "length"`) is always a parse failure. Model output is parsed, never evaluated.

On a parse failure the request is sent once more with the raw assistant text appended and a user
message naming the error (the repair request has its own cache key, so reruns replay it from the
cache); a repair that fails to parse gets one more the same way (its conversation then holds both
answers). If the last repair fails too, the result keeps the raw text and the errors, so the caller
can write a rejection. Transport failures (LLMFailure) are not repaired: they keep their kind.

Why two repairs: a turn whose answer cannot be used ends its trajectory (its later turns are
rejected unasked), which costs far more than a request. Under R1's fault mix 1 answer in 11 is cut
off (`finish_reason=length`), so one repair still lost 0.8% of the calls (measured: 61 of 6,891 in
`bench/bench_tail.py`); a second one loses 0.07%.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from funreason_pipeline.llm.client import LLMClient, run_sync
from funreason_pipeline.llm.models import BatchResult, BatchStats, LLMFailure, LLMRequest, LLMResponse
from funreason_pipeline.llm.session import LLMSession
from funreason_pipeline.llm.settings import Role

__all__ = [
    "ParsedResult",
    "Parser",
    "StructuredBatch",
    "acall_structured",
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
    repaired: bool = False  # True if the value came from a repair retry
    repair_sent: bool = False  # a repair request was made (whatever came of it)
    repairs_sent: int = 0  # repair requests made: 0, 1 or 2
    attempts: int = 0  # LLM answers used: 0 (transport failure), 1, 2 or 3
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


async def acall_structured(session: LLMSession, req: LLMRequest, parser: Parser, repairs: int = 2) -> ParsedResult:
    """One request on an open session, parsed; up to `repairs` repair retries on parse failures."""
    res = await session.call(req)
    if isinstance(res, LLMFailure):
        return ParsedResult(item_id=req.item_id, ok=False, reason=res.kind.value, error=res.message, failure=res)
    errors: list[str] = []
    current = req
    for n in range(repairs + 1):
        ok, value, reason, error = parse_response(res, parser)
        if ok:
            return ParsedResult(item_id=req.item_id, ok=True, value=value, attempts=n + 1, response=res,
                                raw_text=_raw_text(res), repaired=n > 0, repair_sent=n > 0, repairs_sent=n)
        assert reason is not None and error is not None
        errors.append(error)
        if n == repairs:
            break
        current = repair_request(current, res, error, parser)
        nxt = await session.call(current)
        if isinstance(nxt, LLMFailure):
            return ParsedResult(item_id=req.item_id, ok=False, reason=nxt.kind.value,
                                error=f"repair request failed ({nxt.message}) after: {error}",
                                raw_text=_raw_text(res), attempts=n + 1, failure=nxt, response=res,
                                repair_sent=True, repairs_sent=n + 1)
        res = nxt
    earlier = f" (first answer: {errors[0]})" if len(errors) > 1 else ""
    return ParsedResult(item_id=req.item_id, ok=False, reason=reason, error=f"{errors[-1]}{earlier}",
                        raw_text=_raw_text(res), attempts=len(errors), response=res,
                        repair_sent=len(errors) > 1, repairs_sent=len(errors) - 1)


async def arun_structured(
    client: LLMClient, requests: Sequence[LLMRequest], parsers: Mapping[Role | str, Parser]
) -> StructuredBatch:
    """A batch on its own session: every item parsed (and repaired) as soon as it is answered."""
    for req in requests:
        _parser_for(parsers, req.role)  # a missing parser is the caller's mistake: fail before sending
    session = client.session()
    try:
        final = list(await asyncio.gather(
            *(acall_structured(session, r, _parser_for(parsers, r.role)) for r in requests)))
    finally:
        await session.aclose()
    stats = session.snapshot()
    stats.items = len(requests)  # items are counted once (repairs are requests, not items)
    if session.dead_message():  # the batch is only built when there is a dead endpoint to report
        session.raise_if_dead(BatchResult(results=[r.response if r.failure is None and r.response is not None
                                                   else r.failure for r in final], stats=stats))  # type: ignore[misc]
    reasons = Counter(r.reason for r in final if not r.ok)
    return StructuredBatch(
        results=final,
        stats=stats,
        repairs_sent=sum(r.repairs_sent for r in final),
        repaired_ok=sum(r.repaired for r in final),
        rejected_by_reason=dict(reasons),
    )


def run_structured(
    client: LLMClient, requests: Sequence[LLMRequest], parsers: Mapping[Role | str, Parser]
) -> StructuredBatch:
    """Blocking `arun_structured` on its own event loop (for Dagster assets)."""
    return run_sync(arun_structured(client, requests, parsers))
