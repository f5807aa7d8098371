"""The toolset entry of an MCP server: how to start it and where its state lives.

A toolset names an MCP server as the class `mcp:<name>` and describes it under `servers: {<name>: ...}`
(docs/mcp_servers.md). Paths may use `{state_dir}`: the private folder of the running server, which
also holds its HOME and temp folder. Calls and results show `{state_dir}` as `visible_state_dir`, so
recorded calls do not depend on where a worker's folder happens to be.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MCP_PREFIX = "mcp:"
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
SERVER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
# what the server must not inherit from us: our HOME, temp folder and secrets (only these pass on)
PASSED_ENV = ("PATH", "LANG", "LC_ALL", "SYSTEMROOT")


def is_mcp_ref(class_ref: str) -> bool:
    return class_ref.startswith(MCP_PREFIX)


def server_name(class_ref: str) -> str:
    return class_ref[len(MCP_PREFIX):]


class McpCall(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class McpState(BaseModel):
    """Where the server keeps its state. `none`: nothing to snapshot (a stateless server, or state the
    pipeline cannot see: verification then compares responses only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["json", "jsonl", "dir", "sqlite", "none"]
    path: str | None = None

    @model_validator(mode="after")
    def _path_in_state_dir(self) -> McpState:
        if self.kind == "none":
            if self.path is not None:
                raise ValueError("state kind 'none' takes no path")
            return self
        if not self.path or not self.path.startswith("{state_dir}/"):
            # a state path outside the private folder would be shared by every instance of the server
            raise ValueError(f"state path {self.path!r} must start with '{{state_dir}}/' (each running "
                             "server has its own folder; a fixed path would be shared between instances)")
        return self


class McpServerOptions(BaseModel):
    """One MCP server of a toolset (the `servers:` mapping of a toolset entry)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: str
    args: list[str] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)
    state: McpState
    visible_state_dir: str = "/workspace"
    # fields whose values differ between two identical runs (timestamps): masked in snapshots and results
    mask: list[str] = Field(default_factory=list)
    # regular expressions whose matches in any text of results and snapshots are masked
    mask_patterns: list[str] = Field(default_factory=list)
    # regular expressions that mark a failure reported inside a text result, where the server sets
    # no `isError` (the filesystem server's read_multiple_files: "a.txt: Error - ENOENT: ...")
    error_patterns: list[str] = Field(default_factory=list)
    # a .json file: a list of scenarios, each {"calls": [{"tool": ..., "arguments": {...}}]} run on an empty state
    scenarios: str | None = None
    # read calls the start-up self-test compares (default: read-only tools without required arguments)
    probe_reads: list[McpCall] = Field(default_factory=list)
    # tool -> why it is never called (its effect cannot be isolated, e.g. state kept in server memory)
    exclude_tools: dict[str, str] = Field(default_factory=dict)
    call_timeout_s: float = Field(10.0, gt=0)
    start_timeout_s: float = Field(20.0, gt=0)
    # restore: one server per worker, each call restores the instance's state (the server must re-read
    # it; proved at start-up). process: a server process per instance, for servers that keep state in
    # memory; a copy is a new process that replays the original's calls (slow: ~a start per copy)
    isolation: Literal["restore", "process"] = "restore"

    @field_validator("command", "args", "env", mode="after")
    @classmethod
    def _known_placeholders(cls, v: Any) -> Any:
        texts = [v] if isinstance(v, str) else list(v.values()) if isinstance(v, dict) else list(v)
        for text in texts:
            for name in _PLACEHOLDER.findall(text):
                if name != "state_dir":
                    raise ValueError(f"unknown placeholder {{{name}}} in {text!r}; the only one is {{state_dir}}")
        return v

    @field_validator("mask_patterns", "error_patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"pattern {p!r} is not a regular expression: {exc}") from exc
        return v

    @field_validator("visible_state_dir")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or v.endswith("/") or len(v) < 2:
            raise ValueError(f"visible_state_dir {v!r} must be an absolute path without a trailing slash")
        return v

    @field_validator("scenarios")
    @classmethod
    def _scenario_file(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(".json"):
            raise ValueError(f"scenarios {v!r} must be a .json file: a list of {{\"calls\": [...]}}")
        return v

    def resolved(self, base_dir: Path) -> McpServerOptions:
        """Relative file paths (a command with a slash, the scenario file) made absolute against the
        config's folder; a bare command name is looked up on PATH when the server starts."""

        def absolute(p: str | None) -> str | None:
            if p is None or "{" in p or Path(p).is_absolute() or "/" not in p and not p.endswith(".json"):
                return p
            return str((base_dir / p).resolve())

        return self.model_copy(update={"command": absolute(self.command), "scenarios": absolute(self.scenarios)})

    def command_line(self, state_dir: str) -> list[str]:
        cmd = [expand(self.command, state_dir), *(expand(a, state_dir) for a in self.args)]
        if "/" not in cmd[0]:
            found = shutil.which(cmd[0])
            cmd[0] = found or cmd[0]
        return cmd

    def key(self) -> str:
        return self.model_dump_json()


def expand(text: str, state_dir: str) -> str:
    return text.replace("{state_dir}", state_dir)
