"""Phase IV: one dialogue per trajectory from its verified turns (a prefix: a later turn depends on
the state the earlier ones left). Splitting into per-turn samples is export.formats.dialogue_to_samples."""

from __future__ import annotations

import random
from typing import Any

from funreason_pipeline.agents.chat import turn_messages
from funreason_pipeline.agents.prompts import prompt
from funreason_pipeline.models import Rejection, ToolCall, ToolSpec, Trajectory
from funreason_pipeline.seeds import stable_seed

TRANSIENT_ERRORS = ["Service temporarily unavailable, please retry.", "Request timed out.",
                    "Internal error: backend busy."]


def build_dialogue(t: Trajectory, tools: list[ToolSpec], queries: dict[int, str],
                   traces: dict[int, dict[str, Any]], error_rate: float = 0.0) -> tuple[dict | None, list[Rejection]]:
    rejections = []
    messages: list[dict[str, Any]] = [{"role": "system", "content": prompt("system").strip()}]
    n = 0
    flagged = False
    rng = random.Random(stable_seed("errors", t.trajectory_id))
    for k in range(len(t.turns)):
        tr = traces.get(k)
        if k not in queries or tr is None or not tr["passed"]:
            for j in range(k, len(t.turns)):
                rejections.append(Rejection(item_id=f"{t.trajectory_id}/{j}", reason="turn_not_verified",
                                            detail="dialogue truncated before this turn"))
            break
        calls = [ToolCall(tool=c["name"], arguments=c["arguments"], result=c.get("result")) for c in tr["calls"]]
        inject = None
        if calls and rng.random() < error_rate:
            inject = {"error": rng.choice(TRANSIENT_ERRORS)}
            flagged = True
        messages += turn_messages(k, queries[k], tr["reasoning"], calls, tr["reply"], inject)
        n += 1
    if n == 0:
        return None, rejections + [Rejection(item_id=t.trajectory_id, reason="no_verified_turn")]
    return {
        "dialogue_id": f"dlg-{t.trajectory_id}",
        "trajectory_id": t.trajectory_id,
        "toolset": t.toolset,
        "messages": messages,
        "tools": [s.openai_tool() for s in tools],
        "n_turns": n,
        "error_tool_response": flagged,
    }, rejections
