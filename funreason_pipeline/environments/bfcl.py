"""BFCL adapter: the eight multi-turn classes of bfcl-eval as Environments.

Methods are called by name from an allow-list built from BFCL's function docs; BFCL's own
eval()-based executor is never used. Tool schemas come in the "Gorilla" dialect and are converted
to JSON Schema here.
"""

from __future__ import annotations

import ast
import copy
import importlib
import inspect
import json
import pickle
import re
import textwrap
from functools import cache
from importlib import resources
from typing import Any

from funreason_pipeline.environments.base import (
    EnvironmentConfigError,
    ToolResult,
    check_arguments,
    invoke_tool,
    public_state,
)
from funreason_pipeline.environments.bfcl_classes import BFCL_CLASSES, generate_scenario
from funreason_pipeline.environments.failures import no_op_of
from funreason_pipeline.models import ToolSpec

_BACKEND = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"


# Gorilla type names -> JSON Schema type names
_GORILLA_TYPES = {"dict": "object", "float": "number", "tuple": "array", "any": "string", "list": "array"}


def gorilla_to_json_schema(schema: Any) -> Any:
    """Convert a Gorilla-dialect schema (recursively) to JSON Schema."""
    if isinstance(schema, list):
        return [gorilla_to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = _GORILLA_TYPES.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: _lift_enum(gorilla_to_json_schema(sub)) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = gorilla_to_json_schema(value)
        else:
            out[key] = value
    return out


_ENUM_IN_DESCRIPTION = re.compile(r"\[Enum\]:\s*(\[.*?\]|[^.\n]*)")


def _lift_enum(prop: dict[str, Any]) -> dict[str, Any]:
    """Gorilla writes enums into descriptions ("[Enum]: ["on", "off"]"); JSON Schema has `enum`."""
    match = _ENUM_IN_DESCRIPTION.search(prop.get("description", ""))
    if not match or "enum" in prop:
        return prop
    raw = match.group(1).strip()
    try:
        values = json.loads(raw) if raw.startswith("[") else [v.strip() for v in raw.split(",")]
    except json.JSONDecodeError:
        return prop
    values = [v for v in values if isinstance(v, str) and v]
    if not values:
        return prop
    if prop.get("type") == "array":
        return {**prop, "items": {**prop.get("items", {"type": "string"}), "enum": values}}
    return {**prop, "enum": values}


@cache
def _function_docs(class_name: str) -> tuple[dict[str, Any], ...]:
    text = (resources.files("bfcl_eval") / "data" / "multi_turn_func_doc" / BFCL_CLASSES[class_name].doc_file).read_text()
    return tuple(json.loads(line) for line in text.splitlines() if line.strip())


@cache
def bfcl_tool_specs(class_name: str) -> tuple[ToolSpec, ...]:
    specs = []
    for doc in _function_docs(class_name):
        params = gorilla_to_json_schema(doc.get("parameters") or {"type": "object", "properties": {}})
        params.setdefault("properties", {})
        params["type"] = "object"
        specs.append(
            ToolSpec(
                name=doc["name"],
                class_name=class_name,
                method=doc["name"],
                description=doc.get("description", ""),
                parameters=params,
                response=gorilla_to_json_schema(doc.get("response")),
            )
        )
    return tuple(specs)


@cache
def _allow_list(class_name: str) -> dict[str, ToolSpec]:
    return {s.method: s for s in bfcl_tool_specs(class_name)}


@cache
def _bfcl_class(class_name: str) -> type:
    return getattr(importlib.import_module(f"{_BACKEND}.{BFCL_CLASSES[class_name].module}"), class_name)


@cache
def _mutable_default_params(cls: type, method: str) -> tuple[tuple[str, Any], ...]:
    """(name, default) of the method's parameters whose default is a list, dict or set, as written in
    its source: the live default object is shared by every call that leaves it out and may already
    have been mutated in this process (BFCL's own checker does, see BfclEnvironment.call)."""
    fn = getattr(cls, method)
    mutable = [n for n, p in inspect.signature(fn).parameters.items() if isinstance(p.default, (list, dict, set))]
    if not mutable:
        return ()
    args = next(n for n in ast.walk(ast.parse(textwrap.dedent(inspect.getsource(fn))))
                if isinstance(n, ast.FunctionDef)).args
    positional = [*args.posonlyargs, *args.args]
    written = {a.arg: d for a, d in zip(positional[len(positional) - len(args.defaults):], args.defaults)}
    written |= {a.arg: d for a, d in zip(args.kwonlyargs, args.kw_defaults) if d is not None}
    return tuple((n, ast.literal_eval(written[n])) for n in mutable)


def _mutable_defaults(instance: Any, method: str) -> dict[str, Any]:
    return {n: copy.deepcopy(d) for n, d in _mutable_default_params(type(instance), method)}


class BfclEnvironment:
    """One live instance of a BFCL class."""

    def __init__(self, class_name: str, instance: Any | None = None) -> None:
        if class_name not in BFCL_CLASSES:
            raise EnvironmentConfigError(
                f"unknown BFCL class {class_name!r}; known: {', '.join(sorted(BFCL_CLASSES))}"
            )
        self.class_name = class_name
        self._specs = _allow_list(class_name)
        self._instance: Any = instance if instance is not None else _bfcl_class(class_name)()
        # The instance pickled, kept until it next changes: copies of an unchanged environment (a
        # probe's fresh scenario, copied thousands of times) only unpickle, and only when used (a
        # call of another class's tool leaves this one untouched). None: not frozen.
        self._frozen: bytes | None = None

    @classmethod
    def _thawing(cls, class_name: str, frozen: bytes) -> BfclEnvironment:
        env = cls.__new__(cls)
        env.class_name, env._specs, env._instance, env._frozen = class_name, _allow_list(class_name), None, frozen
        return env

    def _live(self) -> Any:
        if self._instance is None:
            self._instance = pickle.loads(self._frozen)
        return self._instance

    def tool_specs(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def load_scenario(self, scenario: dict[str, Any]) -> None:
        loader = getattr(self._live(), "_load_scenario", None)
        self._frozen = None
        if loader is None:  # stateless (MathAPI)
            return
        try:
            loader(copy.deepcopy(scenario), long_context=False)
        except Exception as exc:  # a broken scenario must name the class and the problem
            raise EnvironmentConfigError(
                f"{self.class_name}: scenario failed to load: {type(exc).__name__}: {exc}"
            ) from exc

    def call(self, method: str, arguments: dict[str, Any]) -> ToolResult:
        spec = self._specs.get(method)
        if spec is None:
            return ToolResult(None, f"unknown tool {method!r} for {self.class_name}")
        # a call that would do nothing and report success (`edit_ticket(updates={})`) is a failure
        problem = check_arguments(spec, arguments) or no_op_of(spec.properties, spec.required, arguments)
        if problem:
            return ToolResult(None, problem)
        # A parameter whose default is mutable (`post_tweet(tags=[], mentions=[])`) is written into
        # the caller's `arguments`, so the call that gets recorded says what ran. Left out, BFCL's own
        # checker (which eval()s the recorded call) runs it with the one default list every instance
        # shares: `mention()` extends it, and a later tweet of another instance (the ground truth's)
        # starts with those mentions: execution_response_mismatch on a correct dialogue.
        instance = self._live()
        for name, value in _mutable_defaults(instance, method).items():
            arguments.setdefault(name, value)
        self._frozen = None  # the call may change the instance
        # Copies: tools keep references to their inputs (a tweet stores its `tags` list).
        return invoke_tool(getattr(instance, method), method, copy.deepcopy(arguments))

    def snapshot(self) -> dict[str, Any]:
        return public_state(self._live())

    def copy(self) -> BfclEnvironment:
        # A pickle round trip is a deep copy (shared objects stay shared, a directory's parent link
        # stays a cycle, a Random keeps its state) at a fraction of copy.deepcopy's cost.
        if self._frozen is None:
            self._frozen = pickle.dumps(self._instance, protocol=pickle.HIGHEST_PROTOCOL)
        return BfclEnvironment._thawing(self.class_name, self._frozen)


class BfclFactory:
    def __init__(self, class_name: str) -> None:
        if class_name not in BFCL_CLASSES:
            raise EnvironmentConfigError(
                f"unknown BFCL class {class_name!r}; known: {', '.join(sorted(BFCL_CLASSES))}"
            )
        self.class_name = class_name

    def create(self) -> BfclEnvironment:
        return BfclEnvironment(self.class_name)

    def tool_specs(self) -> list[ToolSpec]:
        return list(bfcl_tool_specs(self.class_name))

    def argument_examples(self) -> dict[str, list[dict[str, Any]]]:
        return dict(BFCL_CLASSES[self.class_name].argument_examples)

    def unusable_tools(self) -> dict[str, str]:
        return dict(BFCL_CLASSES[self.class_name].unusable)

    def generate_scenario(self, seed: int) -> dict[str, Any]:
        return generate_scenario(self.class_name, seed)
