"""Agents on a real endpoint: JSON answers parsed strictly, one repair retry, failures kept."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from funreason_pipeline.llm import LLMClient, LLMRequest

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.S)


@dataclass
class Answer:
    item_id: str
    value: BaseModel | None
    raw: str | None
    error: str | None
    model: str = ""


def parse_json_answer(text: str | None, model: type[BaseModel]) -> BaseModel:
    if not text:
        raise ValueError("empty answer")
    body = _FENCE.sub("", text.strip())
    start, end = body.find("{"), body.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    return model.model_validate(json.loads(body[start:end + 1]))


def ask(client: LLMClient, requests: list[LLMRequest], model: type[BaseModel]) -> tuple[list[Answer], Any]:
    """Send a batch; parse each answer; one repair round for unparsable ones."""
    batch = client.run(requests)
    stats = batch.stats
    answers: dict[str, Answer] = {}
    repairs: list[LLMRequest] = []
    by_id = {r.item_id: r for r in requests}
    for res in batch.results:
        if not res.ok:
            answers[res.item_id] = Answer(res.item_id, None, None, f"{res.kind}: {res.message}")
            continue
        try:
            answers[res.item_id] = Answer(res.item_id, parse_json_answer(res.content, model), res.content, None,
                                          res.model)
        except (ValueError, ValidationError) as exc:
            answers[res.item_id] = Answer(res.item_id, None, res.content, f"unparsable: {exc}"[:500], res.model)
            req = by_id[res.item_id]
            repairs.append(req.model_copy(update={"messages": req.messages + [
                {"role": "assistant", "content": res.content or ""},
                {"role": "user", "content": f"Your answer could not be parsed ({str(exc)[:200]}). "
                                            "Reply again with only the JSON object described."},
            ]}))
    if repairs:
        again = client.run(repairs)
        stats = stats.merge(again.stats)
        for res in again.results:
            if not res.ok:
                continue
            try:
                answers[res.item_id] = Answer(res.item_id, parse_json_answer(res.content, model), res.content,
                                              None, res.model)
            except (ValueError, ValidationError) as exc:
                answers[res.item_id] = Answer(res.item_id, None, res.content,
                                              f"unparsable after repair: {exc}"[:500], res.model)
    return [answers[r.item_id] for r in requests], stats


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
