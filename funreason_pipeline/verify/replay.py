"""Replay: re-execute recorded calls on fresh environments and compare results and end state."""

from __future__ import annotations

import json
from typing import Any

from funreason_pipeline.environments.toolsets import ToolsetConfig, World
from funreason_pipeline.models import ToolSpec, Trajectory


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def replay_trajectory(
    traj: Trajectory, toolset: ToolsetConfig, tools: list[ToolSpec] | None = None
) -> tuple[list[str], World]:
    """Run every recorded call from the recorded scenario; return mismatches and the end world."""
    world = World.from_scenario(toolset, traj.scenario, tools)
    problems = []
    for i, call in enumerate(traj.flat_calls()):
        res = world.call(call.tool, call.arguments)
        if not res.ok:
            problems.append(f"call {i} {call.tool}: replay failed: {res.error}")
        elif canonical(res.value) != canonical(call.result):
            problems.append(f"call {i} {call.tool}: result differs on replay")
    return problems, world
