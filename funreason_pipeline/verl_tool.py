"""verl's multi-turn tool agent loop runs our environments: `FunReasonTool` is one tool of a toolset.

The contract followed is verl 0.9.1's (`verl/tools/base_tool.py` and
`verl/experimental/agent_loop/tool_agent_loop.py`, `ToolAgentLoop._call_tool`):

* verl builds one tool object per entry of `actor_rollout_ref.rollout.multi_turn.tool_config_path`
  as `cls(config=<entry's config>, tool_schema=<entry's tool_schema>)` (the RL export writes that
  YAML per toolset);
* for **every single call** it runs `create(create_kwargs=row.extra_info.tools_kwargs[tool].create_kwargs)`,
  then `execute(instance_id, arguments, agent_data=...)`, then `release(instance_id)`, and several
  calls of one generation run concurrently (`asyncio.gather`).

So a trajectory's environment cannot live in the tool instance: it lives here, keyed by the
request id verl gives each rollout (`agent_data.request_id`), shared by all tools of the process, and
built on the first call from the row's start: its toolset, classes, initial state and earlier turns'
calls (replayed). The RL export writes that start once per row, under
`extra_info.tools_kwargs.funreason_world.create_kwargs` (`agent_data.tools_kwargs` carries it to every
tool), rather than a copy per tool; a tool's own `create_kwargs`, when a row gives them, win. Calls of one rollout run one at a time, in the order verl issued
them. Only the toolset's tool methods run (the name must be a tool of the toolset: private and
dunder names never are). Memory is bounded: a rollout's world is dropped after `idle_seconds`
without a call, and the oldest worlds go first when more than `max_worlds` are alive.

The step reward is 0: the episode is scored by `funreason_pipeline.reward.compute_score`, which
replays every `<tool_call>` of the rollout on a fresh start state (the same state this module built).

verl needs torch, so it is optional here: with verl installed the class subclasses its `BaseTool`
and answers its `ToolResponse`; without it, a stand-in with the same fields (tests run that way).
"""

import asyncio
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.reward import RowError, start_world

try:  # pragma: no cover - exercised only where verl (and torch) are installed
    from verl.tools.base_tool import BaseTool as _Base
    from verl.tools.schemas import ToolResponse
except ImportError:
    import pydantic

    _Base = object

    class ToolResponse(pydantic.BaseModel):  # verl.tools.schemas.ToolResponse's fields
        text: str | None = None
        image: list[Any] | None = None
        video: list[Any] | None = None

CREATE_FIELDS = ("toolset", "classes", "initial_state", "prior_calls")
WORLD_KEY = "funreason_world"  # export/rl.py writes the row's start under tools_kwargs[WORLD_KEY]


def create_kwargs(extra_info: Mapping[str, Any]) -> dict[str, Any]:
    """What `extra_info.tools_kwargs[<tool>].create_kwargs` holds for a row: the fields that rebuild
    the turn's start state (JSON text kept as text: one Arrow type for every row)."""
    missing = [f for f in CREATE_FIELDS if f not in extra_info]
    if missing:
        raise RowError(f"extra_info lacks {missing}")
    return {f: extra_info[f] for f in CREATE_FIELDS}


def result_text(value: Any) -> str:
    """A call's result as the tool message shows it in the SFT exports (JSON, the environment's key order)."""
    return json.dumps(value, ensure_ascii=False)


@dataclass
class _Rollout:
    world: World
    start: dict[str, Any]  # the create_kwargs it was built from: a later call must agree
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    used: float = field(default_factory=time.monotonic)
    calls: int = 0


class Worlds:
    """The live worlds of the process's rollouts, by request id, bounded in count and idle time."""

    def __init__(self, max_worlds: int = 4096, idle_seconds: float = 900.0):
        self.max_worlds = max_worlds
        self.idle_seconds = idle_seconds
        self._by_request: OrderedDict[str, _Rollout] = OrderedDict()
        self._guard = threading.Lock()  # verl may run tools from several event loops' threads

    def __len__(self) -> int:
        return len(self._by_request)

    def get(self, request_id: str, kwargs: Mapping[str, Any]) -> _Rollout:
        start = create_kwargs(kwargs)
        with self._guard:
            self._drop_idle(time.monotonic())
            rollout = self._by_request.get(request_id)
            if rollout is not None:
                if rollout.start != start:
                    raise RowError(f"request {request_id!r} was started from another row's state")
                self._by_request.move_to_end(request_id)
                return rollout
        _, world, _ = start_world(start)  # outside the guard: replaying earlier turns takes time
        with self._guard:
            if request_id not in self._by_request:
                while len(self._by_request) >= max(1, self.max_worlds):  # the least recently used go first
                    self._by_request.popitem(last=False)
                self._by_request[request_id] = _Rollout(world, start)
            self._by_request.move_to_end(request_id)
            return self._by_request[request_id]

    def _drop_idle(self, now: float) -> None:
        for rid in [r for r, ro in self._by_request.items() if now - ro.used > self.idle_seconds]:
            del self._by_request[rid]


WORLDS = Worlds()  # one per process: every tool object of the process shares it


def _schema_name(tool_schema: Any) -> str:
    if isinstance(tool_schema, Mapping):
        return str(tool_schema["function"]["name"])
    return str(tool_schema.function.name)  # verl's OpenAIFunctionToolSchema


def _request_id(kwargs: Mapping[str, Any]) -> str:
    agent_data = kwargs.get("agent_data")
    rid = getattr(agent_data, "request_id", None) or kwargs.get("request_id")
    if not rid:
        raise RowError("no request id: run this tool from verl's tool agent loop (agent_name: tool_agent), "
                       "which passes agent_data to execute")
    return str(rid)


def _shared_start(kwargs: Mapping[str, Any]) -> Mapping[str, Any]:
    tools_kwargs = getattr(kwargs.get("agent_data"), "tools_kwargs", None) or {}
    start = (tools_kwargs.get(WORLD_KEY) or {}).get("create_kwargs")
    if not start:
        raise RowError(f"the row gives no start state: extra_info.tools_kwargs.{WORLD_KEY}.create_kwargs is missing")
    return start


class FunReasonTool(_Base):
    """One tool of a toolset, for verl's tool agent loop (see the module docstring).

    `config` (the tool config YAML's `config`): `type: native`, and optionally `max_worlds` and
    `idle_seconds` (they size the process's shared store on first use)."""

    def __init__(self, config: dict, tool_schema: Any):
        if _Base is not object:
            super().__init__(config, tool_schema)
        self.config = dict(config or {})
        self.tool_schema = tool_schema
        self.name = _schema_name(tool_schema)
        self.worlds = WORLDS
        if "max_worlds" in self.config:
            self.worlds.max_worlds = int(self.config["max_worlds"])
        if "idle_seconds" in self.config:
            self.worlds.idle_seconds = float(self.config["idle_seconds"])
        self._instances: dict[str, dict[str, Any]] = {}

    def get_openai_tool_schema(self) -> Any:
        return self.tool_schema

    async def create(self, instance_id: str | None = None, **kwargs: Any) -> tuple[str, ToolResponse]:
        instance_id = instance_id or uuid4().hex
        self._instances[instance_id] = dict(kwargs.get("create_kwargs") or {})
        return instance_id, ToolResponse()

    async def execute(self, instance_id: str, parameters: dict[str, Any], **kwargs: Any
                      ) -> tuple[ToolResponse, float, dict]:
        if instance_id not in self._instances:
            raise RowError(f"unknown instance {instance_id!r}: call create first")
        if not isinstance(parameters, Mapping):
            return ToolResponse(text=result_text({"error": "arguments must be a JSON object"})), 0.0, {"ok": False}
        rollout = self.worlds.get(_request_id(kwargs), self._instances[instance_id] or _shared_start(kwargs))
        async with rollout.lock:  # calls of one generation arrive together: run them one at a time
            rollout.used = time.monotonic()
            rollout.calls += 1
            if self.name not in rollout.world.tools:
                res_value, ok = {"error": f"unknown tool {self.name!r} for toolset "
                                          f"{rollout.start['toolset']!r}"}, False
            else:
                res = rollout.world.call(self.name, dict(parameters))
                res_value, ok = (res.value, True) if res.ok else ({"error": res.error}, False)
        return ToolResponse(text=result_text(res_value)), 0.0, {"ok": ok, "calls": rollout.calls}

    async def calc_reward(self, instance_id: str, **kwargs: Any) -> float:
        return 0.0  # the episode's reward is funreason_pipeline.reward.compute_score

    async def release(self, instance_id: str, **kwargs: Any) -> None:
        self._instances.pop(instance_id, None)  # the rollout's world stays for its next call
