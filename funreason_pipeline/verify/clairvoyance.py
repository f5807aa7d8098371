"""Clairvoyance gate: no call may use a value that the model could only know from a result it has not
seen yet (a result of a call in the same assistant message, or later).

A sample in the old merged shape (one assistant message with `book_appointment(...)` and
`check_in(appointment_id="A-0004")`, where "A-0004" is what book_appointment returns) teaches a
model to guess results; in the step shape the check_in is a later step, after the result is shown.

A value counts (is *telling*) when chance cannot explain its coincidence with a result:

* strings of at least 3 characters (after stripping): ids, names, paths. Shorter strings ("a",
  "on", "@x") match by accident inside any result text;
* numbers with at least 3 digits (123, 45.99, 0.125; an integral float is read as the int):
  small numbers (1, 2, 50, 0.5) are ordinary argument values (counts, percentages, fan speeds)
  and appear in results by chance;
* never booleans or None (only two or one values exist).

A telling value of a call in assistant message *i* is clairvoyant when it does not occur before
message *i* (system prompt, user queries, earlier assistant text and calls, earlier results) nor in
the tool schemas (enums, defaults, examples), and does occur in a result of message *i* or later,
unless that result is an echo: the call that returned it, or a call run before it from message *i*
on, was given the value (`post(text=X)` -> `{"text": X}`; `create_ticket(description=X)` then
`get_user_tickets()` listing X: the model wrote X, no result told it). The message's own reasoning does not count as "before": a value
first written in the reasoning that chose the calls is just as clairvoyant.

Limit: a result of a call run *after* the using call (later in the same message, or a later step)
is always read as an echo, because the using call may have written the value into the state that
result shows; so the gate catches what executed data can show, a value revealed by a call that ran
before the using call in the same assistant message: the merged-step shape.

Pure (no Dagster): `clairvoyant_calls(messages, tools)` lists the findings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MIN_STRING_CHARS = 3
MIN_NUMBER_DIGITS = 3


@dataclass(frozen=True)
class Finding:
    message_index: int  # the assistant message whose call uses the value
    call: str  # the tool name
    parameter: str  # where in its arguments ("appointment_id", "items[0].sku")
    value: Any
    source_call: str  # the call whose result first shows the value
    source_message: int  # the assistant message that made that call

    def detail(self) -> str:
        return (f"{self.call}({self.parameter}={self.value!r}) in assistant message {self.message_index} uses "
                f"{self.value!r}, which first appears in the result of {self.source_call} "
                f"(called in assistant message {self.source_message})")


def _json(text: Any) -> Any:
    if isinstance(text, str):
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    return text


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, value


def _number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return repr(value)


def telling(value: Any) -> bool:
    """Whether `value` is specific enough that finding it in a result is not chance (module doc)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str):
        return len(value.strip()) >= MIN_STRING_CHARS
    if isinstance(value, (int, float)):
        return sum(ch.isdigit() for ch in _number_text(value)) >= MIN_NUMBER_DIGITS
    return False


def _occurs(value: Any, text: str) -> bool:
    """`value` in `text`: a string as a substring, a number as a whole number (12 is not in 123)."""
    if isinstance(value, str):
        return value.strip() in text
    forms = {_number_text(value), repr(value)}
    return any(re.search(rf"(?<![\d.]){re.escape(f)}(?!\d|\.\d)", text) for f in forms)


def _texts(value: Any) -> list[str]:
    """Every text a JSON-ish value holds: its leaves as text and its JSON rendering."""
    value = _json(value)
    out = [json.dumps(value, ensure_ascii=False)] if not isinstance(value, str) else [value]
    for _, v in _leaves(value):
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out.append(_number_text(v))  # 123.0 in JSON is the number 123
    return out


def _call_args(call: Mapping[str, Any]) -> Any:
    return _json((call.get("function") or {}).get("arguments")) or {}


def clairvoyant_calls(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] = ()
                      ) -> list[Finding]:
    """Every call argument in `messages` (canonical OpenAI chat) that is clairvoyant (module doc)."""
    results = {m.get("tool_call_id"): m.get("content") for m in messages if m.get("role") == "tool"}
    # every call in execution order (message order, then list order): (message index, call)
    order: list[tuple[int, Mapping[str, Any]]] = [(i, c) for i, m in enumerate(messages)
                                                  for c in m.get("tool_calls") or []]
    position = {c.get("id"): p for p, (_, c) in enumerate(order)}
    # everything before the current message as one text; "\x00" keeps a value from matching across
    # two pieces
    seen = json.dumps(list(tools), ensure_ascii=False)
    findings: list[Finding] = []
    for i, m in enumerate(messages):
        calls = m.get("tool_calls") or [] if m.get("role") == "assistant" else []
        for c in calls:
            name = (c.get("function") or {}).get("name", "?")
            for param, value in _leaves(_call_args(c)):
                if not telling(value) or _occurs(value, seen):
                    continue
                for cid, content in results.items():
                    p = position.get(cid)
                    if p is None or order[p][0] < i:
                        continue  # results of earlier messages are in `seen` already
                    src_i, src = order[p]
                    if any(_occurs(value, t) for j, e in order[: p + 1] if j >= i for t in _texts(_call_args(e))):
                        continue  # a call run before it (or itself) was given the value: an echo
                    if any(_occurs(value, t) for t in _texts(content)):
                        findings.append(Finding(i, name, param, value,
                                                (src.get("function") or {}).get("name", "?"), src_i))
                        break
        # this message is "before" the next one: its text and its calls' arguments
        pieces = _texts(m["content"]) if m.get("content") else []
        for c in m.get("tool_calls") or []:
            pieces += _texts(_call_args(c))
        seen = "\x00".join([seen, *pieces])
    return findings
