"""A stand-in model for the test server: answers every role so that the stages accept them (or, in
"garbage" mode, so that none can use them). Used by the whole-run bench (in the server's own
process) and by tests.

How the reasoner knows the answer: the tooling request carries the turn's calls (Phase II names the
advanced tool from them), so the tooling answer names the tool after a hash of those calls and keeps
them; the reasoning request's hint names that tool, and the answer is those calls. The query holds
every user-supplied value (the information-completeness check) and a reference that makes each
turn's query distinct (the near-duplicate filter).

The reasoner answers step by step (`stepwise_answer`), as a tool-calling model does: from the
request's messages it sees which of the turn's calls already have results, and answers the next
step's calls; a value that an earlier step's call returns is taken from the results it sees (when
they are missing it cannot know the value, and its call is wrong). Native tool calls when the request
carries `tools`, else the JSON answer of one step.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from funreason_pipeline.agents import prompts
from funreason_pipeline.agents.advanced_tool import mentionable
from funreason_pipeline.agents.flow import STEP_RESULTS
from funreason_pipeline.llm.structured import REPAIR_PROMPT

HINT = "Hint: the request amounts to `"
UNSEEN = "<a value I have not seen>"
_REPAIR = REPAIR_PROMPT.split("{")[0]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _leaves(v)]
    if isinstance(value, list):
        return [x for v in value for x in _leaves(v)]
    return [value]


def _distinctive(value: Any) -> bool:
    """A value worth tracing to where it came from (not a flag, a small count or a short word)."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, int | float):
        return value not in (0, 1, -1)
    return isinstance(value, str) and len(value) >= 3


def _contains(result: Any, value: Any) -> bool:
    for leaf in _leaves(result):
        if leaf == value and type(leaf) is type(value):
            return True
        if isinstance(leaf, str) and isinstance(value, str) and len(value) >= 4 and value in leaf:
            return True
    return False


def plan_steps(calls: list[dict[str, Any]]) -> list[int]:
    """Each call's step: given ("step"), or derived: after every earlier call whose result holds one
    of its argument values, and never before the call ahead of it (calls run in order)."""
    if calls and all("step" in c for c in calls):
        return [int(c["step"]) for c in calls]
    steps: list[int] = []
    for i, c in enumerate(calls):
        need = [steps[j] + 1 for j in range(i) for v in _leaves(c["arguments"])
                if _distinctive(v) and _contains(calls[j].get("result"), v)]
        steps.append(max([steps[-1] if steps else 0, *need]))
    return steps


def seen_results(messages: list[dict[str, Any]]) -> list[Any]:
    """The results of the current turn's calls that the request shows, in order (a repair exchange at
    the end is not part of the turn)."""
    msgs = list(messages)
    while len(msgs) >= 2 and msgs[-1]["role"] == "user" and str(msgs[-1].get("content")).startswith(_REPAIR):
        msgs = msgs[:-2]
    users = [i for i, m in enumerate(msgs) if m["role"] == "user"
             and not str(m.get("content")).startswith(STEP_RESULTS)]
    out: list[Any] = []
    for m in msgs[users[-1] + 1:] if users else []:
        if m["role"] == "tool":
            out.append(json.loads(m["content"]))
        elif m["role"] == "user":
            out += [r["result"] for r in json.loads(m["content"][len(STEP_RESULTS):])]
    return out


def stepwise_answer(calls: list[dict[str, Any]], body: dict[str, Any], reasoning_field: bool = False,
                    ) -> dict[str, Any]:
    """The next step of the turn whose ground-truth `calls` ({name, arguments, result[, step]}) the
    stand-in knows, read off the request `body`; no calls once every call has a result."""
    seen = seen_results(body["messages"])
    steps = plan_steps(calls)
    done = len(seen)
    if done >= len(calls):
        return _answer(body, "Every result is in; the request is done.", [], reasoning_field)
    step = steps[done]
    mine = [i for i in range(done, len(calls)) if steps[i] == step]
    earlier = [calls[j].get("result") for j in range(done) if steps[j] < step]
    out = []
    for i in mine:
        args = {}
        for k, v in calls[i]["arguments"].items():
            made_here = any(_distinctive(x) and _contains(r, x) for r in earlier for x in _leaves(v))
            # a value an earlier step returned: only known from the results shown
            args[k] = v if not made_here or any(_contains(r, x) for r in seen for x in _leaves(v)
                                                if _distinctive(x)) else UNSEEN
        out.append({"name": calls[i]["name"], "arguments": args})
    text = f"Step {step + 1}: " + ", ".join(c["name"] for c in out) + "."
    return _answer(body, text, out, reasoning_field)


def _answer(body: dict[str, Any], reasoning: str, calls: list[dict[str, Any]], reasoning_field: bool) -> dict:
    if not body.get("tools"):
        return {"content": json.dumps({"reasoning": reasoning, "calls": calls})}
    final = "" if calls else "All done."
    if reasoning_field:
        return {"content": final, "reasoning_content": reasoning, "tool_calls": calls or None}
    return {"content": f"<think>{reasoning}</think>{final}", "tool_calls": calls or None}


class ChainAgents:
    def __init__(self, mode: str = "accept") -> None:
        if mode not in ("accept", "garbage"):
            raise ValueError(f"mode must be accept or garbage, got {mode!r}")
        self.mode = mode
        self.calls_by_tool: dict[str, list[dict[str, Any]]] = {}
        self.reply_head = prompts.prompt("reply")[:40]

    def __call__(self, role: str, body: dict[str, Any]) -> dict[str, Any]:
        if self.mode == "garbage":
            return {"content": "Sorry, I cannot help with that."}
        msgs = body["messages"]
        # the first user message is the request; a repair request appends the error as a later one
        user = next(m for m in msgs if m["role"] == "user")["content"]
        if role == "tooling":
            calls = json.loads(user)["calls"]
            name = "do_" + hashlib.sha1(json.dumps(calls, sort_keys=True).encode()).hexdigest()[:12]
            self.calls_by_tool[name] = [{"name": c["tool"], "arguments": c["arguments"], "result": c.get("result")}
                                        for c in calls]
            return {"content": json.dumps({"name": name, "description": "Does what the user asks."})}
        if role == "querying":
            spec = json.loads(user)
            values = [s for v in spec["user_supplied_values"].values() for s in mentionable(v)]
            ref = hashlib.sha1(user.encode()).hexdigest()[:8]
            return {"content": json.dumps({"query": f"Please take care of this for me (ref {ref}): "
                                                    + "; ".join(values) + "."})}
        if role == "critic":
            return {"content": json.dumps({"critique": "Some calls did not do what the request asked."})}
        if msgs[0]["content"].startswith(self.reply_head):
            return {"content": json.dumps({"reply": "All done."})}
        hinted = next(m["content"] for m in reversed(msgs) if HINT in (m.get("content") or ""))
        name = hinted.split(HINT, 1)[1].split("`", 1)[0]
        return stepwise_answer(self.calls_by_tool.get(name, []), body)
