"""Agents on a real endpoint: JSON answers parsed strictly, one repair retry, failures kept."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from funreason_pipeline.llm import LLMClient, LLMRequest
from funreason_pipeline.llm.structured import run_structured


@dataclass
class Answer:
    item_id: str
    value: BaseModel | None
    raw: str | None
    error: str | None
    model: str = ""


def ask(client: LLMClient, requests: list[LLMRequest], model: type[BaseModel]) -> tuple[list[Answer], Any]:
    """Send a batch and parse each answer into `model` (one repair retry: llm.structured)."""
    if not requests:
        return [], None
    batch = run_structured(client, requests, {requests[0].role: model})
    answers = []
    for r in batch.results:
        label = r.response.model if r.response is not None else ""
        error = None if r.ok else f"{r.reason}: {r.error}"
        answers.append(Answer(r.item_id, r.value if r.ok else None, r.raw_text, error, label))
    return answers, batch.stats


def merge_stats(a: Any, b: Any) -> Any:
    """Add up batch statistics (either may be None: an empty batch sends nothing)."""
    if a is None:
        return b
    return a if b is None else a.merge(b)


class ToolingAnswer(BaseModel):
    name: str
    description: str


class QueryAnswer(BaseModel):
    query: str


class CallAnswer(BaseModel):
    name: str
    arguments: dict[str, Any] = {}


class ReasoningAnswer(BaseModel):
    reasoning: str
    calls: list[CallAnswer]


class CritiqueAnswer(BaseModel):
    critique: str


class ReplyAnswer(BaseModel):
    reply: str
