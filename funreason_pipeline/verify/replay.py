"""Replay: re-execute recorded calls on fresh environments and compare results and states.

Two records are replayed. A trajectory (Phase I ground truth) carries each call's result and, per
turn, a digest of the state the turn ended in (`Turn.end_state`, recorded by `seal_trajectory` when
the trajectory is accepted). An SFT sample carries the calls and tool messages a dialogue shows;
its replay re-executes them from the trajectory's scenario and checks each turn against the
trajectory like Phase III's verification does (same end state, every ground-truth result produced).

Every problem is a string `"<reason>: <detail>"`; `reason_of` gives the reason code.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError
from funreason_pipeline.environments.toolsets import ToolsetConfig, World
from funreason_pipeline.models import ToolSpec, Trajectory

# one encoder for every call: json.dumps with options builds a new JSONEncoder each time, and
# canonical runs hundreds of thousands of times a day (Phase I compares every state leaf with it)
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def canonical(value: Any) -> str:
    return _CANONICAL.encode(value)


def reason_of(problem: str) -> str:
    """The reason code of a problem string ("state_mismatch: turn 1 ..." -> "state_mismatch")."""
    return problem.split(":", 1)[0]


def _plain(value: Any) -> Any:
    # 2.0 and 2 are the same state (Python's == says so, and so does BFCL's state checker)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def state_digest(world: World) -> str:
    """A short hash of the world's state (raises CyclicStateError for a state that contains itself)."""
    return hashlib.sha256(canonical(_plain(world.snapshot())).encode()).hexdigest()[:16]


def _digest_or_none(world: World) -> str | None:
    try:
        return state_digest(world)
    except CyclicStateError:
        return None


def _replay(traj: Trajectory, toolset: ToolsetConfig, tools: list[ToolSpec] | None,
            ) -> tuple[list[str], World, list[str | None]]:
    world = World.from_scenario(toolset, traj.scenario, tools)
    problems, digests, i = [], [], 0
    for k, turn in enumerate(traj.turns):
        for call in turn.calls:
            res = world.call(call.tool, call.arguments)
            if not res.ok:
                problems.append(f"replay_failed: call {i} {call.tool} (turn {k}): {res.error}")
            elif canonical(res.value) != canonical(call.result):
                problems.append(f"result_mismatch: call {i} {call.tool} (turn {k}): result differs on replay")
            i += 1
        digest = _digest_or_none(world)
        digests.append(digest)
        if digest is None:
            problems.append(f"cyclic_state: turn {k} ends in a state that contains itself")
        elif turn.end_state is not None and digest != turn.end_state:
            problems.append(f"state_mismatch: turn {k} ends in a different state than recorded")
    return problems, world, digests


def replay_trajectory(
    traj: Trajectory, toolset: ToolsetConfig, tools: list[ToolSpec] | None = None
) -> tuple[list[str], World]:
    """Run every recorded call from the recorded scenario; return problems and the end world.

    A call that fails or returns something else than recorded is a problem, and so is a turn whose
    end state differs from its recorded digest (a missing or extra state-changing call, calls in an
    order that changes state)."""
    problems, world, _ = _replay(traj, toolset, tools)
    return problems, world


def seal_trajectory(
    traj: Trajectory, toolset: ToolsetConfig, tools: list[ToolSpec] | None = None
) -> tuple[Trajectory, list[str], World]:
    """Replay an accepted trajectory and record each turn's end-state digest in it."""
    problems, world, digests = _replay(traj, toolset, tools)
    turns = [t.model_copy(update={"end_state": d}) for t, d in zip(traj.turns, digests)]
    return traj.model_copy(update={"turns": turns}), problems, world


def expected_end_states(traj: Trajectory, toolset: ToolsetConfig, tools: list[ToolSpec] | None = None,
                        ) -> list[str | None]:
    """Each ground-truth turn's end-state digest: the recorded one, else from a replay."""
    if all(t.end_state is not None for t in traj.turns):
        return [t.end_state for t in traj.turns]
    return _replay(traj, toolset, tools)[2]


def _arguments(call: Mapping[str, Any]) -> dict[str, Any]:
    args = json.loads(call["function"].get("arguments") or "{}")
    if not isinstance(args, dict):
        raise TypeError(f"arguments of {call['function']['name']} are not a JSON object")
    return args


def replay_sample(messages: list[dict[str, Any]], traj: Trajectory, toolset: ToolsetConfig,
                  tools: list[ToolSpec] | None = None, injected: Mapping[str, Any] | None = None,
                  end_states: list[str | None] | None = None) -> list[str]:
    """Re-execute a sample's calls from its trajectory's scenario; return problems.

    - every tool message must come back the same (`result_mismatch`); one that answers no call is
      `orphan_tool_message`, a call never answered is `unanswered_call`;
    - `injected` (tool_call_id -> content) are the error responses the dialogue stage injected: such
      a call is not executed (the injected failure never reached the environment), its message must
      be exactly the recorded one (`injection_mismatch`) and the turn must retry that same call
      (`injection_not_retried`); any other message is compared with what the replay returns, errors
      included;
    - at the end of every turn the state must equal the ground truth's (`state_mismatch`) and every
      ground-truth result of the turn must be among the turn's results (`response_mismatch`), as in
      Phase III's verification.
    """
    injected = dict(injected or {})
    world = World.from_scenario(toolset, traj.scenario, tools)
    states = end_states if end_states is not None else expected_end_states(traj, toolset, tools)
    problems: list[str] = []
    pending: dict[str, dict[str, Any]] = {}
    turn, results, retries_owed = -1, [], []

    def close_turn() -> None:
        for c in pending.values():
            problems.append(f"unanswered_call: turn {turn} {c['function']['name']} ({c['id']}) has no tool message")
        pending.clear()
        for name, args in retries_owed:
            problems.append(f"injection_not_retried: turn {turn} {name} failed by injection and was not called again")
        if turn >= len(traj.turns):
            problems.append(f"unknown_turn: turn {turn} is beyond the trajectory's {len(traj.turns)} turns")
            return
        digest = _digest_or_none(world)
        if digest is None or digest != states[turn]:
            problems.append(f"state_mismatch: turn {turn} ends in a different state than the ground truth")
        missing = Counter(canonical(c.result) for c in traj.turns[turn].calls) - Counter(map(canonical, results))
        if missing:
            problems.append(f"response_mismatch: turn {turn}: {sum(missing.values())} ground-truth result(s) "
                            "were never produced")

    for m in messages:
        role = m.get("role")
        if role == "user":
            if turn >= 0:
                close_turn()
            turn, results, retries_owed = turn + 1, [], []
        elif role == "assistant":
            for c in m.get("tool_calls") or []:
                try:
                    key = (c["function"]["name"], canonical(_arguments(c)))
                except (KeyError, TypeError, ValueError) as exc:
                    problems.append(f"unparsable_call: turn {turn}: {exc}"[:300])
                    continue
                pending[c["id"]] = c
                if key in retries_owed and c["id"] not in injected:
                    retries_owed.remove(key)
        elif role == "tool":
            c = pending.pop(m.get("tool_call_id"), None)
            if c is None:
                problems.append(f"orphan_tool_message: turn {turn} {m.get('tool_call_id')!r} answers no call")
                continue
            name, args = c["function"]["name"], _arguments(c)
            try:
                shown = json.loads(m["content"])
            except (TypeError, ValueError):
                shown = m.get("content")  # not JSON: it cannot equal a result, and is reported below
            if c["id"] in injected:
                if canonical(shown) != canonical(injected.pop(c["id"])):
                    problems.append(f"injection_mismatch: turn {turn} {name}: the message is not the recorded "
                                    "injected error")
                retries_owed.append((name, canonical(args)))
                continue
            res = world.call(name, args)
            got = res.value if res.ok else {"error": res.error}
            results.append(got)
            if canonical(shown) != canonical(got):
                problems.append(f"result_mismatch: turn {turn} {name}: result differs on replay")
    if turn >= 0:
        close_turn()
    return problems
