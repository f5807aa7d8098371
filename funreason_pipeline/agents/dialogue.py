"""Phase IV: one dialogue per trajectory from its verified turns (a prefix: a later turn depends on
the state the earlier ones left). Splitting into per-turn samples is export.formats.dialogue_to_samples.

A dialogue records what the replay and the card need: `injected_errors` (tool_call_id -> the error
content injected there: that call never reached the environment) and `role_models` (per kept turn,
role -> model, see provenance.py)."""

from __future__ import annotations

import random
from typing import Any

from funreason_pipeline.agents.chat import call_id, group_steps, turn_messages
from funreason_pipeline.agents.prompts import prompt
from funreason_pipeline.models import Rejection, ToolCall, ToolSpec, Trajectory
from funreason_pipeline.provenance import ROLES, UNRECORDED
from funreason_pipeline.seeds import stable_seed

TRANSIENT_ERRORS = ["Service temporarily unavailable, please retry.", "Request timed out.",
                    "Internal error: backend busy."]


def build_dialogue(t: Trajectory, tools: list[ToolSpec], queries: dict[int, str],
                   traces: dict[int, dict[str, Any]], error_rate: float = 0.0,
                   role_models: dict[int, dict[str, str]] | None = None) -> tuple[dict | None, list[Rejection]]:
    """`role_models`: turn -> role -> model (provenance.turn_role_models); missing roles are unrecorded."""
    rejections = []
    injected: dict[str, Any] = {}
    turn_models: list[dict[str, str]] = []
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
        calls = [ToolCall(tool=c["name"], arguments=c["arguments"], result=c.get("result"), step=c.get("step", 0))
                 for c in tr["calls"]]
        inject = None
        if calls and rng.random() < error_rate:
            inject = {"error": rng.choice(TRANSIENT_ERRORS)}
            flagged = True
            injected[call_id(k, 0)] = inject  # turn_messages injects it at the turn's first call
        steps = group_steps(calls, tr.get("step_reasoning") or tr["reasoning"])
        messages += turn_messages(k, queries[k], steps, tr["reply"], inject)
        given = (role_models or {}).get(k, {})
        turn_models.append({r: given.get(r, UNRECORDED) for r in ROLES})
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
        "injected_errors": injected,
        "role_models": turn_models,
    }, rejections
