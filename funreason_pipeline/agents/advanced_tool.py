"""Phase II, structure half of the tooling agent: what a turn needs from the user.

The inputs of a turn's advanced tool are the argument values no earlier call produced (the user must
know them); values produced inside the turn are intermediate and must not leak into the query. The
structure always comes from the trace; an LLM (or the offline agent) only names and describes it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from funreason_pipeline.matching.values import harvest
from funreason_pipeline.models import ToolCall, ToolSpec, Trajectory


class AdvancedInput(BaseModel):
    name: str
    value: Any
    tool: str
    param: str
    description: str = ""


class AdvancedTool(BaseModel):
    name: str
    description: str
    inputs: list[AdvancedInput]
    steps: list[str]  # tool names in order (kept out of the query, used in the hint)
    output: Any  # the turn's final result
    # what the user asks to be done: every call of the turn that changes the state, then the target
    # (a turn that books an appointment to cancel it asks for both; reads that feed them are steps)
    actions: list[str] = []

    def schema(self) -> dict[str, Any]:
        """The advanced tool as an OpenAI-style function (stored in `queries.advanced_tool`)."""
        props = {}
        for i in self.inputs:
            t = {bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}.get(
                type(i.value), "string")
            props[i.name] = {"type": t, "description": i.description or f"{i.param} of {i.tool}"}
        return {"name": self.name, "description": self.description,
                "parameters": {"type": "object", "properties": props, "required": list(props)},
                "steps": self.steps, "actions": self.actions, "output": self.output}


def turn_offset(traj: Trajectory, turn_index: int) -> int:
    return sum(len(t.calls) for t in traj.turns[:turn_index])


def user_inputs(calls: list[ToolCall], tools: dict[str, ToolSpec], offset: int | None = None) -> list[AdvancedInput]:
    """What the user must say: each argument value no earlier call produced, once (the same ticket id
    passed to two calls is one thing the user says). With the turn's `offset`, a value an earlier
    turn's result showed is said too: the user names the ticket or file they mean."""
    seen: dict[str, AdvancedInput] = {}
    said: set[str] = set()
    for call in calls:
        spec = tools.get(call.tool)
        for param, value in call.arguments.items():
            if param in call.sources and (offset is None or call.sources[param] >= offset):
                continue
            key = repr(value)
            if key in said and mentionable(value):
                continue
            said.add(key)
            name = param if param not in seen else f"{call.tool.split('.')[-1]}_{param}"
            desc = (spec.properties.get(param, {}).get("description", "") if spec else "")[:160]
            seen[name] = AdvancedInput(name=name, value=value, tool=call.tool, param=param, description=desc)
    return list(seen.values())


def intermediate_values(calls: list[ToolCall], offset: int) -> list[Any]:
    """Values the user cannot know when asking: those a call of this turn took from an earlier call
    of the same turn, and those a call of the turn created (ids, tokens, numbers)."""
    out = []
    for call in calls:
        for param, src in call.sources.items():
            if src >= offset:
                out.append(call.arguments[param])
        out += call.created
    return out


def structure(traj: Trajectory, turn_index: int, tools: dict[str, ToolSpec]) -> AdvancedTool:
    turn = traj.turns[turn_index]
    steps = [c.tool for c in turn.calls]
    target = turn.target_tool.split(".")[-1]
    name = f"{target}_flow" if len(steps) > 1 else target
    return AdvancedTool(
        name=name[:48],
        description="",
        inputs=user_inputs(turn.calls, tools, turn_offset(traj, turn_index)),
        steps=steps,
        output=turn.calls[-1].result,
        actions=[c.tool for c in turn.calls[:-1] if c.changes_state] + [turn.calls[-1].tool],
    )


def mentionable(value: Any) -> list[str]:
    """The strings a query must contain to carry `value` (each list item, each scalar)."""
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in mentionable(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in mentionable(v)]
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


def leak_candidates(values: list[Any]) -> list[str]:
    out = []
    for v in values:
        for item in harvest(v, key="v"):
            s = str(item.value)
            if len(s) >= 4:
                out.append(s)
        if isinstance(v, (str, int, float)) and not isinstance(v, bool) and len(str(v)) >= 4:
            out.append(str(v))
    return out
