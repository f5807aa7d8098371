"""User adapter: any stateful Python class, referenced as `package.module:ClassName`, as an Environment.

Tools are the class's public methods (user_tools.py): JSON Schemas from type hints (user_schemas.py)
plus Google, NumPy or reST docstrings (user_docstrings.py), or from an OpenAI-format schema file.
Scenarios come from a seeded generator function or a JSON/JSONL file of examples (user_scenarios.py).
Like the BFCL adapter, methods are called only from the allow-list of derived tools, with checked and
copied arguments, and every failure of a call becomes an error result, including failures a method
reports in its return value (user_results.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from funreason_pipeline.environments.base import (
    EnvironmentConfigError,
    ToolResult,
    check_arguments,
    invoke_tool,
    public_state,
    to_json_value,
)
from funreason_pipeline.environments.deadline import CallTimeout, deadline
from funreason_pipeline.environments.failures import no_op_of
from funreason_pipeline.environments.user_docstrings import DocEntry, ParsedDocstring, parse_docstring
from funreason_pipeline.environments.user_results import plain_result
from funreason_pipeline.environments.user_scenarios import (
    SCENARIO_FILE_SUFFIXES,
    ScenarioSource,
    import_object,
    is_import_path,
)
from funreason_pipeline.environments.user_schemas import UnusableType, hint_schema
from funreason_pipeline.environments.user_tools import (
    FunctionSchema,
    UserTool,
    derive_tools,
    load_schema_file,
)
from funreason_pipeline.models import ToolSpec

# the names other modules and tests import from here
__all__ = ["DocEntry", "EnvironmentOptions", "FunctionSchema", "ParsedDocstring", "ScenarioSource", "UnusableType",
           "UserEnvironment", "UserFactory", "UserTool", "derive_tools", "hint_schema", "import_object",
           "is_import_path", "load_schema_file", "parse_docstring", "user_factory"]

SCENARIO_LOADERS = ("load_scenario", "_load_scenario")  # `_load_scenario` is BFCL's name


# ---- config options ---------------------------------------------------------------------------


class EnvironmentOptions(BaseModel):
    """Per-class options of a user environment (the `environments:` mapping of a toolset entry).

    `scenarios` is either a seeded generator `package.module:function` (called as `function(seed)`,
    returns the dict given to `load_scenario`) or a path to a .json (a list) / .jsonl file of example
    scenarios, one picked per seed. `schema_file` is a JSON file of tools in OpenAI format (each may
    carry a `response` schema) that replaces the derived schema of every method it names. Relative
    paths are relative to the toolset config file. `call_timeout_s` limits one tool call (and one
    scenario load): a call that runs longer fails with a timeout error instead of hanging the stage.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    scenarios: str | None = None
    schema_file: str | None = None
    call_timeout_s: float | None = Field(10.0, gt=0)

    @field_validator("scenarios")
    @classmethod
    def _scenario_source(cls, v: str | None) -> str | None:
        if v is not None and not (is_import_path(v) or v.endswith(SCENARIO_FILE_SUFFIXES)):
            raise ValueError(
                f"scenarios {v!r} must be a generator import path package.module:function "
                "or a path to a .json/.jsonl file of scenarios"
            )
        return v

    @field_validator("schema_file")
    @classmethod
    def _schema_is_json(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith(".json"):
            raise ValueError(f"schema_file {v!r} must be a .json file of tools in OpenAI format")
        return v

    def resolved(self, base_dir: Path) -> EnvironmentOptions:
        """The same options with file paths made absolute against `base_dir` (the config's folder)."""

        def absolute(p: str | None) -> str | None:
            if p is None or is_import_path(p) or Path(p).is_absolute():
                return p
            return str((base_dir / p).resolve())

        return self.model_copy(update={"scenarios": absolute(self.scenarios),
                                       "schema_file": absolute(self.schema_file)})


# ---- the adapter ------------------------------------------------------------------------------


class UserEnvironment:
    """One live instance of a user class."""

    def __init__(self, class_name: str, instance: Any, tools: Mapping[str, UserTool],
                 call_timeout_s: float | None = None) -> None:
        self.class_name = class_name
        self._instance = instance
        self._tools = tools  # the allow-list: nothing else on the instance is ever called
        self.call_timeout_s = call_timeout_s

    def tool_specs(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    def load_scenario(self, scenario: dict[str, Any]) -> None:
        loader = next((getattr(self._instance, n) for n in SCENARIO_LOADERS if hasattr(self._instance, n)), None)
        if loader is None:
            if scenario:
                raise EnvironmentConfigError(
                    f"{self.class_name}: scenario failed to load: the class has no load_scenario(dict) method"
                )
            return
        try:
            with deadline(self.call_timeout_s, f"{self.class_name} scenario load"):
                outcome = loader(copy.deepcopy(scenario))
        except (Exception, CallTimeout) as exc:  # a broken scenario must name the class and the problem
            raise EnvironmentConfigError(
                f"{self.class_name}: scenario failed to load: {type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(outcome, dict) and "error" in outcome:
            raise EnvironmentConfigError(f"{self.class_name}: scenario failed to load: {outcome['error']}")

    def call(self, method: str, arguments: dict[str, Any]) -> ToolResult:
        tool = self._tools.get(method)
        if tool is None:
            return ToolResult(None, f"unknown tool {method!r} for {self.class_name}")
        problem = check_arguments(tool.spec, arguments) or no_op_of(
            tool.spec.properties, tool.spec.required, arguments)
        if problem:
            return ToolResult(None, problem)
        # fresh copies: a tool may keep its input (store a list) or mutate a default (`tags=[]`)
        kwargs = {n: copy.deepcopy(v) for n, v in tool.mutable_defaults.items()}
        for name, value in arguments.items():
            adapter = tool.adapters.get(name)
            try:
                kwargs[name] = adapter.validate_python(copy.deepcopy(value)) if adapter else copy.deepcopy(value)
            except ValidationError as exc:
                detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or name}: {e['msg']}" for e in exc.errors()[:3])
                return ToolResult(None, f"invalid argument {name!r} for {method}: {detail}")
        fn = getattr(self._instance, method)
        try:
            with deadline(self.call_timeout_s, f"{self.class_name}.{method}"):
                # app types (dataclasses, Enums, dates) become JSON before the JSON check
                result = invoke_tool(lambda **kw: plain_result(fn(**kw)), method, kwargs)
        except CallTimeout as exc:
            return ToolResult(None, f"{method} timed out: {exc}")
        return result  # a returned failure ({"ok": False}, "Error: ...") is already an error (invoke_tool)

    def snapshot(self) -> dict[str, Any]:
        own = getattr(self._instance, "snapshot", None)
        if not callable(own):
            return public_state(self._instance)
        try:
            return to_json_value(own())
        except Exception as exc:  # the class's own snapshot is part of its contract with us
            raise EnvironmentConfigError(
                f"{self.class_name}: snapshot() failed or is not JSON: {type(exc).__name__}: {exc}"
            ) from exc

    def copy(self) -> UserEnvironment:
        return UserEnvironment(self.class_name, copy.deepcopy(self._instance), self._tools, self.call_timeout_s)


class UserFactory:
    """Makes fresh instances of one user class and its seeded scenarios."""

    def __init__(self, class_ref: str, options: EnvironmentOptions | None = None) -> None:
        self.class_name = class_ref
        self.options = options or EnvironmentOptions()
        cls = import_object(class_ref, "environment class")
        if not isinstance(cls, type):
            raise EnvironmentConfigError(f"environment class {class_ref!r} is not a class")
        self._cls = cls
        entries = load_schema_file(self.options.schema_file, class_ref) if self.options.schema_file else {}
        self._tools = {t.spec.method: t for t in derive_tools(cls, class_ref, entries)}
        self._scenarios = ScenarioSource(class_ref, self.options.scenarios)
        has_loader = any(callable(getattr(cls, n, None)) for n in SCENARIO_LOADERS)
        if self.options.scenarios and not has_loader:
            raise EnvironmentConfigError(
                f"{class_ref}: scenarios are configured but the class has no load_scenario(dict) method"
            )

    def create(self) -> UserEnvironment:
        try:
            instance = self._cls()
        except Exception as exc:
            raise EnvironmentConfigError(
                f"{self.class_name}: cannot create an instance without arguments: {type(exc).__name__}: {exc}"
            ) from exc
        return UserEnvironment(self.class_name, instance, self._tools, self.options.call_timeout_s)

    def tool_specs(self) -> list[ToolSpec]:
        return [t.spec for t in self._tools.values()]

    def generate_scenario(self, seed: int) -> dict[str, Any]:
        return self._scenarios.generate(seed)

    def argument_examples(self) -> dict[str, list[dict[str, Any]]]:
        """Optional `ARGUMENT_EXAMPLES = {method: [{param: value, ...}, ...]}` on the class: valid
        argument combinations the schema cannot express (unit pairs, known ids)."""
        return self._method_table("ARGUMENT_EXAMPLES", "lists of argument dicts",
                                  lambda v: isinstance(v, list) and all(isinstance(x, dict) for x in v))

    def unusable_tools(self) -> dict[str, str]:
        """Optional `UNUSABLE_TOOLS = {method: reason}`: tools no call of which can succeed (a stub
        kept for the schema); they are never sampling targets."""
        return self._method_table("UNUSABLE_TOOLS", "reasons", lambda v: isinstance(v, str))

    def _method_table(self, attr: str, what: str, valid: Callable[[Any], bool]) -> dict[str, Any]:
        """A class attribute mapping tool methods to something, checked (shape and method names)."""
        raw = getattr(self._cls, attr, None) or {}
        if not isinstance(raw, dict) or not all(valid(v) for v in raw.values()):
            raise EnvironmentConfigError(f"{self.class_name}.{attr} must map method names to {what}")
        unknown = sorted(set(raw) - set(self._tools))
        if unknown:
            raise EnvironmentConfigError(f"{self.class_name}.{attr} names unknown tools: {unknown}")
        return raw

    def check(self, seeds: Sequence[int] = (0, 1, 2)) -> None:
        """Fail at config time, not mid-run: scenarios must load, the state must snapshot and copy,
        and the generator must be deterministic (replays start again from the stored seed's scenario)."""
        self.argument_examples()  # a malformed ARGUMENT_EXAMPLES or UNUSABLE_TOOLS fails here, named
        self.unusable_tools()
        scenarios = self._scenarios.examples or [self.generate_scenario(s) for s in seeds]
        if self._scenarios.ref and is_import_path(self._scenarios.ref):
            again = self.generate_scenario(seeds[0])
            if again != scenarios[0]:
                raise EnvironmentConfigError(
                    f"{self.class_name}: scenario generator {self._scenarios.ref} is not deterministic: two "
                    f"calls with seed {seeds[0]} differ (use random.Random(seed), not the global random)"
                )
        for i, scenario in enumerate(scenarios):
            env = self.create()
            env.load_scenario(scenario)
            try:
                state = env.snapshot()
            except EnvironmentConfigError:
                raise
            except ValueError as exc:  # e.g. objects that refer back to each other: offer snapshot()
                raise EnvironmentConfigError(
                    f"{self.class_name}: the public attributes cannot be snapshot as JSON ({exc}); "
                    "define a snapshot() method that returns the state as JSON"
                ) from exc
            try:
                twin = env.copy()
            except Exception as exc:
                raise EnvironmentConfigError(
                    f"{self.class_name}: instances must support copy.deepcopy: {type(exc).__name__}: {exc}"
                ) from exc
            if twin.snapshot() != state:
                raise EnvironmentConfigError(
                    f"{self.class_name}: a deep copy does not snapshot equal to its original (scenario #{i})"
                )


@lru_cache(maxsize=64)
def user_factory(class_ref: str, options: EnvironmentOptions | None = None) -> UserFactory:
    """The checked factory of a user class; cached because every World builds its environments anew."""
    factory = UserFactory(class_ref, options)
    factory.check()
    return factory
