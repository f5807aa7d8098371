"""Pydantic contracts shared by every stage (no Dagster here)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ToolSpec(BaseModel):
    """One tool of a toolset: a JSON Schema function plus the schema of what it returns."""

    model_config = ConfigDict(frozen=True)

    name: str  # unique inside its toolset (prefixed with the class when two classes collide)
    class_name: str
    method: str  # the method on the environment class that implements it
    description: str
    parameters: dict[str, Any]  # JSON Schema, type "object"
    response: dict[str, Any] | None = None

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required", []))

    @property
    def properties(self) -> dict[str, dict[str, Any]]:
        return dict(self.parameters.get("properties", {}))

    def openai_tool(self) -> dict[str, Any]:
        """The OpenAI `tools` entry (no response schema: OpenAI-style APIs reject it)."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


class ToolCall(BaseModel):
    tool: str
    arguments: dict[str, Any]
    result: Any = None
    # parameter -> index (in the trajectory's flat call list) of the earlier call whose result supplied it
    sources: dict[str, int] = Field(default_factory=dict)
    # indices of earlier calls this one needed for their state (graph state edges: login before post)
    after: list[int] = Field(default_factory=list)
    # the step of its turn (0-based): a step is the set of calls a model emits at once; every call of
    # a step runs after all calls of the earlier steps and may use their results, never those of
    # its own step (sampling/steps.py derives it from `sources`, `after` and the values it uses)
    step: int = 0
    # whether the call changed the environment's state (a write); reads leave it as it was
    changes_state: bool = False
    # telling values (ids, tokens, numbers) this call created in the state: the user cannot know
    # them when asking, so a query must never contain them (agents/query_check.py)
    created: list[Any] = Field(default_factory=list)


class Turn(BaseModel):
    target_tool: str
    calls: list[ToolCall]
    # digest of the state the turn ended in (verify.replay.seal_trajectory); replays compare it, so a
    # missing, extra or reordered state-changing call is caught even when no later result shows it
    end_state: str | None = None

    def steps(self) -> list[list[ToolCall]]:
        """The turn's calls grouped by step, in order."""
        out: list[list[ToolCall]] = []
        for c in self.calls:
            while len(out) <= c.step:
                out.append([])
            out[c.step].append(c)
        return [s for s in out if s]

    @property
    def has_dependent_call(self) -> bool:
        """A call that uses an earlier call's result or needs the state an earlier call left (the
        graph's data and state edges)."""
        return any(c.sources or c.after for c in self.calls)


class Trajectory(BaseModel):
    trajectory_id: str
    toolset: str
    seed: int
    scenario: dict[str, dict[str, Any]]  # class_name -> initial config
    turns: list[Turn]

    def flat_calls(self) -> list[ToolCall]:
        return [c for t in self.turns for c in t.calls]


class Edge(BaseModel):
    model_config = ConfigDict(frozen=True)

    src_tool: str
    dst_tool: str
    kind: Literal["data", "state"]
    param: str | None = None  # the destination parameter a data edge feeds
    src_field: str | None = None  # the response field of src_tool that feeds it
    evidence: str  # how the edge was found (schema match, text sink, execution probe ...)


class Rejection(BaseModel):
    item_id: str
    reason: str
    detail: str = ""


def used_edges(turns: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(src tool, dst tool) pairs one trajectory's stored turns actually went through: a call that
    took a value from an earlier call's result (`sources`) or needed its state (`after`). An edge
    of the graph is *exercised* when some trajectory used it this way (merely calling both tools,
    one after the other, does not count)."""
    flat = [c for t in turns for c in t["calls"]]
    return {(flat[i]["tool"], c["tool"]) for c in flat
            for i in [*(c.get("sources") or {}).values(), *(c.get("after") or [])]}


def edge_usage(edges: set[tuple[str, str]], trajectories: list[list[dict[str, Any]]],
               unusable: set[str] = frozenset()) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(exercised, countable) graph edges (src, dst pairs) of one toolset over its trajectories'
    stored turns (Q3). Edges from or to a tool declared unusable cannot be exercised: not countable."""
    usable = {e for e in edges if e[0] != e[1] and not {e[0], e[1]} & unusable}
    used: set[tuple[str, str]] = set()
    for turns in trajectories:
        used |= used_edges(turns)
    return usable & used, usable


def edge_coverage(edges: set[tuple[str, str]], trajectories: list[list[dict[str, Any]]],
                  unusable: set[str] = frozenset()) -> tuple[int, int]:
    """(exercised, total) counts of `edge_usage`."""
    exercised, usable = edge_usage(edges, trajectories, unusable)
    return len(exercised), len(usable)


def edge_coverage_per_toolset(edge_rows: list[tuple[str, str, str]], trajectory_rows: list[tuple[str, str]],
                              unusable: dict[str, set[str]]) -> dict[str, tuple[int, int]]:
    """`edge_coverage` per toolset from database rows: (toolset, src, dst) of api_graph and
    (toolset, turns JSON) of trajectories; `unusable`: toolset -> tools declared unusable."""
    edges: dict[str, set[tuple[str, str]]] = {}
    for ts, src, dst in edge_rows:
        edges.setdefault(ts, set()).add((src, dst))
    trajectories: dict[str, list] = {}
    for ts, turns in trajectory_rows:
        trajectories.setdefault(ts, []).append(json.loads(turns))
    return {ts: edge_coverage(edges.get(ts, set()), trajs, unusable.get(ts, set()))
            for ts, trajs in sorted(trajectories.items())}


def toolset_tool_of(item_id: str) -> tuple[str, str]:
    """(toolset, tool) of a Phase I per-tool rejection id "<toolset>-<YYYY-MM-DD>/<tool>"."""
    head, tool = item_id.rsplit("/", 1)
    return head[: -len("-YYYY-MM-DD")], tool


def dependent_turn_counts(turns: list[dict[str, Any]]) -> tuple[int, int]:
    """Over stored turns (JSON dicts): turns with a dependent call (an earlier result or an earlier
    call's state, as `Turn.has_dependent_call`), and turns with a data-dependent one."""
    dependent = sum(1 for t in turns if any(c.get("sources") or c.get("after") for c in t["calls"]))
    data = sum(1 for t in turns if any(c.get("sources") for c in t["calls"]))
    return dependent, data
