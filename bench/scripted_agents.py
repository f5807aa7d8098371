"""A stand-in model for the test server: answers every role so that the stages accept them (or, in
"garbage" mode, so that none can use them). Used by the whole-run bench (in the server's own
process) and by tests.

How the reasoner knows the answer: the tooling request carries the turn's calls (Phase II names the
advanced tool from them), so the tooling answer names the tool after a hash of those calls and keeps
them; the reasoning request's hint names that tool, and the answer is those calls. The query holds
every user-supplied value (the information-completeness check) and a reference that makes each
turn's query distinct (the near-duplicate filter).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from funreason_pipeline.agents import prompts
from funreason_pipeline.agents.advanced_tool import mentionable

HINT = "Hint: the request amounts to `"


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
            self.calls_by_tool[name] = [{"name": c["tool"], "arguments": c["arguments"]} for c in calls]
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
        calls = self.calls_by_tool.get(name, [])
        return {"content": json.dumps({"reasoning": "Step by step: " + ", ".join(c["name"] for c in calls),
                                       "calls": calls})}
