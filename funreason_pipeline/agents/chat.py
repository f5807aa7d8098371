"""OpenAI chat messages for one turn: user -> assistant (reasoning + tool_calls) -> tool -> reply."""

from __future__ import annotations

import json
from typing import Any

from funreason_pipeline.models import ToolCall


def call_id(turn_index: int, position: int) -> str:
    """The id of a turn's call in the dialogue (the retry after an injected error adds "r")."""
    return f"call_{turn_index}_{position}"


def turn_messages(turn_index: int, query: str, reasoning: str | None, calls: list[ToolCall], reply: str,
                  error_injection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": query}]
    tool_calls = [
        {"id": call_id(turn_index, i), "type": "function",
         "function": {"name": c.tool, "arguments": json.dumps(c.arguments, ensure_ascii=False, sort_keys=True)}}
        for i, c in enumerate(calls)
    ]
    think = f"<think>\n{reasoning}\n</think>" if reasoning else ""
    if error_injection:
        # the first call fails (an injected error response), the assistant notices and calls again
        bad = error_injection
        msgs.append({"role": "assistant", "content": think, "tool_calls": [tool_calls[0]]})
        msgs.append({"role": "tool", "tool_call_id": tool_calls[0]["id"], "name": calls[0].tool,
                     "content": json.dumps(bad, ensure_ascii=False)})
        retry = dict(tool_calls[0], id=call_id(turn_index, 0) + "r")
        msgs.append({"role": "assistant", "content": "<think>\nThe tool returned an error that looks transient; "
                     "I will retry the same call.\n</think>", "tool_calls": [retry] + tool_calls[1:]})
        ids = [retry["id"]] + [t["id"] for t in tool_calls[1:]]
    else:
        msgs.append({"role": "assistant", "content": think, "tool_calls": tool_calls})
        ids = [t["id"] for t in tool_calls]
    for tool_call_id, c in zip(ids, calls):
        msgs.append({"role": "tool", "tool_call_id": tool_call_id, "name": c.tool,
                     "content": json.dumps(c.result, ensure_ascii=False, sort_keys=True)})
    msgs.append({"role": "assistant", "content": reply})
    return msgs
