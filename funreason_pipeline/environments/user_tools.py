"""The tools of a user class: its public methods, with schemas from hints and docstrings or from a
schema file (OpenAI format), and the pydantic adapters that turn JSON arguments into typed values."""

from __future__ import annotations

import inspect
import json
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from funreason_pipeline.environments.base import EnvironmentConfigError, to_json_value
from funreason_pipeline.environments.bfcl import gorilla_to_json_schema
from funreason_pipeline.environments.user_docstrings import ParsedDocstring, _doc_type_schema, parse_docstring
from funreason_pipeline.environments.user_schemas import UnusableType, hint_schema
from funreason_pipeline.models import ToolSpec

logger = logging.getLogger(__name__)
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_NOT_TOOLS = frozenset({"load_scenario", "snapshot"})
_FOREIGN_MODULES = frozenset({"builtins", "typing", "pydantic", "abc", "collections"})


class FunctionSchema(BaseModel):
    """One function of a schema file (OpenAI tools format; `response` is our extension, as BFCL's)."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    response: dict[str, Any] | None = None


@dataclass(frozen=True)
class UserTool:
    spec: ToolSpec
    # pydantic adapters turn JSON arguments into what the hints promise (a model, a date, an Enum)
    adapters: dict[str, TypeAdapter] = field(default_factory=dict)
    mutable_defaults: dict[str, Any] = field(default_factory=dict)


def load_schema_file(path: str, class_ref: str) -> dict[str, FunctionSchema]:
    p = Path(path)
    where = f"{class_ref}: schema file {path}"
    if not p.is_file():
        raise EnvironmentConfigError(f"{where}: file not found")
    try:
        raw = json.loads(p.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EnvironmentConfigError(f"{where}: not valid JSON: {exc}") from exc
    if isinstance(raw, dict) and "tools" in raw:
        raw = raw["tools"]
    if not isinstance(raw, list):
        raise EnvironmentConfigError(f"{where}: expected a JSON list of tools")
    out: dict[str, FunctionSchema] = {}
    for i, item in enumerate(raw):
        # {"type": "function", "function": {...}, "response": ...} or the bare function object
        fn = item.get("function", item) if isinstance(item, dict) else item
        if isinstance(item, dict) and isinstance(fn, dict) and "response" in item and "response" not in fn:
            fn = {**fn, "response": item["response"]}
        try:
            spec = FunctionSchema.model_validate(fn)
        except ValidationError as exc:
            raise EnvironmentConfigError(f"{where}: tool #{i} is not a function schema: {exc}") from exc
        params = gorilla_to_json_schema(spec.parameters)  # accept BFCL's dialect ("dict", "float") too
        params.setdefault("properties", {})
        if params.get("type") != "object":
            raise EnvironmentConfigError(f"{where}: parameters of {spec.name!r} must be a JSON Schema object")
        out[spec.name] = spec.model_copy(update={
            "parameters": params, "response": gorilla_to_json_schema(spec.response)})
    return out


def _public_methods(cls: type) -> dict[str, tuple[Callable[..., Any], bool]]:
    """name -> (function, takes self/cls): the class's public callables, base classes first."""
    names: dict[str, None] = {}
    for klass in reversed(cls.__mro__[:-1]):
        if klass.__module__.split(".")[0] in _FOREIGN_MODULES:
            continue  # a class built on a pydantic model does not offer model_dump as a tool
        names.update(dict.fromkeys(n for n in vars(klass) if not n.startswith("_") and n not in _NOT_TOOLS))
    out = {}
    for name in names:
        attr = inspect.getattr_static(cls, name)
        if isinstance(attr, staticmethod):
            out[name] = (attr.__func__, False)
        elif isinstance(attr, classmethod):
            out[name] = (attr.__func__, True)
        elif inspect.isfunction(attr):
            out[name] = (attr, True)
    return out


def _json_default(value: Any) -> tuple[bool, Any]:
    try:
        return True, to_json_value(value)
    except (TypeError, ValueError):
        return False, None


def derive_tools(cls: type, class_ref: str, schema_entries: Mapping[str, FunctionSchema]) -> list[UserTool]:
    """The tools of a class: schema-file entries where given, else derived from hints + docstrings."""
    methods = _public_methods(cls)
    stray = sorted(set(schema_entries) - set(methods))
    if stray:
        raise EnvironmentConfigError(
            f"{class_ref}: the schema file describes {stray}, which are not public methods of the class"
        )
    if not methods:
        raise EnvironmentConfigError(f"{class_ref}: the class has no public methods to use as tools")
    tools = []
    for name, (func, bound) in methods.items():
        where = f"{class_ref}: method {name!r}"
        sig = inspect.signature(func)
        params = list(sig.parameters.values())[1 if bound else 0:]
        try:
            hints = typing.get_type_hints(func, include_extras=True)
        except Exception as exc:  # NameError from a forward reference the module cannot resolve
            raise EnvironmentConfigError(f"{where}: type hints do not resolve: {type(exc).__name__}: {exc}") from exc
        doc = parse_docstring(inspect.getdoc(func))
        mutable = {p.name: p.default for p in params if isinstance(p.default, (list, dict, set))}
        adapters = {p.name: a for p in params if p.name in hints and p.kind in _BY_KEYWORD
                    and (a := _adapter(hints[p.name])) is not None}
        entry = schema_entries.get(name)
        if entry is not None:
            _check_entry_matches(where, entry, params)
            spec = ToolSpec(name=name, class_name=class_ref, method=name,
                            description=entry.description or doc.summary or _humanize(name),
                            parameters=entry.parameters, response=entry.response)
        else:
            spec = ToolSpec(name=name, class_name=class_ref, method=name,
                            description=doc.summary or _humanize(name),
                            parameters=_parameters_schema(where, params, hints, doc),
                            response=_response_schema(hints.get("return", inspect.Signature.empty), doc))
        tools.append(UserTool(spec, adapters, mutable))
    return tools


def _adapter(hint: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(hint)
    except Exception as exc:  # noqa: BLE001
        # e.g. typing.TypedDict on Python 3.11: such arguments are passed on as plain JSON
        logger.debug("no pydantic adapter for %r: %s", hint, exc)
        return None


def _humanize(name: str) -> str:
    return name.replace("_", " ").capitalize() + "."


def _parameters_schema(where: str, params: list[inspect.Parameter], hints: dict[str, Any],
                       doc: ParsedDocstring) -> dict[str, Any]:
    props: dict[str, dict[str, Any]] = {}
    required = []
    for p in params:
        if p.kind is p.POSITIONAL_ONLY or p.kind is p.VAR_POSITIONAL or p.kind is p.VAR_KEYWORD:
            raise EnvironmentConfigError(
                f"{where}: parameter {p.name!r} cannot be passed by keyword (tools are called with a JSON "
                "object of named arguments); make it a normal parameter or describe the method in a schema file"
            )
        if p.name not in hints:
            raise EnvironmentConfigError(
                f"{where}: parameter {p.name!r} has no type annotation; annotate it (e.g. `{p.name}: str`) "
                "or describe the method in a schema file"
            )
        hint = hints[p.name]
        if hint is Any:
            raise EnvironmentConfigError(
                f"{where}: parameter {p.name!r} is typed Any; give it a concrete type or describe the method "
                "in a schema file"
            )
        try:
            schema = hint_schema(hint)
        except UnusableType as exc:
            raise EnvironmentConfigError(
                f"{where}: parameter {p.name!r}: {exc}; use str/int/float/bool, list, dict, Literal, "
                "TypedDict, a dataclass or a pydantic model, or describe the method in a schema file"
            ) from exc
        entry = doc.params.get(p.name)
        if entry and entry.description:
            schema["description"] = entry.description
        if p.default is inspect.Parameter.empty:
            required.append(p.name)
        elif p.default is not None:
            ok, value = _json_default(p.default)
            if ok:
                schema["default"] = value
        props[p.name] = schema
    return {"type": "object", "properties": props, "required": required}


def _response_schema(hint: Any, doc: ParsedDocstring) -> dict[str, Any] | None:
    """From the return annotation; named fields of the Returns section fill in what it leaves open."""
    schema: dict[str, Any] = {}
    if hint is not inspect.Signature.empty and hint is not None and hint is not type(None):
        try:
            schema = hint_schema(hint)
        except UnusableType:
            schema = {}  # a response schema is optional: calls still run, graph edges come from probing
    if doc.return_fields and schema.get("type", "object") == "object":
        props = dict(schema.get("properties") or {})
        for name, entry in doc.return_fields.items():
            props[name] = {**_doc_type_schema(entry.type_text), **props.get(name, {})}
            if entry.description:
                props[name]["description"] = entry.description
        schema = {**schema, "type": "object", "properties": props}
    if doc.returns:
        schema["description"] = doc.returns
    return schema or None


def _check_entry_matches(where: str, entry: FunctionSchema, params: list[inspect.Parameter]) -> None:
    """A hand-written schema must fit the signature, or every call would be a TypeError."""
    by_name = {p.name: p for p in params}
    takes_any = any(p.kind is p.VAR_KEYWORD for p in params)
    unknown = sorted(set(entry.parameters["properties"]) - set(by_name))
    if unknown and not takes_any:
        raise EnvironmentConfigError(f"{where}: schema file names parameters {unknown} the method does not have")
    needed = [p.name for p in params if p.default is inspect.Parameter.empty
              and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    missing = [n for n in needed if n not in entry.parameters.get("required", [])]
    if missing:
        raise EnvironmentConfigError(f"{where}: schema file must list {missing} as required (they have no default)")
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.VAR_POSITIONAL)]
    if positional:
        raise EnvironmentConfigError(f"{where}: parameters {positional} cannot be passed by keyword")
