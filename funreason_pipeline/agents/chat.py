"""OpenAI chat messages for one turn, step by step, as an agent loop runs it:
user -> [assistant (reasoning + the step's tool_calls) -> one tool message per call] x steps -> reply.

A step holds the calls a model emits at once; each later step is written after the results of the
earlier ones are in the conversation, so no call shows a value the model could not have seen."""

from __future__ import annotations

import json
from typing import Any

from funreason_pipeline.models import ToolCall

RETRY_THOUGHT = "The tool returned an error that looks transient; I will retry the same call."


def call_id(turn_index: int, position: int) -> str:
    """The id of a turn's call in the dialogue (position counts over the whole turn; the retry after
    an injected error adds "r")."""
    return f"call_{turn_index}_{position}"


def group_steps(calls: list[ToolCall], reasoning: list[str] | str | None) -> list[tuple[str | None, list[ToolCall]]]:
    """(reasoning, calls) per step from calls that carry their `step`; `reasoning` is one text per
    step, or one text for the first step (older rows without step reasoning)."""
    by: dict[int, list[ToolCall]] = {}
    for c in calls:
        by.setdefault(c.step, []).append(c)
    groups = [by[k] for k in sorted(by)]
    texts = reasoning if isinstance(reasoning, list) else [reasoning] if reasoning else []
    return [(texts[i] if i < len(texts) else None, g) for i, g in enumerate(groups)]


def _think(text: str | None) -> str:
    return f"<think>\n{text}\n</think>" if text else ""


def _call(turn_index: int, position: int, c: ToolCall) -> dict[str, Any]:
    return {"id": call_id(turn_index, position), "type": "function",
            "function": {"name": c.tool, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}


def _result(tool_call_id: str, c: ToolCall, content: Any) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": tool_call_id, "name": c.tool,
            "content": json.dumps(content, ensure_ascii=False)}  # the environment's key order, as BFCL shows it


def turn_messages(turn_index: int, query: str, steps: list[tuple[str | None, list[ToolCall]]], reply: str,
                  error_injection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """`steps`: (reasoning, calls) per step. With `error_injection`, the turn's first call gets that
    error as its result; the assistant notices and calls it again (with the rest of its step)."""
    msgs: list[dict[str, Any]] = [{"role": "user", "content": query}]
    position = 0
    for k, (reasoning, calls) in enumerate(steps):
        tool_calls = [_call(turn_index, position + i, c) for i, c in enumerate(calls)]
        if k == 0 and error_injection and calls:
            msgs.append({"role": "assistant", "content": _think(reasoning), "tool_calls": [tool_calls[0]]})
            msgs.append(_result(tool_calls[0]["id"], calls[0], error_injection))
            retry = dict(tool_calls[0], id=tool_calls[0]["id"] + "r")
            tool_calls = [retry] + tool_calls[1:]
            msgs.append({"role": "assistant", "content": _think(RETRY_THOUGHT), "tool_calls": tool_calls})
        else:
            msgs.append({"role": "assistant", "content": _think(reasoning), "tool_calls": tool_calls})
        msgs += [_result(tc["id"], c, c.result) for tc, c in zip(tool_calls, calls)]
        position += len(calls)
    msgs.append({"role": "assistant", "content": reply})
    return msgs
