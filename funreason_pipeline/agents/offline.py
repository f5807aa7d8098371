"""The offline backend: deterministic agents derived from the trajectory itself.

It exists so the pipeline runs anywhere (tests, CI, a first look); every row it makes carries
model = "offline". Real data needs a real model: see the README for pointing roles at an endpoint.
"""

from __future__ import annotations

import json
import random
from typing import Any

from funreason_pipeline.agents.advanced_tool import AdvancedTool, mentionable
from funreason_pipeline.matching.names import name_words
from funreason_pipeline.models import ToolCall, ToolSpec

OFFLINE = "offline"

_PERSONAS = [
    "I'm juggling a few things at work today.",
    "Quick one before my next meeting.",
    "My manager asked me to sort this out.",
    "Hope you can help me with something.",
    "I'm trying to get organised this afternoon.",
    "Following up on what we just did.",
    "I've been putting this off all week.",
    "Small favour needed.",
]
_OPENERS = ["Could you", "Can you", "Please", "I need you to", "Would you", "Help me"]
_CLOSERS = ["Thanks!", "Let me know how it goes.", "Appreciate it.", "", "Cheers.", "Keep it quick, please."]


def _words(name: str) -> str:
    """A name as plain words: lockDoors -> "lock doors" (matching's tokens singularize, which reads
    wrong in a sentence)."""
    return " ".join(name_words(name))


def _phrase(tool: str) -> str:
    return _words(tool.split(".")[-1])


def describe(tool: AdvancedTool, specs: dict[str, ToolSpec]) -> tuple[str, str]:
    """Offline tooling agent: a name and a description in user terms."""
    target = tool.steps[-1]
    what = specs[target].description.split("Tool description:")[-1].strip().rstrip(".")
    inputs = ", ".join(i.name for i in tool.inputs) or "nothing from the user"
    desc = f"{what[:1].upper()}{what[1:]}, working out everything else it needs on its own; takes {inputs}."
    return tool.name, desc


def _value_text(value: Any) -> str:
    records = [value] if isinstance(value, dict) else value if isinstance(value, list) else []
    if records and all(isinstance(r, dict) for r in records):
        # records read field by field, each value quoted: 'from "COBOL", to "Grace Hopper", relation
        # type "influenced"; from ...', not a run of words that loses which value is which
        return "; ".join(filter(None, (_record_text(r) for r in records)))
    parts = mentionable(value)
    if not parts:
        return json.dumps(value) if isinstance(value, bool) else ""
    return ", ".join(parts)


def _record_text(record: dict) -> str:
    fields = []
    for key, v in record.items():
        parts = mentionable(v)
        if parts:
            fields.append(f"{_words(key)} " + " and ".join(f'"{p}"' for p in parts))
    return ", ".join(fields)


def write_query(tool: AdvancedTool, specs: dict[str, ToolSpec], seed: int) -> str:
    """Offline querying agent: a templated request that names every user value, not the steps."""
    rng = random.Random(seed)
    actions = list(dict.fromkeys(tool.actions or tool.steps[-1:]))
    # every action the turn takes on the user's behalf is asked for, in order
    goal = ", then ".join(_phrase(a) for a in actions)
    details = []
    for inp in tool.inputs:
        text = _value_text(inp.value)
        if text:
            label = _words(inp.name)  # "create_ticket_title" when two calls take a title
            details.append(rng.choice([f"{label} {text}", f"{text} as the {label}", f"the {label} is {text}"]))
    if not details:
        # nothing to give: say which thing is meant by where it comes from, or the request is
        # unworkable ("Could you get ticket.")
        feeders = [s for s in tool.steps[:-1] if s not in tool.actions]
        if feeders:
            details.append(f"the one {_phrase(feeders[-1])} turns up")
    ask = f"{rng.choice(_OPENERS)} {goal.lower()}"
    if details:
        ask += " - " + "; ".join(details)
    parts = [rng.choice(_PERSONAS), ask.rstrip(".") + ".", rng.choice(_CLOSERS)]
    return " ".join(p for p in parts if p)


def write_reasoning(tool: AdvancedTool, calls: list[ToolCall], offset: int) -> list[str]:
    """Offline reasoning agent, one text per step: what this step calls and where each argument
    comes from (the request, a result shown above, an earlier turn). A step only refers to results
    that are already in the conversation."""
    by: dict[int, list[ToolCall]] = {}
    for c in calls:
        by.setdefault(c.step, []).append(c)
    steps = [by[k] for k in sorted(by)]
    tool_of = {offset + i: c.tool for i, c in enumerate(calls)}
    pos = {id(c): i for i, c in enumerate(calls)}
    texts = []
    for k, step in enumerate(steps):
        lines = []
        for call in step:
            bits = []
            for param in call.arguments:
                src = call.sources.get(param)
                if src is None:
                    bits.append(f"{param} comes from the request")
                elif src >= offset:
                    bits.append(f"{param} comes from the {tool_of.get(src, 'earlier')} result above")
                else:
                    bits.append(f"{param} comes from an earlier turn's result")
            why = "; ".join(bits) if bits else "it needs no arguments"
            lines.append(f"I call {call.tool} ({why}).")
        if k + 1 < len(steps):
            mine = {offset + pos[id(c)] for c in step}
            used = any(src in mine for later in steps[k + 1:] for c in later for src in c.sources.values())
            # a login, a cd, a pressed brake: the next call needs what it did, not what it said
            lines.append("I need its result before the next call." if used
                         else "The next call needs this done first.")
        else:
            lines.append(f"{calls[-1].tool} does what the user asked for.")
        texts.append("\n".join(lines))
    return texts


def critique(problems: list[str]) -> str:
    """Offline critic: name the kind of mismatch, never the answer."""
    kinds = sorted({p.split(":")[0] for p in problems})
    return ("The calls did not reach the expected outcome (" + ", ".join(kinds) + "). "
            "Re-check which tool produces each value you pass and whether every step the request needs was taken.")


def _said(result: Any, limit: int = 300) -> str:
    """A result in words, as a person would report it: "booking id 8358122, booking status yes",
    nested records counted ("booking history: 2 entries"), long text cut."""
    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "yes" if v else "no"
        text = str(v)
        return text if len(text) <= 80 else text[:77] + "..."

    def words(v: Any, depth: int = 0) -> str:
        if v is None:
            return "nothing to show"
        if isinstance(v, dict):
            if not v:
                return "none"
            if depth > 0 and (len(v) > 3 or any(isinstance(x, (dict, list)) for x in v.values())):
                return f"{len(v)} entr{'y' if len(v) == 1 else 'ies'}"
            if depth > 0:  # a small record inline: "message id: (new id: 1234)"
                return "(" + ", ".join(f"{_words(str(k)) or k}: {scalar(x)}" for k, x in v.items()) + ")"
            return ", ".join(f"{_words(str(k)) or k}: {words(x, depth + 1)}" for k, x in v.items())
        if isinstance(v, list):
            if not v:
                return "none"
            if all(not isinstance(x, (dict, list)) for x in v):
                return ", ".join(scalar(x) for x in v[:8]) + (f" and {len(v) - 8} more" if len(v) > 8 else "")
            if depth > 1:
                return f"{len(v)} item{'s' if len(v) != 1 else ''}"
            # records: the first few, each by its plain fields ("S-0049 (D-0190, 2026-06-22, 10:15)")
            shown = []
            for x in v[:3]:
                fields = [scalar(y) for y in (x.values() if isinstance(x, dict) else x)
                          if not isinstance(y, (dict, list))][:5]
                shown.append(f"{fields[0]} ({', '.join(fields[1:])})" if len(fields) > 1 else ", ".join(fields))
            more = f"; and {len(v) - 3} more" if len(v) > 3 else ""
            return f"{len(v)} - " + "; ".join(shown) + more
        return scalar(v)

    text = words(result)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_reply(tool: AdvancedTool, calls: list[ToolCall]) -> str:
    """Offline reply: what the turn did, from the results, in words: the requested action's
    outcome, and every other change the turn made on the way (a login, a folder it entered)."""
    target = calls[-1]
    verb = "is done" if target.changes_state else "came back"
    outcome = "" if target.result is None else f": {_said(target.result).rstrip('.')}"
    lines = [f"{_phrase(target.tool).capitalize()} {verb}{outcome}."]
    before = [c for c in calls[:-1] if c.changes_state]
    if before:
        lines.append("To get there I also ran " + "; ".join(
            _phrase(c.tool) + ("" if c.result is None else f" ({_said(c.result, 120)})") for c in before) + ".")
    return "\n".join(lines)
