"""Steps of a turn in canonical (OpenAI chat) messages: what every export and figure calls a step.

A turn is ``user -> [assistant with tool_calls -> one tool message per call] x steps -> reply``; a
step is the set of calls the model emits at once, so each assistant message with ``tool_calls`` is
one step, except a *retry*: an assistant message whose first call repeats a call of the message
before it that came back as an error (Phase IV's injected error, ``agents/chat.py``). The retry
belongs to the failed call's step (the step ran once, with the retried call in place of the failed
one), so steps per turn and calls per step count what the model decided, not how often it asked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any


def _call_key(call: dict[str, Any]) -> tuple[str, str]:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass
    return str(fn.get("name")), json.dumps(args, sort_keys=True)


def _is_error(content: Any) -> bool:
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except json.JSONDecodeError:
            return False
    return isinstance(content, dict) and "error" in content


def turn_spans(messages: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """``[(start, end)]`` of each user turn: ``messages[start]`` is the user message."""
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    return list(zip(starts, [*starts[1:], len(messages)]))


def turn_steps(messages: Sequence[dict[str, Any]], start: int = 0, end: int | None = None) -> list[dict[str, Any]]:
    """Steps of the turn ``messages[start:end]``, in order.

    Each step is ``{"messages": [indices of its assistant messages], "calls": [the OpenAI tool_calls
    that ran, in order]}``; a call that failed and was retried is replaced by its retry.
    """
    end = len(messages) if end is None else end
    results = {m.get("tool_call_id"): m.get("content") for m in messages[start:end] if m.get("role") == "tool"}
    steps: list[dict[str, Any]] = []
    for i in range(start, end):
        m = messages[i]
        if m.get("role") != "assistant" or not m.get("tool_calls"):
            continue
        calls = list(m["tool_calls"])
        if steps:
            prev = steps[-1]
            failed = [c for c in prev["calls"] if _is_error(results.get(c.get("id")))]
            if failed and _call_key(calls[0]) in {_call_key(c) for c in failed}:
                # a retry: the failed call is replaced, the step stays one step
                retried = {_call_key(c) for c in calls}
                prev["calls"] = [c for c in prev["calls"] if not (c in failed and _call_key(c) in retried)] + calls
                prev["messages"].append(i)
                continue
        steps.append({"messages": [i], "calls": calls})
    return steps


def step_counts(messages: Sequence[dict[str, Any]]) -> list[list[int]]:
    """Per user turn of ``messages``: the number of calls of each of its steps (``[]``: no call)."""
    return [[len(s["calls"]) for s in turn_steps(messages, a, b)] for a, b in turn_spans(messages)]


def step_figures(turns: Sequence[Sequence[int]]) -> dict[str, Any]:
    """Steps per turn, calls per step and the share of multi-step turns over turns given as calls
    per step (``step_counts``); turns without any call are left out."""
    with_calls = [t for t in turns if t]
    n_steps = sum(len(t) for t in with_calls)
    hist: dict[str, int] = {}
    for t in with_calls:
        hist[str(len(t))] = hist.get(str(len(t)), 0) + 1
    return {
        "turns_with_calls": len(with_calls),
        "mean_steps_per_turn": round(n_steps / len(with_calls), 3) if with_calls else 0.0,
        "mean_calls_per_step": round(sum(sum(t) for t in with_calls) / n_steps, 3) if n_steps else 0.0,
        "multi_step_turn_share": round(sum(1 for t in with_calls if len(t) > 1) / len(with_calls), 3)
        if with_calls else 0.0,
        "turns_by_steps": dict(sorted(hist.items(), key=lambda kv: int(kv[0]))),
    }
