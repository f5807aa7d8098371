#!/usr/bin/env python3
"""Scan a day's exports the way a trainer would read them, independently of the pipeline.

Usage: ``python scripts/scan_exports.py <exports dir> [--json] [--examples N]``

``<exports dir>`` is a day's export (``data/exports/<day>/``) or one toolset's export under it. If
the directory holds ``openai.jsonl`` etc. itself, only those files are read; otherwise every
directory below it that holds them is read (so pass the day directory, not ``data/exports``, or
per-toolset copies are counted twice).

This script deliberately imports nothing from ``funreason_pipeline``: it re-reads the files with
the standard library (plus pyarrow for the Parquet files) so that a bug in the pipeline's own
checkers or renderers cannot hide the same bug here.

Files read (whichever exist)
----------------------------
* ``openai.jsonl``      ``{"messages", "tools"}``: one record per sample (dialogue prefix up to
  the trained turn). Assistant ``tool_calls[].function.arguments`` may be an object or JSON text.
* ``trl_prompt_completion.jsonl`` ``{"prompt", "completion", "tools"}``: the same, split at the turn.
* ``sharegpt.jsonl``    ``{"conversations": [{"from", "value"}], "system", "tools"}``: one record per
  dialogue (every turn trained); ``function_call`` values are ``<think>..</think>`` + a JSON list of
  ``{"name", "arguments"}``; ``observation`` values are one result or a JSON list of results.
* ``bfcl_prompting.jsonl`` ``{"messages", "train_from"}``: system prompt listing the tools as JSON,
  assistant steps ``<think>..</think>\\n\\n[f(a=1), g()]`` (parsed with ``ast``, never evaluated),
  tool results as ``tool`` messages (one per step holding a JSON list, or one per call with a name).
* ``samples.parquet``   canonical rows (``sample_id``, ``dialogue_id``, ``messages``/``tools`` JSON
  text, ``train_from``); same order as the three per-sample JSONL files, which carry no ids, so the
  toolset of a JSONL record is read from the parquet row of the same position.
* ``rl.parquet``        only its ``extra_info.dialogue_id -> extra_info.toolset`` map is used.

The toolset of a record: its own ``toolset`` field if any, else ``rl.parquet``'s map of its dialogue,
else the directory name when a per-toolset directory is scanned, else ``?``.

Turn shapes
-----------
Both the old shape (user -> ONE assistant message with all calls -> tool results -> reply) and the
step shape (user -> [assistant{<think>, tool_calls} -> one tool message per call] x steps -> reply,
with ``"weight": 1`` on the trained turn's assistant messages and ``0`` before) are read the same
way: a turn is everything from a user message to the next one; a *step* is an assistant message
with tool calls; results are matched to calls by ``tool_call_id``, else by position.

Which turns are analysed: per-sample files (openai, trl, bfcl, samples.parquet) analyse only the
sample's trained turn (its last turn; everything before is context); ``sharegpt.jsonl`` (one record
per dialogue, all turns trained) analyses every turn. So a dialogue's turn is counted once per
format.

Values
------
A *salient value* is a leaf of a JSON value (argument, result) that is a string of length >= 3
(after stripping whitespace) or a number that is not a small integer: a non-integer, or |n| >= 10.
Booleans, ``None`` and short strings never count (they occur everywhere by chance). "Value v occurs
in text T" means: for a string, ``v in T`` (substring); for a number, one of its spellings
(``12``, ``12.0``, ``12.5``) occurs in T not glued to other digits. The text of a message is its
content plus the leaves of its calls' arguments and its results, so a value is found whether it
was rendered as JSON, Python literal or prose.

Metrics (counts, and shares of the stated denominator)
------------------------------------------------------
1. clairvoyant: a call's argument holds a salient value that occurs nowhere before the call's
   assistant message (system prompt, tools' schemas, earlier messages including earlier results),
   but occurs in a result of a call of the same assistant message or a later one: the model would
   have emitted a value it could not have seen yet. Counted: calls, and records with such a call.
   In the old shape, every data-dependent call after the first is clairvoyant by construction.
2. steps: steps per turn (assistant messages with tool calls), calls per step, share of turns with
   >= 2 steps (of turns with a call).
3. loss marking: openai rows with an assistant message lacking ``weight``, rows with no
   ``weight: 1`` message, rows with ``weight: 1`` on an earlier turn's message; trl records whose
   completion holds a ``tool`` message (a tool result among the trained tokens) and those messages'
   characters.
4. side effects: the turn's last call is taken as the requested action. A call that is not last, is
   a write (a name token in WRITE_VERBS, none in NAVIGATION), did not fail, and whose result's
   salient values no later call of the turn uses, and that the user's message does not name (every
   word of the tool's name starts a word of the request: "lock door, then start engine" asks for
   lockDoors), is a side effect nobody asked for. Turns, calls. Counted apart: all such unused
   writes, asked for or not (a folder made to move a file into, the doors locked to start the car).
5. dead reads: a call that is not last, is not a write, not navigation/auth (cd, login..., which
   act through state), did not fail, whose result's salient values no later call of the turn uses.
6. repeated calls: the same (name, arguments) twice in a turn, a retry after a failed result not
   counted (counted apart as retries). Turns, extra calls.
7. one value in two parameters: a call with the same salient value in two of its parameters.
8. failure passed as success: a result that reports failure (an ``error`` key with a non-empty
   value at any depth, lists included; a ``*_status``/``status``/``success``/``ok`` key that is
   ``false`` or says failed/error, except a ``*_status``/``status`` key in the answer of a call whose
   name asks for a status, e.g. ``get_login_status``; or a plain string result saying "not found", "error", "not
   authenticated", "failed", "invalid", "denied") that no later step of the turn follows with a call
   of the same tool (a retry or repair), in a turn not marked as error injection (record fields
   ``injected_errors`` / ``error_tool_response``, when exported). Turns; failed results; repaired.
9. user knows the future: a salient value of a result of the turn that occurs in the turn's user
   query, occurs nowhere before the user query (system, tools, earlier turns), and whose first use as
   an argument in the turn is a call after the one that returned it (in call order, so it works for
   the old shape too): a user who stated it would let the model use it at once; here the model could
   only have taken it from the result. Values the turn returns but never uses are not flagged (the
   user may state a value the result merely echoes). Strict variant: an id-like
   token of the query (``A-0004``, 5+ digits, a letter/digit token of 8+ characters) that first
   appears in the turn's result of a create/book/register-like call.
10. format: for parameters whose description (or name, for email) states a format
    (YYYY-MM-DDTHH:MM:SS, YYYY-MM-DD, MM/YYYY, MM/YY, HH:MM:SS, HH:MM, email), the share of the
    argument values (string leaves) that match it.
11. bfcl_prompting.jsonl only: tool messages, those without ``name`` (BFCL's prompting handlers add
    one ``tool`` message per call named by the call text, e.g. ``cd(folder='x')``), those whose name
    is not one of the preceding step's calls; results not rendered the way BFCL renders an execution
    result (a str as is, a dict as ``json.dumps``, anything else as Python ``str()``: so a JSON list
    or ``true``/``null`` outside a dict is not BFCL-style); and in the system prompt's function docs,
    JSON-schema types ``object``/``number`` where BFCL's own docs say ``dict``/``float``.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FILES = {
    "openai": "openai.jsonl",
    "trl": "trl_prompt_completion.jsonl",
    "sharegpt": "sharegpt.jsonl",
    "bfcl": "bfcl_prompting.jsonl",
    "parquet": "samples.parquet",
}
RL_FILES = ("rl.parquet", "rl/rl.parquet")
ALL = "ALL"

# Name tokens of a tool that changes state (metric 4). A name is split on _ . - and camelCase.
WRITE_VERBS = {
    "create", "add", "post", "send", "delete", "remove", "cancel", "update", "edit", "set", "move", "mv",
    "rm", "rmdir", "cp", "touch", "mkdir", "book", "buy", "sell", "place", "close", "resolve", "follow",
    "unfollow", "retweet", "comment", "transfer", "register", "prescribe", "write", "reserve", "submit",
    "pay", "purchase", "approve", "assign", "upload", "rename", "archive", "mute", "block", "reply",
    "share", "schedule", "refund", "revoke", "grant", "enable", "disable", "lock", "unlock", "fill",
    "activate", "deactivate", "change", "modify", "insert", "append", "clear", "reset", "withdraw",
    "deposit", "contact", "invite", "mark", "start", "stop", "open", "file", "make", "echo", "toggle",
}
# Session / navigation calls: they act through state, not through returned values (metrics 4, 5).
NAVIGATION = {"login", "logout", "authenticate", "cd", "log", "signin", "signout", "auth"}
# Calls that mint a new id (metric 9, strict variant).
CREATE_VERBS = {"create", "add", "book", "register", "post", "reserve", "open", "place", "submit", "make",
                "schedule", "issue", "generate", "new", "buy", "purchase", "order", "file", "prescribe"}
FAIL_TEXT = re.compile(r"not found|error|not authenticated|failed|invalid|denied|does not exist|no such",
                       re.IGNORECASE)
ID_TOKEN = re.compile(r"\b(?:[A-Za-z]{1,6}-\d{2,}[A-Za-z0-9-]*|\d{5,}|(?=[A-Za-z0-9_]*\d)(?=[A-Za-z0-9_]*[A-Za-z])"
                      r"[A-Za-z0-9_]{8,})\b")
# (label, pattern in the description, full-match pattern of a value); most specific first.
FORMATS = [
    ("YYYY-MM-DDTHH:MM:SS", re.compile(r"YYYY-MM-DDTHH:MM(:SS)?"), re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?")),
    ("YYYY-MM-DD HH:MM", re.compile(r"YYYY-MM-DD HH:MM"), re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(:\d{2})?")),
    ("YYYY-MM-DD", re.compile(r"YYYY-MM-DD"), re.compile(r"\d{4}-\d{2}-\d{2}")),
    ("MM/YYYY", re.compile(r"MM/YYYY"), re.compile(r"\d{2}/\d{4}")),
    ("MM/YY", re.compile(r"MM/YY\b"), re.compile(r"\d{2}/\d{2}")),
    ("HH:MM:SS", re.compile(r"HH:MM:SS"), re.compile(r"\d{2}:\d{2}:\d{2}")),
    ("HH:MM", re.compile(r"HH:MM\b"), re.compile(r"\d{1,2}:\d{2}")),
    ("email", re.compile(r"e-?mail address", re.IGNORECASE), re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")),
]


# --------------------------------------------------------------------------------------------------
# Values
# --------------------------------------------------------------------------------------------------
def leaves(value: Any) -> Iterator[Any]:
    """The scalar leaves of a JSON-like value (dict values, list items), depth first."""
    if isinstance(value, dict):
        for v in value.values():
            yield from leaves(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from leaves(v)
    else:
        yield value


def salient(x: Any) -> bool:
    """A string of length >= 3, or a number that is not a small integer (see the module docstring)."""
    if isinstance(x, bool) or x is None:
        return False
    if isinstance(x, str):
        return len(x.strip()) >= 3
    if isinstance(x, int):
        return abs(x) >= 10
    if isinstance(x, float):
        return not x.is_integer() or abs(x) >= 10  # nan/inf are not integers
    return False


def salient_leaves(value: Any) -> list[Any]:
    return [x for x in leaves(value) if salient(x)]


def _spellings(x: float) -> list[str]:
    if isinstance(x, float) and x.is_integer():
        return [str(int(x)), repr(x)]
    return [repr(x)]


def occurs(x: Any, text: str) -> bool:
    """Whether salient value ``x`` occurs in ``text`` (substring; numbers not glued to digits)."""
    if isinstance(x, str):
        return x.strip() in text
    return any(re.search(r"(?<![\d.])" + re.escape(s) + r"(?![\d]|\.\d)", text) for s in _spellings(x))


def key(x: Any) -> str:
    """A hashable identity of a value (numbers 12 and 12.0 are one value)."""
    if isinstance(x, float) and x.is_integer():
        x = int(x)
    return json.dumps(x, sort_keys=True, ensure_ascii=False)


def parse_value(text: Any) -> Any:
    """Tool result text -> value: JSON, else a Python literal, else the text itself."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def value_text(value: Any) -> str:
    """A searchable text of a value: its leaves (and dict keys) joined by NUL."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, w in v.items():
                parts.append(str(k))
                walk(w)
        elif isinstance(v, (list, tuple)):
            for w in v:
                walk(w)
        elif v is not None:
            parts.append(str(v))

    walk(value)
    return "\x00".join(parts)


def name_tokens(name: str) -> list[str]:
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", name.lower()) if t]


def is_navigation(name: str) -> bool:
    return any(t in NAVIGATION for t in name_tokens(name))


def is_write(name: str) -> bool:
    toks = name_tokens(name)
    return not is_navigation(name) and any(t in WRITE_VERBS for t in toks)


def asked_for(name: str, query: str) -> bool:
    """Whether the user's request names the action: every word of the tool's name (its first four
    letters, so "lock doors" matches lockDoors and "registering" register) starts a word of the query."""
    words = re.findall(r"[a-z0-9]+", query.lower())
    toks = [t for t in name_tokens(name) if len(t) >= 2]
    return bool(toks) and all(any(w.startswith(t[:4]) for w in words) for t in toks)


def is_create(name: str) -> bool:
    return any(t in CREATE_VERBS for t in name_tokens(name))


def failure(value: Any, status_query: bool = False) -> bool:
    """Whether a tool result reports a failure (metric 8's rule). ``status_query``: the call asks for
    a status (``get_login_status``), so a ``*_status: false`` in its result is the answer, not a failure."""
    if isinstance(value, str):
        return bool(FAIL_TEXT.search(value)) and len(value) < 300
    if isinstance(value, dict):
        for k, v in value.items():
            lk = str(k).lower()
            if lk == "error" and v not in (None, False, "", [], {}):
                return True
            if ((lk.endswith("_status") and not status_query) or lk in ("success", "ok")
                    or (lk == "status" and not status_query)) and (
                v is False or (isinstance(v, str) and re.search(r"fail|error|denied", v, re.IGNORECASE))):
                return True
            if isinstance(v, (dict, list)) and failure_nested(v, status_query):
                return True
        return False
    if isinstance(value, list):
        return any(failure_nested(v, status_query) for v in value)
    return False


def failure_nested(value: Any, status_query: bool = False) -> bool:
    """Below the top level only keys count (a string deep in a listing saying "error" is data)."""
    return not isinstance(value, str) and failure(value, status_query)


def call_failed(c: Call) -> bool:
    return c.has_result and failure(c.result, "status" in name_tokens(c.name))


# --------------------------------------------------------------------------------------------------
# A normalised conversation
# --------------------------------------------------------------------------------------------------
@dataclass
class Call:
    name: str
    args: dict[str, Any]
    id: str | None
    msg: int  # index of the assistant message holding it
    result: Any = None
    has_result: bool = False
    result_msg: int | None = None  # index of the tool message holding its result


@dataclass
class Msg:
    role: str  # system | user | assistant | tool
    text: str = ""  # content as shown (reasoning included)
    calls: list[Call] = field(default_factory=list)
    tool_name: str | None = None
    tool_call_id: str | None = None
    weight: Any = None
    has_weight: bool = False
    raw_content: Any = None
    list_rendering: bool = False  # a lone tool message holding the JSON list of its step's results

    def blob(self) -> str:
        """Everything a reader of this message sees, as searchable text."""
        parts = [self.text]
        for c in self.calls:
            parts += [c.name, value_text(c.args)]
        if self.role == "tool":
            parts.append(value_text(parse_value(self.text)))
        return "\x00".join(parts)


@dataclass
class Record:
    fmt: str
    index: int
    toolset: str
    msgs: list[Msg]
    tools_text: str  # tools' schemas as text (empty when the system prompt holds them)
    tools: list[dict[str, Any]]  # plain function dicts {name, description, parameters}
    analyse_from: int  # first user message index whose turn is analysed
    raw: dict[str, Any]
    injected_ids: set[str] = field(default_factory=set)
    injected_flag: bool = False


def _args(arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError:
            return {"__unparsed__": arguments}
    return arguments if isinstance(arguments, dict) else {"__value__": arguments}


def _plain_functions(tools: Any) -> list[dict[str, Any]]:
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            return []
    out = []
    for t in tools or []:
        if isinstance(t, dict):
            out.append(t["function"] if isinstance(t.get("function"), dict) else t)
    return out


def openai_msgs(messages: list[dict[str, Any]]) -> list[Msg]:
    out = []
    for m in messages:
        content = m.get("content")
        msg = Msg(role=m.get("role", "?"), text=content if isinstance(content, str) else json.dumps(content),
                  weight=m.get("weight"), has_weight="weight" in m, raw_content=content,
                  tool_name=m.get("name"), tool_call_id=m.get("tool_call_id"))
        if content is None:
            msg.text = ""
        for c in m.get("tool_calls") or []:
            fn = c.get("function", c)
            msg.calls.append(Call(name=fn.get("name", "?"), args=_args(fn.get("arguments")), id=c.get("id"),
                                  msg=len(out)))
        out.append(msg)
    return out


def split_think(text: str) -> tuple[str, str]:
    """``<think>R</think> rest`` -> (``<think>R</think>``, ``rest``)."""
    s = text.lstrip()
    if s.startswith("<think>") and "</think>" in s:
        end = s.index("</think>") + len("</think>")
        return s[:end], s[end:].strip()
    return "", text.strip()


def parse_python_calls(text: str) -> list[tuple[str, dict[str, Any]]] | None:
    """``[f(a=1), m.g()]`` -> [(name, args)]; None when the text is not a call list. Parse only."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    body = tree.body
    nodes = list(body.elts) if isinstance(body, (ast.List, ast.Tuple)) else [body]
    if not nodes:
        return None
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return None
        try:
            name = ast.unparse(node.func)
            args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg}
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
        calls.append((name, args))
    return calls


def link_results(msgs: list[Msg]) -> None:
    """Attach results to calls: by tool_call_id, else by position; a lone unnamed tool message whose
    content is a list of as many items as the step has calls holds one result per call (BFCL/ShareGPT
    old rendering)."""
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if m.role != "assistant" or not m.calls:
            i += 1
            continue
        j = i + 1
        tools = []
        while j < len(msgs) and msgs[j].role == "tool":
            tools.append(j)
            j += 1
        by_id = {c.id: c for c in m.calls if c.id}
        if (len(tools) == 1 and msgs[tools[0]].tool_name is None and msgs[tools[0]].tool_call_id is None
                and m.calls and msgs[tools[0]].list_rendering):
            value = parse_value(msgs[tools[0]].text)
            if isinstance(value, list) and len(value) == len(m.calls):
                for c, v in zip(m.calls, value):
                    c.result, c.has_result, c.result_msg = v, True, tools[0]
                i = j
                continue
        for pos, t in enumerate(tools):
            tm = msgs[t]
            c = by_id.get(tm.tool_call_id) if tm.tool_call_id else None
            if c is None and pos < len(m.calls):
                c = m.calls[pos]
            if c is not None and not c.has_result:
                c.result, c.has_result, c.result_msg = parse_value(tm.text), True, t
        i = j


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------
def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_parquet(path: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def last_user(msgs: list[Msg]) -> int:
    users = [i for i, m in enumerate(msgs) if m.role == "user"]
    return users[-1] if users else len(msgs)


def records_of(fmt: str, rows: list[dict[str, Any]], toolset_of: list[str]) -> Iterator[Record]:
    """Normalise the rows of one file; ``toolset_of[i]`` is the toolset of row i."""
    for i, r in enumerate(rows):
        ts = r.get("toolset") or (toolset_of[i] if i < len(toolset_of) else "?")
        injected = r.get("injected_errors")
        if isinstance(injected, str):
            injected = parse_value(injected)
        inj_ids = set(injected) if isinstance(injected, dict) else set()
        inj_flag = bool(r.get("error_tool_response"))
        if fmt in ("openai", "parquet", "trl"):
            if fmt == "trl":
                messages = list(r.get("prompt") or []) + list(r.get("completion") or [])
            else:
                messages = r.get("messages")
                if isinstance(messages, str):
                    messages = json.loads(messages)
            msgs = openai_msgs(messages)
            link_results(msgs)
            funcs = _plain_functions(r.get("tools"))
            if fmt == "trl":
                start = len(r.get("prompt") or []) - 1
            elif fmt == "parquet" and isinstance(r.get("train_from"), int):
                start = r["train_from"] - 1
            else:
                start = last_user(msgs)
            yield Record(fmt, i, ts, msgs, json.dumps(funcs, ensure_ascii=False), funcs, start, r, inj_ids, inj_flag)
        elif fmt == "sharegpt":
            msgs = [Msg(role="system", text=r.get("system") or "")]
            for turn in r.get("conversations") or []:
                role, value = turn.get("from"), turn.get("value") or ""
                if role == "human":
                    msgs.append(Msg(role="user", text=value))
                elif role == "gpt":
                    msgs.append(Msg(role="assistant", text=value))
                elif role == "function_call":
                    think, body = split_think(value)
                    m = Msg(role="assistant", text=think)
                    calls = parse_value(body)
                    if isinstance(calls, dict):
                        calls = [calls]
                    for c in calls if isinstance(calls, list) else []:
                        if isinstance(c, dict):
                            m.calls.append(Call(name=str(c.get("name")), args=_args(c.get("arguments")), id=None,
                                                msg=len(msgs)))
                    msgs.append(m)
                elif role == "observation":
                    prev = msgs[-1] if msgs else None
                    # several calls in the step: the observation is a JSON list of their results
                    msgs.append(Msg(role="tool", text=value, list_rendering=bool(
                        prev and prev.role == "assistant" and len(prev.calls) > 1)))
            link_results(msgs)
            funcs = _plain_functions(r.get("tools"))
            first = next((k for k, m in enumerate(msgs) if m.role == "user"), len(msgs))
            yield Record(fmt, i, ts, msgs, json.dumps(funcs, ensure_ascii=False), funcs, first, r, inj_ids, inj_flag)
        elif fmt == "bfcl":
            msgs = []
            for m in r.get("messages") or []:
                role, content = m.get("role"), m.get("content") or ""
                if role == "assistant":
                    think, body = split_think(content)
                    parsed = parse_python_calls(body) if body.startswith("[") else None
                    if parsed:
                        msg = Msg(role="assistant", text=think, raw_content=content)
                        msg.calls = [Call(name=n, args=a, id=None, msg=len(msgs)) for n, a in parsed]
                    else:
                        msg = Msg(role="assistant", text=content, raw_content=content)
                    msgs.append(msg)
                else:
                    msgs.append(Msg(role=role or "?", text=content, tool_name=m.get("name"), raw_content=content,
                                    list_rendering=role == "tool" and "name" not in m))
            link_results(msgs)
            funcs = bfcl_functions(msgs[0].text if msgs and msgs[0].role == "system" else "")
            tf = r.get("train_from")
            start = tf - 1 if isinstance(tf, int) and 0 < tf <= len(msgs) else last_user(msgs)
            yield Record(fmt, i, ts, msgs, "", funcs, start, r, inj_ids, inj_flag)


def bfcl_functions(system: str) -> list[dict[str, Any]]:
    """The JSON function list embedded in a BFCL prompting system prompt (first JSON array found)."""
    dec = json.JSONDecoder()
    for m in re.finditer(r"\[\s*\{", system):
        try:
            value, _ = dec.raw_decode(system[m.start():])
        except json.JSONDecodeError:
            continue
        if isinstance(value, list) and all(isinstance(f, dict) and "name" in f for f in value):
            return value
    return []


# --------------------------------------------------------------------------------------------------
# Analysis
# --------------------------------------------------------------------------------------------------
@dataclass
class Turn:
    user: int  # index of the user message
    end: int  # index after the turn's last message
    steps: list[int]  # indices of assistant messages with calls
    calls: list[Call]


def turns_of(msgs: list[Msg], start: int) -> list[Turn]:
    users = [i for i, m in enumerate(msgs) if m.role == "user" and i >= start]
    out = []
    for k, u in enumerate(users):
        end = users[k + 1] if k + 1 < len(users) else len(msgs)
        steps = [i for i in range(u + 1, end) if msgs[i].role == "assistant" and msgs[i].calls]
        out.append(Turn(u, end, steps, [c for s in steps for c in msgs[s].calls]))
    return out


class Stats:
    """Counters per (format, toolset); ``ex`` keeps a few examples per metric."""

    def __init__(self, examples: int) -> None:
        self.c: dict[tuple[str, str], Counter] = defaultdict(Counter)
        self.ex: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.max_ex = examples

    def add(self, fmt: str, ts: str, name: str, n: float = 1) -> None:
        if n:
            self.c[(fmt, ts)][name] += n
            self.c[(fmt, ALL)][name] += n

    def example(self, fmt: str, name: str, text: str) -> None:
        lst = self.ex[(fmt, name)]
        if len(lst) < self.max_ex:
            lst.append(text[:300])


def uses_value(x: Any, later_calls: Iterable[Call]) -> bool:
    k = key(x)
    for c in later_calls:
        for a in leaves(c.args):
            if key(a) == k or (isinstance(x, str) and isinstance(a, str) and len(a) >= 3 and x.strip() in a):
                return True
    return False


def param_formats(funcs: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    out = {}
    for f in funcs:
        props = ((f.get("parameters") or {}).get("properties") or {}) if isinstance(f, dict) else {}
        for pname, spec in props.items():
            desc = str((spec or {}).get("description") or "") if isinstance(spec, dict) else ""
            for label, in_desc, _ in FORMATS:
                if in_desc.search(desc) or (label == "email" and "email" in pname.lower()
                                            and (spec or {}).get("type") in ("string", None)):
                    out[(str(f.get("name")), pname)] = label
                    break
    return out


FORMAT_RE = {label: rx for label, _, rx in FORMATS}


def analyse(rec: Record, st: Stats) -> None:
    f, ts, msgs = rec.fmt, rec.toolset, rec.msgs
    st.add(f, ts, "records")
    prefix = [rec.tools_text]  # prefix[i]: the text seen before message i (tools' schemas + msgs[:i])
    for m in msgs:
        prefix.append(prefix[-1] + "\x00" + m.blob())

    def seen_before(i: int) -> str:
        return prefix[i]

    fmts = param_formats(rec.tools)
    clair_record = False
    for turn in turns_of(msgs, rec.analyse_from):
        st.add(f, ts, "turns")
        calls = turn.calls
        st.add(f, ts, "calls", len(calls))
        if calls:
            st.add(f, ts, "turns_with_calls")
            st.add(f, ts, "steps", len(turn.steps))
            if len(turn.steps) >= 2:
                st.add(f, ts, "multistep_turns")
        where = f"{f}#{rec.index} turn@{turn.user}"

        # 1. clairvoyant calls
        for c in calls:
            before = seen_before(c.msg)
            later_results = "\x00".join(value_text(d.result) for d in calls if d.has_result and d.msg >= c.msg)
            bad = [x for x in salient_leaves(c.args) if not occurs(x, before) and occurs(x, later_results)]
            if bad:
                st.add(f, ts, "clairvoyant_calls")
                clair_record = True
                st.example(f, "clairvoyant_calls", f"{where} {c.name} uses {bad[0]!r} before its result")

        # 6. repeated calls / retries; 8. failures
        injected_turn = rec.injected_flag and not rec.injected_ids
        seen: dict[str, Call] = {}
        repeated = 0
        failed_unrepaired = 0
        for n, c in enumerate(calls):
            sig = c.name + json.dumps(c.args, sort_keys=True)
            if sig in seen:
                if call_failed(seen[sig]):
                    st.add(f, ts, "retries_after_failure")
                else:
                    repeated += 1
            else:
                seen[sig] = c
            if call_failed(c):
                st.add(f, ts, "failed_results")
                repaired = any(d.name == c.name and d.msg > c.msg for d in calls[n + 1:])
                if repaired:
                    st.add(f, ts, "failed_repaired")
                elif not (injected_turn or (c.id and c.id in rec.injected_ids)):
                    failed_unrepaired += 1
                    st.example(f, "failure_turns", f"{where} {c.name} -> {json.dumps(c.result)[:120]}")
        if repeated:
            st.add(f, ts, "repeated_turns")
            st.add(f, ts, "repeated_calls", repeated)
            st.example(f, "repeated_turns", f"{where} {[c.name for c in calls]}")
        if failed_unrepaired:
            st.add(f, ts, "failure_turns")
            st.add(f, ts, "failure_calls", failed_unrepaired)

        # 4. side effects; 5. dead reads
        side = 0
        query = msgs[turn.user].blob() if 0 <= turn.user < len(msgs) else ""
        for n, c in enumerate(calls[:-1]):
            if is_navigation(c.name) or call_failed(c):
                continue
            later = calls[n + 1:]
            if any(d.name == c.name and d.args == c.args for d in later):
                continue  # repeated: metric 6
            vals = salient_leaves(c.result) if c.has_result else []
            if any(uses_value(x, later) for x in vals):
                continue
            if is_write(c.name):
                st.add(f, ts, "unused_write_calls")
                if asked_for(c.name, query):
                    continue  # the user asked for this action by name: a multi-action request
                side += 1
                st.add(f, ts, "side_effect_calls")
                st.example(f, "side_effect_turns", f"{where} {c.name} (last: {calls[-1].name})")
            else:
                st.add(f, ts, "dead_read_calls")
                st.example(f, "dead_read_calls", f"{where} {c.name} (last: {calls[-1].name})")
        if side:
            st.add(f, ts, "side_effect_turns")

        # 7. one value in two parameters
        for c in calls:
            by_val: dict[str, list[str]] = defaultdict(list)
            for p, v in c.args.items():
                for x in salient_leaves(v):
                    by_val[key(x)].append(p)
            dup = {k: ps for k, ps in by_val.items() if len(set(ps)) >= 2}
            if dup:
                st.add(f, ts, "same_value_calls")
                k, ps = next(iter(dup.items()))
                st.example(f, "same_value_calls", f"{where} {c.name} {sorted(set(ps))} = {k}")

        # 9. values of the turn's results the user already knew
        query = msgs[turn.user].text
        before_user = seen_before(turn.user)
        future = []
        for n, c in enumerate(calls):
            if not c.has_result:
                continue
            for x in salient_leaves(c.result):
                if not occurs(x, query) or occurs(x, before_user):
                    continue
                # call order, not message order: in the old shape the user of x shares c's message
                first_use = next((m for m, d in enumerate(calls) if uses_value(x, [d])), None)
                if first_use is not None and first_use > n:
                    future.append((c.name, x))
        if future:
            st.add(f, ts, "user_future_turns")
            st.example(f, "user_future_turns", f"{where} {future[0][0]} returns {future[0][1]!r}, already in the query")
        strict = False
        for tok in set(ID_TOKEN.findall(query)):
            if tok in before_user:
                continue
            first = next((c for c in calls if c.has_result and tok in value_text(c.result)), None)
            if first is not None and is_create(first.name) and tok not in value_text(first.args):
                strict = True
                st.example(f, "user_future_strict_turns", f"{where} query has {tok!r}, minted by {first.name}")
        if strict:
            st.add(f, ts, "user_future_strict_turns")

        # 10. values against their described format
        for c in calls:
            for p, v in c.args.items():
                label = fmts.get((c.name, p))
                if not label:
                    continue
                for x in leaves(v):
                    if isinstance(x, str):
                        st.add(f, ts, f"format_values[{label}]")
                        if FORMAT_RE[label].fullmatch(x.strip()):
                            st.add(f, ts, f"format_ok[{label}]")
                        else:
                            st.example(f, "format", f"{where} {c.name}({p}={x!r}) wants {label}")
    if clair_record:
        st.add(f, ts, "clairvoyant_records")

    if f == "openai":
        loss_marking(rec, st)
    if f == "trl":
        comp = rec.raw.get("completion") or []
        tool_chars = sum(len(m.get("content") or "") if isinstance(m.get("content"), str)
                         else len(json.dumps(m.get("content"))) for m in comp if m.get("role") == "tool")
        if any(m.get("role") == "tool" for m in comp):
            st.add(f, ts, "trl_completion_with_tool")
            st.add(f, ts, "trl_tool_chars_in_completion", tool_chars)
        st.add(f, ts, "trl_completion_chars", sum(len(json.dumps(m, ensure_ascii=False)) for m in comp))
    if f == "bfcl":
        bfcl_checks(rec, st)


def loss_marking(rec: Record, st: Stats) -> None:
    f, ts, msgs = rec.fmt, rec.toolset, rec.msgs
    asst = [i for i, m in enumerate(msgs) if m.role == "assistant"]
    start = last_user(msgs)
    if any(not msgs[i].has_weight for i in asst):
        st.add(f, ts, "openai_rows_missing_weight")
    if not any(msgs[i].weight == 1 for i in asst):
        st.add(f, ts, "openai_rows_no_weight1")
    if any(msgs[i].weight == 1 for i in asst if i < start):
        st.add(f, ts, "openai_rows_weight1_before_turn")
    if any(msgs[i].has_weight and msgs[i].weight != 1 for i in asst if i > start):
        st.add(f, ts, "openai_rows_turn_not_weight1")


def bfcl_render_ok(content: str) -> bool:
    """Whether ``content`` is how BFCL renders an execution result: a str as is, a dict as
    ``json.dumps(d)``, anything else as ``str(v)`` (Python literal: single quotes, None, True)."""
    try:
        value = json.loads(content)
    except (json.JSONDecodeError, ValueError):
        try:
            lit = ast.literal_eval(content)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return True  # plain text: a str result shown as is
        return not isinstance(lit, (dict, str)) and str(lit) == content
    if isinstance(value, dict):
        return json.dumps(value) == content
    if isinstance(value, str):
        return False  # a JSON-quoted string: BFCL shows a str result as is, unquoted
    return str(value) == content  # lists, numbers, booleans, null: Python str()


def bfcl_checks(rec: Record, st: Stats) -> None:
    f, ts, msgs = rec.fmt, rec.toolset, rec.msgs
    step_calls: list[Call] = []
    for m in msgs[rec.analyse_from:]:
        if m.role == "assistant":
            step_calls = m.calls
            continue
        if m.role != "tool":
            continue
        st.add(f, ts, "bfcl_tool_msgs")
        if m.tool_name is None:
            st.add(f, ts, "bfcl_tool_msgs_no_name")
        else:
            heads = {c.name for c in step_calls}
            if not any(m.tool_name == h or m.tool_name.startswith(h + "(") for h in heads):
                st.add(f, ts, "bfcl_tool_msgs_name_not_a_call")
                st.example(f, "bfcl_tool_msgs_name_not_a_call", f"bfcl#{rec.index} name={m.tool_name!r}")
        if not bfcl_render_ok(m.text):
            st.add(f, ts, "bfcl_results_not_bfcl_rendering")
            st.example(f, "bfcl_results_not_bfcl_rendering", f"bfcl#{rec.index} {m.text[:100]!r}")
    types: Counter = Counter()

    def walk(schema: Any) -> None:
        if isinstance(schema, dict):
            t = schema.get("type")
            if isinstance(t, str):
                types[t] += 1
            for v in schema.values():
                walk(v)
        elif isinstance(schema, list):
            for v in schema:
                walk(v)

    for fn in rec.tools:
        walk(fn.get("parameters"))
        walk(fn.get("response"))
    st.add(f, ts, "bfcl_doc_types")
    if types["object"] or types["number"]:
        st.add(f, ts, "bfcl_prompts_jsonschema_types")
    st.add(f, ts, "bfcl_doc_type_object", types["object"])
    st.add(f, ts, "bfcl_doc_type_number", types["number"])
    st.add(f, ts, "bfcl_doc_type_dict", types["dict"])
    st.add(f, ts, "bfcl_doc_type_float", types["float"])


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------
def export_dirs(root: Path) -> list[Path]:
    if any((root / n).exists() for n in FILES.values()):
        return [root]
    return sorted({p.parent for n in FILES.values() for p in root.rglob(n)})


def toolset_maps(d: Path) -> tuple[list[str], list[str]]:
    """(toolset per sample row, toolset per dialogue in order) from samples.parquet and rl.parquet."""
    dlg_ts: dict[str, str] = {}
    for name in RL_FILES:
        if (d / name).exists():
            for row in read_parquet(d / name):
                extra = row.get("extra_info") or {}
                if extra.get("dialogue_id") and extra.get("toolset"):
                    dlg_ts[extra["dialogue_id"]] = extra["toolset"]
            break
    fallback = d.name if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d.name) and d.name not in ("exports",) else "?"
    per_sample: list[str] = []
    per_dialogue: list[str] = []
    if (d / FILES["parquet"]).exists():
        rows = read_parquet(d / FILES["parquet"])
        last = None
        for r in rows:
            ts = r.get("toolset") or dlg_ts.get(r.get("dialogue_id"), fallback)
            per_sample.append(ts)
            if r.get("dialogue_id") != last:
                per_dialogue.append(ts)
                last = r.get("dialogue_id")
    return per_sample, per_dialogue or [fallback] * 0


def scan(root: Path, examples: int = 3) -> Stats:
    st = Stats(examples)
    for d in export_dirs(root):
        per_sample, per_dialogue = toolset_maps(d)
        fallback = d.name if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", d.name) else "?"
        for fmt, name in FILES.items():
            p = d / name
            if not p.exists():
                continue
            rows = read_parquet(p) if name.endswith(".parquet") else read_jsonl(p)
            ts_list = per_dialogue if fmt == "sharegpt" else per_sample
            if not ts_list:
                ts_list = [fallback] * len(rows)
            for rec in records_of(fmt, rows, ts_list):
                analyse(rec, st)
    return st


# (metric, numerator, denominator) rows of the table; shares are numerator / denominator.
TABLE = [
    ("records", "records", None),
    ("turns analysed", "turns", None),
    ("calls", "calls", None),
    ("1 clairvoyant records", "clairvoyant_records", "records"),
    ("1 clairvoyant calls", "clairvoyant_calls", "calls"),
    ("2 steps per turn (w/ calls)", "steps", "turns_with_calls"),
    ("2 calls per step", "calls", "steps"),
    ("2 multi-step turns", "multistep_turns", "turns_with_calls"),
    ("3 openai rows missing weight", "openai_rows_missing_weight", "records"),
    ("3 openai rows no weight=1", "openai_rows_no_weight1", "records"),
    ("3 openai weight=1 on earlier turn", "openai_rows_weight1_before_turn", "records"),
    ("3 openai turn msg weight!=1", "openai_rows_turn_not_weight1", "records"),
    ("3 trl completion w/ tool msg", "trl_completion_with_tool", "records"),
    ("3 trl tool chars in completion", "trl_tool_chars_in_completion", "trl_completion_chars"),
    ("4 side-effect turns", "side_effect_turns", "turns"),
    ("4 side-effect calls", "side_effect_calls", "calls"),
    ("4 unused writes, asked or not", "unused_write_calls", "calls"),
    ("5 dead-read calls", "dead_read_calls", "calls"),
    ("6 turns w/ repeated call", "repeated_turns", "turns"),
    ("6 repeated calls", "repeated_calls", "calls"),
    ("6 retries after failure", "retries_after_failure", "calls"),
    ("7 one value in 2 params", "same_value_calls", "calls"),
    ("8 failed results", "failed_results", "calls"),
    ("8 failed, retried/repaired", "failed_repaired", "failed_results"),
    ("8 failure-as-success turns", "failure_turns", "turns"),
    ("9 user knows result value", "user_future_turns", "turns"),
    ("9 strict: query id minted", "user_future_strict_turns", "turns"),
    ("11 bfcl tool msgs", "bfcl_tool_msgs", None),
    ("11 bfcl tool msgs w/o name", "bfcl_tool_msgs_no_name", "bfcl_tool_msgs"),
    ("11 bfcl name not a call", "bfcl_tool_msgs_name_not_a_call", "bfcl_tool_msgs"),
    ("11 bfcl result not BFCL-rendered", "bfcl_results_not_bfcl_rendering", "bfcl_tool_msgs"),
    ("11 bfcl prompts w/ object/number", "bfcl_prompts_jsonschema_types", "bfcl_doc_types"),
    ("11 bfcl doc type object", "bfcl_doc_type_object", None),
    ("11 bfcl doc type number", "bfcl_doc_type_number", None),
    ("11 bfcl doc type dict", "bfcl_doc_type_dict", None),
    ("11 bfcl doc type float", "bfcl_doc_type_float", None),
]
TOOLSET_COLUMNS = [("recs", "records", None), ("clairv", "clairvoyant_records", "records"),
                   ("steps/t", "steps", "turns_with_calls"), ("multi", "multistep_turns", "turns_with_calls"),
                   ("sidefx", "side_effect_turns", "turns"), ("dead", "dead_read_calls", "calls"),
                   ("repeat", "repeated_turns", "turns"), ("2param", "same_value_calls", "calls"),
                   ("fail", "failure_turns", "turns"), ("future", "user_future_turns", "turns"),
                   ("strict", "user_future_strict_turns", "turns")]


def to_json(st: Stats) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for (fmt, ts), c in sorted(st.c.items()):
        entry: dict[str, Any] = dict(sorted(c.items()))
        for _, num, den in TABLE:  # "share:<numerator>/<denominator>" (calls/steps is calls per step)
            if den and c.get(den):
                entry[f"share:{num}/{den}"] = round(c.get(num, 0) / c[den], 4)
        for k in list(c):
            if k.startswith("format_values["):
                label = k[len("format_values["):-1]
                entry[f"share:format_ok[{label}]"] = round(c.get(f"format_ok[{label}]", 0) / c[k], 4)
        out.setdefault(fmt, {})[ts] = entry
    out["examples"] = {f"{fmt}:{name}": ex for (fmt, name), ex in sorted(st.ex.items())}
    return out


def _cell(c: Counter, num: str, den: str | None) -> str:
    n = c.get(num, 0)
    if den is None:
        return f"{n:,}"
    d = c.get(den, 0)
    if not d:
        return "-" if not n else f"{n:,}"
    if num in ("steps", "calls") and den in ("turns_with_calls", "steps"):
        return f"{n / d:.2f}"
    return f"{n:,} ({n / d:.1%})"


def render(st: Stats) -> str:
    fmts = [f for f in FILES if (f, ALL) in st.c]
    lines = []
    head = ["metric"] + fmts
    def applies(label: str, f: str) -> bool:  # format-specific rows stay blank for other formats
        only = {"3 openai": "openai", "3 trl": "trl", "11 ": "bfcl"}
        return all(f == fmt for prefix, fmt in only.items() if label.startswith(prefix))

    rows = [[label] + [_cell(st.c[(f, ALL)], num, den) if applies(label, f) else "" for f in fmts]
            for label, num, den in TABLE]
    rows = [r for r in rows if any(x not in ("0", "-", "") for x in r[1:])]
    labels = sorted({k[len("format_values["):-1] for f in fmts for k in st.c[(f, ALL)] if k.startswith("format_values[")})
    for label in labels:
        rows.append([f"10 in format {label}"] + [_cell(st.c[(f, ALL)], f"format_ok[{label}]", f"format_values[{label}]")
                                                for f in fmts])
    lines += _table(head, rows)
    primary = "openai" if ("openai", ALL) in st.c else (fmts[0] if fmts else None)
    if primary:
        lines += ["", (f"per toolset ({primary}): clairv = records with a clairvoyant call; steps/t = steps per "
                       "turn with calls; multi = multi-step turns; dead, 2param = of calls; sidefx, repeat, fail, "
                       "future, strict = of turns")]
        toolsets = sorted(ts for f, ts in st.c if f == primary and ts != ALL) + [ALL]
        rows = [[ts] + [_cell(st.c[(primary, ts)], num, den).split(" ")[-1].strip("()") if den else
                        _cell(st.c[(primary, ts)], num, den) for _, num, den in TOOLSET_COLUMNS] for ts in toolsets]
        lines += _table(["toolset"] + [c[0] for c in TOOLSET_COLUMNS], rows)
    shown = {k: v for k, v in st.ex.items() if k[0] == primary or k[0] == "bfcl" and k[1].startswith("bfcl_")}
    if shown:  # the other formats' examples are the same turns (all of them are in --json)
        lines += ["", f"examples ({primary}, and bfcl's own):"]
        for (fmt, name), ex in sorted(shown.items()):
            for e in ex:
                lines.append(f"  [{fmt}:{name}] {e}")
    return "\n".join(lines)


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "  ".join(str(x).ljust(w) if i == 0 else str(x).rjust(w) for i, (x, w) in enumerate(zip(r, widths)))

    return [line(head), "  ".join("-" * w for w in widths), *map(line, rows)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("exports", type=Path, help="a day's export directory (or one toolset's)")
    ap.add_argument("--json", action="store_true", help="print the numbers as JSON")
    ap.add_argument("--examples", type=int, default=3, help="examples kept per metric (default 3)")
    args = ap.parse_args(argv)
    if not args.exports.is_dir():
        ap.error(f"{args.exports} is not a directory")
    st = scan(args.exports, args.examples)
    if not st.c:
        print(f"no export files under {args.exports}", file=sys.stderr)
        return 1
    print(json.dumps(to_json(st), indent=2, ensure_ascii=False) if args.json else render(st))
    return 0


if __name__ == "__main__":
    sys.exit(main())
