"""Prompt budget: a prompt either fits the model's context window or the turn is rejected with a
reason. Nothing is cut silently (a JSON payload cut mid-way is a wrong prompt, not a short one).

The tool list is the one part that may shrink to fit: first whole, then without parameter
descriptions (names, types, enums and required fields stay: a call can still be written), then
only the tools of the turn's classes. If even that does not fit, `PromptTooLong`.
"""

from __future__ import annotations

import json
from typing import Any


class PromptTooLong(ValueError):
    """The request does not fit the role's prompt budget: a recorded rejection, `prompt_too_long`."""


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def payload(value: Any, budget_chars: int, what: str) -> str:
    """`value` as JSON text, or PromptTooLong when it alone exceeds the budget."""
    text = _dump(value)
    if len(text) > budget_chars:
        raise PromptTooLong(f"{what} is {len(text):,} characters; the prompt budget is {budget_chars:,}")
    return text


def _compact(fn: dict[str, Any]) -> dict[str, Any]:
    def strip(schema: Any) -> Any:
        if isinstance(schema, dict):
            return {k: strip(v) for k, v in schema.items() if k not in ("description", "title", "examples")}
        if isinstance(schema, list):
            return [strip(v) for v in schema]
        return schema

    return {"name": fn["name"], "description": (fn.get("description") or "")[:120],
            "parameters": strip(fn.get("parameters", {}))}


def fit_tool_list(functions: list[dict[str, Any]], budget_chars: int, keep: set[str] | None = None) -> tuple[str, str]:
    """(tool list JSON, how it was fitted: "full" | "compact" | "classes"). `keep`: the tools that
    stay when the list is cut down to the turn's classes (the caller names them)."""
    full = _dump(functions)
    if len(full) <= budget_chars:
        return full, "full"
    compact = [_compact(f) for f in functions]
    text = _dump(compact)
    if len(text) <= budget_chars:
        return text, "compact"
    if keep:
        mine = [f for f in compact if f["name"] in keep]
        text = _dump(mine)
        if len(text) <= budget_chars:
            return text, "classes"
    raise PromptTooLong(f"the tool list is {len(full):,} characters ({len(text):,} at its smallest); "
                        f"the prompt budget is {budget_chars:,}: raise FUNREASON_LLM_CONTEXT_TOKENS if the "
                        "model has a larger window, or split the toolset")


def message_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of a conversation: contents, and the calls of assistant messages (their names and
    arguments go to the model as text too)."""
    size = 0
    for m in messages:
        size += len(m.get("content") or "")
        for tc in m.get("tool_calls") or ():
            fn = tc.get("function") or {}
            size += len(fn.get("name") or "") + len(fn.get("arguments") or "")
    return size


def check_messages(messages: list[dict[str, Any]], budget_chars: int, what: str) -> None:
    size = message_chars(messages)
    if size > budget_chars:
        raise PromptTooLong(f"the {what} prompt is {size:,} characters; the prompt budget is {budget_chars:,}")
