"""Phase III validation by execution, BFCL style.

A turn passes when the end state equals the ground truth's and every ground-truth result is among
the produced results (an unordered multiset subset), as BFCL's state and response checkers require.
`verify_turn` runs proposed calls on a copy of the environment at the turn's start state;
`check_turn` judges calls already run on a live copy (the step-wise reasoner runs each step's calls
as it proposes them, so they are not run twice). The ground truth's world after the turn
(`expected_world`) is the next turn's start: a trajectory's turns go from one to the next without
replaying the earlier turns from the scenario each time.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError, check_arguments
from funreason_pipeline.environments.toolsets import ToolsetConfig, World
from funreason_pipeline.models import ToolSpec, Trajectory
from funreason_pipeline.verify.replay import canonical


@dataclass
class ProposedCall:
    name: str
    arguments: dict[str, Any]


@dataclass
class TurnCheck:
    passed: bool
    problems: list[str]
    results: list[Any] = field(default_factory=list)
    expected: World | None = field(default=None, repr=False)  # the ground truth's world after the turn


def start_world(toolset: ToolsetConfig, tools: list[ToolSpec], traj: Trajectory, turn_index: int) -> World:
    """The environment at the start of turn `turn_index` (earlier turns' ground truth replayed)."""
    world = World.from_scenario(toolset, traj.scenario, tools)
    for turn in traj.turns[:turn_index]:
        for call in turn.calls:
            world.call(call.tool, call.arguments)
    return world


def parse_tool_calls(raw_calls: list[dict[str, Any]]) -> list[ProposedCall]:
    """Model calls as {name, arguments} where arguments is a JSON object or a JSON string."""
    out = []
    for c in raw_calls:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            raise ValueError(f"not a call: {c!r}"[:200])  # noqa: TRY004 - callers reject ValueErrors as bad model output
        args = c.get("arguments", {})
        if isinstance(args, str):
            try:
                args = json.loads(args) if args.strip() else {}
            except ValueError:
                raise ValueError(f"arguments of {c['name']} are not valid JSON: {args[:120]!r}") from None
        if not isinstance(args, dict):
            raise ValueError(f"arguments of {c['name']} are not a JSON object")  # noqa: TRY004 - as above
        out.append(ProposedCall(c["name"], args))
    return out


def call_problem(world: World, call: ProposedCall) -> str | None:
    """Why a model's call cannot be run as written (a tool the toolset lacks, arguments its schema
    refuses), or None. Such a call fails the attempt: it is the model's mistake, not a tool error."""
    spec = world.tools.get(call.name)
    if spec is None:
        return f"unknown_tool: {call.name!r} is not a tool of this toolset"
    error = check_arguments(spec, call.arguments)
    return None if error is None else f"bad_arguments: {error}"


def run_call(world: World, call: ProposedCall) -> Any:
    """Run one call on `world`; its result as the dialogue shows it (an error as {"error": ...})."""
    res = world.call(call.name, call.arguments)
    return res.value if res.ok else {"error": res.error}


def expected_world(start: World, traj: Trajectory, turn_index: int, consume: bool = False) -> World:
    """The world after the turn's ground-truth calls from `start`: on a copy, or on `start` itself
    when the caller needs it no more (`consume`)."""
    world = start if consume else start.copy()
    for call in traj.turns[turn_index].calls:
        world.call(call.tool, call.arguments)
    return world


def check_turn(start: World, traj: Trajectory, turn_index: int, world: World, results: list[Any],
               expected: World | None = None) -> TurnCheck:
    """Judge a turn whose calls already ran on `world` (a copy of `start`), giving `results`, against
    `expected` (the turn's `expected_world`; made from `start` when not given)."""
    gt_world = expected if expected is not None else expected_world(start, traj, turn_index)
    problems = []
    if not results:
        problems.append("empty_turn: no calls were made")
    try:
        same_state = world.snapshot() == gt_world.snapshot()
    except CyclicStateError:
        same_state = False  # a state that contains itself never matches
    if not same_state:
        problems.append("state_mismatch: the environment ended in a different state than expected")
    have = Counter(canonical(r) for r in results)
    need = Counter(canonical(c.result) for c in traj.turns[turn_index].calls)
    missing = need - have
    if missing:
        problems.append(f"response_mismatch: {sum(missing.values())} expected result(s) were never produced")
    return TurnCheck(not problems, problems, list(results), gt_world)


def verify_turn(start: World, traj: Trajectory, turn_index: int, proposed: list[ProposedCall],
                consume: bool = False) -> TurnCheck:
    """Run `proposed` on a copy of `start` and judge them; `consume`: the ground truth runs on `start`
    itself (the caller goes on from `TurnCheck.expected`), one copy fewer."""
    world = start.copy()
    results = [run_call(world, call) for call in proposed]
    return check_turn(start, traj, turn_index, world, results, expected_world(start, traj, turn_index, consume))
