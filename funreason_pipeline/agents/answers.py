"""What each agent role answers on a real endpoint, as the JSON models its answers are parsed into
(strictly, with one repair retry: llm/structured.py)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


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
