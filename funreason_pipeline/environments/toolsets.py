"""Toolsets: the committed config naming class combinations, and the World that runs one.

A World holds one live environment per class of a toolset and routes tool names to them. Tool names
are unique inside a toolset: when two classes share a method name, both get a `Class_method` name.
A class is a BFCL class name or a user class `package.module:ClassName` (environments/user.py), whose
options (scenario source, schema file) sit in the toolset's `environments` mapping.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from funreason_pipeline import config
from funreason_pipeline.environments.base import (
    Environment,
    EnvironmentConfigError,
    EnvironmentFactory,
    ToolResult,
)
from funreason_pipeline.environments.bfcl import BFCL_CLASSES, BfclFactory
from funreason_pipeline.environments.mcp_config import SERVER_NAME, McpServerOptions, is_mcp_ref, server_name
from funreason_pipeline.environments.user import EnvironmentOptions, is_import_path, user_factory
from funreason_pipeline.models import ToolSpec

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class ToolsetConfig(BaseModel):
    name: str
    classes: list[str] = Field(min_length=1, max_length=3)
    # options of user classes, keyed like `classes`; file paths in them are made absolute on load
    environments: dict[str, EnvironmentOptions] = Field(default_factory=dict)
    # MCP servers, used as classes `mcp:<name>` (environments/mcp_config.py)
    servers: dict[str, McpServerOptions] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name_is_a_partition_key(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError(f"toolset name {v!r} must match {_NAME.pattern}")
        return v

    @field_validator("classes")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"classes repeat: {v}")
        return v

    @model_validator(mode="after")
    def _options_name_classes(self) -> ToolsetConfig:
        stray = sorted(set(self.environments) - set(self.classes))
        if stray:
            raise ValueError(f"environments {stray} are not among the toolset's classes {self.classes}")
        bad = sorted(n for n in self.servers if not SERVER_NAME.match(n))
        if bad:
            raise ValueError(f"server names {bad} must match {SERVER_NAME.pattern}")
        named = {server_name(c) for c in self.classes if is_mcp_ref(c)}
        if named - set(self.servers) or set(self.servers) - named:
            raise ValueError(f"classes mcp:<name> and servers must match: classes name {sorted(named)}, "
                             f"servers are {sorted(self.servers)}")
        return self

    def factory(self, class_ref: str) -> EnvironmentFactory:
        return factory_for(class_ref, options=self.environments.get(class_ref), server=self.server_options(class_ref))

    def server_options(self, class_ref: str) -> McpServerOptions | None:
        return self.servers.get(server_name(class_ref)) if is_mcp_ref(class_ref) else None


class ToolsetFile(BaseModel):
    toolsets: list[ToolsetConfig] = Field(min_length=1)


def parse_toolsets(text: str, source: str = "<toolsets>", base_dir: Path | None = None) -> list[ToolsetConfig]:
    """Parse and validate a toolset config; any problem is an error naming the file and the entry.

    Relative file paths in `environments` options resolve against `base_dir` (the config's folder).
    """
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EnvironmentConfigError(f"{source}: not valid YAML: {exc}") from exc
    try:
        parsed = ToolsetFile.model_validate(raw)
    except ValidationError as exc:
        raise EnvironmentConfigError(f"{source}: invalid toolset config:\n{_explain(exc, raw)}") from exc
    names = [t.name for t in parsed.toolsets]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise EnvironmentConfigError(f"{source}: toolset names repeat: {dupes}")
    base = base_dir or Path.cwd()
    toolsets = [ts.model_copy(update={"environments": {c: o.resolved(base) for c, o in ts.environments.items()},
                                      "servers": {n: o.resolved(base) for n, o in ts.servers.items()}})
                for ts in parsed.toolsets]
    for ts in toolsets:
        for cls in ts.classes:
            # fail early: unknown classes, user classes that do not import or whose scenarios do not load
            # (an MCP server starts on first use, so a broken one fails only its own toolset)
            factory_for(cls, context=f"{source}: toolset {ts.name!r}", options=ts.environments.get(cls),
                        server=ts.server_options(cls))
    return toolsets


def _explain(exc: ValidationError, raw: Any) -> str:
    """Pydantic's errors, with `toolsets.3` replaced by the entry's name when it has one."""
    entries = raw.get("toolsets") if isinstance(raw, dict) else None
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(map(str, loc))
        if len(loc) >= 2 and loc[0] == "toolsets" and isinstance(loc[1], int) and isinstance(entries, list):
            entry = entries[loc[1]] if loc[1] < len(entries) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            rest = ".".join(map(str, loc[2:]))
            where = f"toolset {name!r}" + (f": {rest}" if rest else "") if name else where
        lines.append(f"  {where}: {err['msg']}")
    return "\n".join(lines)


@lru_cache(maxsize=8)
def _load_toolsets_cached(path: str, mtime: float) -> tuple[ToolsetConfig, ...]:
    return tuple(parse_toolsets(Path(path).read_text(), source=path, base_dir=Path(path).parent))


def load_toolsets(path: str | Path | None = None) -> list[ToolsetConfig]:
    """The toolsets of `path`, or of the configured file plus the files `FUNREASON_TOOLSETS_EXTRA`
    adds to it (a name defined twice is an error naming both files)."""
    files = [Path(path)] if path else [config.toolsets_path(), *config.extra_toolsets_paths()]
    out: list[ToolsetConfig] = []
    where: dict[str, Path] = {}
    for p in files:
        if not p.exists():
            raise EnvironmentConfigError(f"toolset config not found: {p}")
        for ts in _load_toolsets_cached(str(p), p.stat().st_mtime):
            if ts.name in where:
                raise EnvironmentConfigError(f"toolset {ts.name!r} is defined in both {where[ts.name]} and {p}")
            where[ts.name] = p
            out.append(ts)
    return out


def toolset_by_name(name: str, path: str | Path | None = None) -> ToolsetConfig:
    for ts in load_toolsets(path):
        if ts.name == name:
            return ts
    raise EnvironmentConfigError(f"unknown toolset {name!r}")


def factory_for(class_ref: str, context: str = "", options: EnvironmentOptions | None = None,
                server: McpServerOptions | None = None) -> EnvironmentFactory:
    """Resolve a class reference from the config to an environment factory."""
    where = f"{context}: " if context else ""
    if is_mcp_ref(class_ref):
        if server is None:
            raise EnvironmentConfigError(f"{where}{class_ref} needs an entry under the toolset's servers")
        from funreason_pipeline.environments.mcp_env import (
            mcp_factory,  # the MCP adapter loads only when used
        )
        try:
            return mcp_factory(class_ref, server)
        except EnvironmentConfigError as exc:
            raise EnvironmentConfigError(f"{where}{exc}") from exc
    if class_ref in BFCL_CLASSES:
        if options is not None and options != EnvironmentOptions():
            raise EnvironmentConfigError(f"{where}{class_ref} is a BFCL class; it takes no environment options")
        return BfclFactory(class_ref)
    if is_import_path(class_ref):
        try:
            return user_factory(class_ref, options)
        except EnvironmentConfigError as exc:
            raise EnvironmentConfigError(f"{where}{exc}") from exc
    raise EnvironmentConfigError(
        f"{where}unknown environment class {class_ref!r}; BFCL classes are {', '.join(sorted(BFCL_CLASSES))}, "
        "user classes are import paths package.module:ClassName, MCP servers are mcp:<name>"
    )


def toolset_tools(ts: ToolsetConfig) -> list[ToolSpec]:
    """All tools of a toolset with names made unique across its classes."""
    per_class = {cls: ts.factory(cls).tool_specs() for cls in ts.classes}
    counts: dict[str, int] = {}
    for specs in per_class.values():
        for s in specs:
            counts[s.name] = counts.get(s.name, 0) + 1
    tools = []
    for cls, specs in per_class.items():
        for s in specs:
            if counts[s.name] > 1:
                # the class name without its module (`pkg.mod:Clinic` -> `Clinic_login`); an underscore,
                # not a dot: OpenAI function names allow only [A-Za-z0-9_-]
                s = s.model_copy(update={"name": f"{cls.rsplit(':', 1)[-1]}_{s.method}"})
            tools.append(s)
    return tools


def _per_tool(ts: ToolsetConfig, tools: list[ToolSpec], hook: str) -> dict[str, Any]:
    """Tool name -> what an optional factory hook (`method -> value`) says of that tool's method."""
    out: dict[str, Any] = {}
    for cls in ts.classes:
        declared = getattr(ts.factory(cls), hook, None)
        by_method = declared() if callable(declared) else {}
        out.update({t.name: by_method[t.method] for t in tools
                    if t.class_name == cls and by_method.get(t.method)})
    return out


def toolset_argument_examples(ts: ToolsetConfig, tools: list[ToolSpec]) -> dict[str, list[dict[str, Any]]]:
    """Tool name -> joint argument examples its environment class documents (may be empty)."""
    return {name: list(examples) for name, examples in _per_tool(ts, tools, "argument_examples").items()}


def toolset_unusable_tools(ts: ToolsetConfig, tools: list[ToolSpec]) -> dict[str, str]:
    """Tool name -> why its environment says no call of it can succeed (not a sampling target)."""
    return _per_tool(ts, tools, "unusable_tools")


class World:
    """The live environments of one toolset, addressed by tool name."""

    def __init__(self, toolset: ToolsetConfig, envs: dict[str, Environment], tools: list[ToolSpec]):
        self.toolset = toolset
        self.envs = envs
        self.tools = {t.name: t for t in tools}

    @classmethod
    def from_scenario(
        cls, toolset: ToolsetConfig, scenario: dict[str, dict[str, Any]], tools: list[ToolSpec] | None = None
    ) -> World:
        envs = {}
        for class_name in toolset.classes:
            env = toolset.factory(class_name).create()
            env.load_scenario(scenario.get(class_name, {}))
            envs[class_name] = env
        return cls(toolset, envs, tools if tools is not None else toolset_tools(toolset))

    def call(self, tool: str, arguments: dict[str, Any]) -> ToolResult:
        spec = self.tools.get(tool)
        if spec is None:
            return ToolResult(None, f"unknown tool {tool!r} in toolset {self.toolset.name!r}")
        return self.envs[spec.class_name].call(spec.method, arguments)

    def snapshot(self) -> dict[str, Any]:
        return {name: env.snapshot() for name, env in self.envs.items()}

    def copy(self) -> World:
        twin = World.__new__(World)  # the same tools: their table is shared, not rebuilt (probing copies a lot)
        twin.toolset, twin.envs, twin.tools = self.toolset, {n: e.copy() for n, e in self.envs.items()}, self.tools
        return twin


def generate_scenario(toolset: ToolsetConfig, seed: int) -> dict[str, dict[str, Any]]:
    """A fresh initial state for every class of the toolset (each class gets its own derived seed)."""
    return {
        cls: toolset.factory(cls).generate_scenario(seed * 1009 + i) for i, cls in enumerate(toolset.classes)
    }
