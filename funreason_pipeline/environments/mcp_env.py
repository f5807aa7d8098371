"""An MCP server as an Environment: the adapter the sampler, probing and replay talk to.

An instance is its state blob plus the shared server of its entry (mcp_server.py): `copy` shares the
immutable blob, `call` runs on the server with the blob restored, `snapshot` is the canonical state.
Scenarios are lists of calls run on an empty state, so a toolset needs no Python at all.
"""

from __future__ import annotations

import json
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

from funreason_pipeline.environments.base import EnvironmentConfigError, ToolResult, check_arguments
from funreason_pipeline.environments.failures import no_op_of
from funreason_pipeline.environments.mcp_config import McpCall, McpServerOptions
from funreason_pipeline.environments.mcp_server import McpServer, server_for
from funreason_pipeline.environments.mcp_state import Blob, McpStateError, canonical, empty_blob
from funreason_pipeline.models import ToolSpec

_SCENARIOS = TypeAdapter(list[dict[str, list[McpCall]]])


class McpEnvironment:
    def __init__(self, factory: McpFactory, blob: Blob, own: McpServer | None = None,
                 log: tuple[tuple[str, str], ...] = ()) -> None:
        self.class_name = factory.class_name
        self._factory = factory
        self._blob = blob
        # isolation "process": this instance's own server and the calls that made its state
        self._own = own
        self._log = log
        if own is not None:  # the process ends with the instance
            weakref.finalize(self, own.close)

    def _server(self) -> McpServer:
        return self._own or self._factory.server()

    def tool_specs(self) -> list[ToolSpec]:
        return self._factory.tool_specs()

    def load_scenario(self, scenario: dict[str, Any]) -> None:
        for call in scenario_calls(scenario, self.class_name):
            result = self.call(call.tool, dict(call.arguments))
            if not result.ok:
                raise EnvironmentConfigError(
                    f"{self.class_name}: scenario failed to load: {call.tool}({call.arguments}): {result.error}")

    def call(self, method: str, arguments: dict[str, Any]) -> ToolResult:
        server = self._server()
        spec = server.by_method.get(method)
        if spec is None:
            return ToolResult(None, f"unknown tool {method!r} for {self.class_name}")
        reason = self._factory.options.exclude_tools.get(method)
        if reason:
            return ToolResult(None, f"{method} is not run here: {reason}")
        problem = check_arguments(spec, arguments) or no_op_of(spec.properties, spec.required, arguments)
        if problem:
            return ToolResult(None, problem)
        result, self._blob = server.call(self._blob, method, json.loads(json.dumps(arguments)))
        if self._own is not None:
            self._log += ((method, json.dumps(arguments)),)
        return result

    def snapshot(self) -> dict[str, Any]:
        server = self._server()
        opts = self._factory.options
        try:
            state = canonical(opts.state.kind, self._blob, opts.mask, translate=server.to_visible,
                              patterns=opts.mask_patterns)
        except McpStateError as exc:
            raise EnvironmentConfigError(f"{self.class_name}: {exc}") from exc
        return {"state": state}

    def copy(self) -> McpEnvironment:
        if self._own is None:
            return McpEnvironment(self._factory, self._blob)
        # a server keeping state in memory cannot be copied: a new process replays the calls so far
        twin = self._factory.create()
        for method, arguments in self._log:
            twin.call(method, json.loads(arguments))
        if twin._blob != self._blob:
            raise EnvironmentConfigError(f"{self.class_name}: replaying {len(self._log)} calls on a new process "
                                         "did not give the same state: the server is not deterministic")
        return twin


def scenario_calls(scenario: dict[str, Any], where: str) -> list[McpCall]:
    stray = sorted(set(scenario) - {"calls"})
    if stray:
        raise EnvironmentConfigError(f"{where}: an MCP scenario is {{\"calls\": [...]}}; unknown keys {stray}")
    try:
        return _SCENARIOS.validate_python([{"calls": scenario.get("calls", [])}])[0]["calls"]
    except ValidationError as exc:
        raise EnvironmentConfigError(f"{where}: bad scenario calls: {exc.errors()[0]['msg']}") from exc


class McpFactory:
    """Fresh instances of one MCP server entry; the server starts on first use, not on config load."""

    def __init__(self, class_ref: str, options: McpServerOptions) -> None:
        self.class_name = class_ref
        self.options = options
        self.scenarios: list[dict[str, list[McpCall]]] = []
        if options.scenarios:
            path = Path(options.scenarios)
            try:
                self.scenarios = _SCENARIOS.validate_python(json.loads(path.read_text()))
            except (OSError, ValueError) as exc:
                detail = exc.errors()[0] if isinstance(exc, ValidationError) else exc
                raise EnvironmentConfigError(
                    f"{class_ref}: scenarios {path} must be a JSON list of {{\"calls\": [{{\"tool\", \"arguments\"}}]}}: "
                    f"{detail}") from exc

    def server(self) -> McpServer:
        """The worker's shared server (isolation "process": used for the catalog only, never called)."""
        setup = list(self.scenarios[0]["calls"]) if self.scenarios else []
        return server_for(self.class_name, self.options, setup, shared=self.options.isolation == "restore")

    def create(self) -> McpEnvironment:
        self.server()
        if self.options.isolation == "process":
            own = McpServer(self.class_name, self.options, [], shared=False)
            return McpEnvironment(self, empty_blob(self.options.state.kind), own=own)
        return McpEnvironment(self, empty_blob(self.options.state.kind))

    def tool_specs(self) -> list[ToolSpec]:
        return list(self.server().specs)

    def generate_scenario(self, seed: int) -> dict[str, Any]:
        if not self.scenarios:
            return {}
        chosen = self.scenarios[seed % len(self.scenarios)]
        return {"calls": [c.model_dump() for c in chosen["calls"]]}

    def unusable_tools(self) -> dict[str, str]:
        return dict(self.options.exclude_tools)

    def tool_hints(self) -> dict[str, dict[str, bool]]:
        """Tool -> its MCP annotations (readOnlyHint, destructiveHint, idempotentHint), for probing."""
        return dict(self.server().hints)

    def server_info(self) -> dict[str, Any]:
        """The server's name and version (from initialize): part of the graph fingerprint."""
        return dict(self.server().server_info)


@lru_cache(maxsize=64)
def _cached(class_ref: str, key: str) -> McpFactory:
    return McpFactory(class_ref, McpServerOptions.model_validate_json(key))


def mcp_factory(class_ref: str, options: McpServerOptions) -> McpFactory:
    return _cached(class_ref, options.key())
