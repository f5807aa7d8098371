"""User adapter: any stateful Python class, referenced as `package.module:ClassName`, as an Environment.

Tools are the class's public methods. Their JSON Schemas come from type hints plus Google or NumPy
docstrings, or from an OpenAI-format schema file when the user prefers to write them. Scenarios come
from a seeded generator function or a JSON/JSONL file of examples. Like the BFCL adapter, methods are
called only from the allow-list of derived tools, with checked and copied arguments, and every
failure of a call becomes an error result.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import enum
import importlib
import inspect
import json
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import docstring_parser
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from funreason_pipeline.environments.base import (
    EnvironmentConfigError,
    ToolResult,
    check_arguments,
    invoke_tool,
    public_state,
    to_json_value,
)
from funreason_pipeline.environments.bfcl import gorilla_to_json_schema
from funreason_pipeline.environments.deadline import CallTimeout, deadline
from funreason_pipeline.models import ToolSpec

logger = logging.getLogger(__name__)
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
SCENARIO_LOADERS = ("load_scenario", "_load_scenario")  # `_load_scenario` is BFCL's name
_BY_KEYWORD = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_NOT_TOOLS = frozenset({"load_scenario", "snapshot"})
_SCENARIO_FILE_SUFFIXES = (".json", ".jsonl")
_FOREIGN_MODULES = frozenset({"builtins", "typing", "pydantic", "abc", "collections"})


def is_import_path(ref: str) -> bool:
    """`package.module:Name`, the form the toolset config uses for user classes and generators."""
    return bool(_IMPORT_PATH.match(ref))


def import_object(ref: str, what: str) -> Any:
    """Import `package.module:Name`; any failure is a config error saying what was looked for."""
    if not is_import_path(ref):
        raise EnvironmentConfigError(f"{what} {ref!r} is not an import path of the form package.module:Name")
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, but also whatever the module raises while importing
        raise EnvironmentConfigError(
            f"{what} {ref!r}: module {module_name!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise EnvironmentConfigError(f"{what} {ref!r}: module {module_name!r} has no {attr!r}") from None


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
        if v is not None and not (is_import_path(v) or v.endswith(_SCENARIO_FILE_SUFFIXES)):
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


# ---- docstrings -------------------------------------------------------------------------------

# Google "Returns:" entries that name result fields ("patient_id (str): ..."); docstring-parser
# reads a Google Returns section as one `type: description`, so the named form is read here
_NAMED_RETURN = re.compile(r"\*{0,2}(?P<name>\w+)\s*\((?P<type>[^)]*)\)\s*:\s*(?P<desc>.*)")


@dataclass(frozen=True)
class DocEntry:
    type_text: str
    description: str


@dataclass
class ParsedDocstring:
    summary: str = ""
    params: dict[str, DocEntry] = field(default_factory=dict)
    returns: str = ""  # free text of the Returns section
    return_fields: dict[str, DocEntry] = field(default_factory=dict)  # named fields of the result


def _one_line(text: str | None) -> str:
    return " ".join((text or "").split())


def parse_docstring(doc: str | None) -> ParsedDocstring:
    """Summary (the first paragraph), parameter descriptions and Returns of a Google-, NumPy- or
    reST-style docstring, read with docstring-parser."""
    parsed = ParsedDocstring()
    if not doc:
        return parsed
    try:
        ds = docstring_parser.parse(inspect.cleandoc(doc))
    except docstring_parser.ParseError:
        ds = docstring_parser.Docstring()
        ds.short_description = inspect.cleandoc(doc)
    description = "\n".join(p for p in (ds.short_description, ds.long_description) if p)
    if ds.blank_after_short_description or not ds.long_description:
        parsed.summary = _one_line(ds.short_description)
    else:  # a summary wrapped over several lines
        parsed.summary = _one_line(description.split("\n\n")[0])
    for p in ds.params:
        if p.args and p.args[0] not in ("param", "keyword", "other_param"):
            continue
        for name in (n.strip().lstrip("*") for n in p.arg_name.split(",")):
            parsed.params[name] = DocEntry(_one_line(p.type_name), _one_line(p.description))
    texts = []
    for r in ds.many_returns:
        if r.return_name:  # NumPy: "due : str" then its description
            parsed.return_fields[r.return_name] = DocEntry(_one_line(r.type_name), _one_line(r.description))
            continue
        named = _named_returns(r.description or "") if not r.type_name else {}
        if named:
            parsed.return_fields.update(named)
        elif r.description:
            texts.append(_one_line(r.description))
    parsed.returns = " ".join(texts)
    return parsed


def _named_returns(text: str) -> dict[str, DocEntry]:
    """Google Returns entries naming fields, one per line (deeper lines continue the entry)."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not _NAMED_RETURN.fullmatch(lines[0].strip()):
        return {}
    out: dict[str, list[str]] = {}
    types: dict[str, str] = {}
    last = ""
    for line in lines:
        m = _NAMED_RETURN.fullmatch(line.strip())
        if m and not line.startswith((" ", "\t")):
            last = m.group("name")
            types[last], out[last] = m.group("type").strip(), [m.group("desc")]
        else:
            out[last].append(line.strip())
    return {n: DocEntry(types[n], _one_line(" ".join(d))) for n, d in out.items()}


_DOC_TYPES = {"str": "string", "string": "string", "int": "integer", "integer": "integer", "float": "number",
              "number": "number", "bool": "boolean", "boolean": "boolean", "list": "array", "tuple": "array",
              "set": "array", "sequence": "array", "array": "array", "dict": "object", "mapping": "object",
              "object": "object"}


def _doc_type_schema(type_text: str) -> dict[str, Any]:
    """A docstring's type words ("list[str]", "int, optional") as a JSON Schema, as far as they go."""
    words = re.findall(r"[A-Za-z]+", type_text.lower())
    words = [w for w in words if w not in ("optional", "typing")]
    if not words or words[0] not in _DOC_TYPES:
        return {}
    schema: dict[str, Any] = {"type": _DOC_TYPES[words[0]]}
    if schema["type"] == "array" and len(words) > 1 and words[1] in _DOC_TYPES:
        schema["items"] = {"type": _DOC_TYPES[words[1]]}
    return schema


# ---- type hints -> JSON Schema -----------------------------------------------------------------


class UnusableType(TypeError):
    """A type hint with no JSON Schema (or too vague to generate arguments for)."""


_SIMPLE = {str: "string", int: "integer", float: "number", bool: "boolean"}
_DATES = {dt.date: "date", dt.datetime: "date-time", dt.time: "time"}


def hint_schema(hint: Any, _seen: tuple[Any, ...] = ()) -> dict[str, Any]:
    """JSON Schema of a type hint: scalars, Optional/unions, Literal/Enum, lists, dicts, TypedDict,
    dataclasses and pydantic models (nested properties). Raises UnusableType for anything else."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is Annotated:
        schema = hint_schema(args[0], _seen)
        desc = next((m if isinstance(m, str) else m.description for m in args[1:]
                     if isinstance(m, str) or isinstance(getattr(m, "description", None), str)), None)
        return {**schema, "description": desc} if desc else schema
    if hint is Any:
        return {}
    if hint is None or hint is type(None):
        return {"type": "null"}
    if hint in _SIMPLE:
        return {"type": _SIMPLE[hint]}
    if hint in _DATES:
        return {"type": "string", "format": _DATES[hint]}
    if origin is Literal:
        return _enum_schema(list(args))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum_schema([m.value for m in hint])
    if origin in (Union, types.UnionType):
        options = [hint_schema(a, _seen) for a in args if a is not type(None)]
        # Optional[X] is X: an absent optional argument is how a caller says "none"
        return options[0] if len(options) == 1 else {"anyOf": options}
    if hint in (list, tuple, set, frozenset) or origin in (list, tuple, set, frozenset) or \
            (origin is not None and isinstance(origin, type) and issubclass(origin, Sequence)
             and origin is not str):
        schema = {"type": "array"}
        items = [a for a in args if a is not Ellipsis]
        if items and (len(set(items)) == 1):
            item_schema = hint_schema(items[0], _seen)
            if item_schema:
                schema["items"] = item_schema
        return schema
    if hint is dict or origin is dict or (isinstance(origin, type) and issubclass(origin, Mapping)):
        schema = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = hint_schema(args[1], _seen)
        return schema
    if hint in _seen:  # a recursive structure: say it is an object and stop
        return {"type": "object"}
    if typing.is_typeddict(hint):
        hints = typing.get_type_hints(hint, include_extras=True)
        return _object_schema({k: hint_schema(v, (*_seen, hint)) for k, v in hints.items()},
                              [k for k in hints if k in hint.__required_keys__])
    if isinstance(hint, type) and issubclass(hint, BaseModel):
        return _inline_refs(hint.model_json_schema())
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        hints = typing.get_type_hints(hint, include_extras=True)
        fields = [f for f in dataclasses.fields(hint) if f.init]
        return _object_schema({f.name: hint_schema(hints[f.name], (*_seen, hint)) for f in fields},
                              [f.name for f in fields if f.default is dataclasses.MISSING
                               and f.default_factory is dataclasses.MISSING])
    raise UnusableType(f"type {getattr(hint, '__name__', hint)!r} has no JSON Schema")


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    schema: dict[str, Any] = {"enum": values}
    kinds = {_SIMPLE.get(type(v)) for v in values}
    if len(kinds) == 1 and None not in kinds:
        schema["type"] = kinds.pop()
    return schema


def _object_schema(props: dict[str, dict[str, Any]], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """Pydantic writes nested models as $refs into $defs; tool schemas are read standalone."""
    defs = schema.get("$defs", {})

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(n, stack) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/"):
            name = ref.split("/")[-1]
            if name in stack:
                return {"type": "object"}
            return walk({**defs.get(name, {}), **{k: v for k, v in node.items() if k != "$ref"}}, (*stack, name))
        out = {}
        for k, v in node.items():
            if k in ("$defs", "title"):
                continue
            out[k] = {p: walk(s, stack) for p, s in v.items()} if k == "properties" else walk(v, stack)
        return out

    return walk(schema, ())


# ---- tools ----------------------------------------------------------------------------------


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


# ---- scenarios --------------------------------------------------------------------------------


class ScenarioSource:
    """Where a class's initial states come from: deterministic in the seed."""

    def __init__(self, class_ref: str, ref: str | None) -> None:
        self.class_ref = class_ref
        self.ref = ref
        self._generator: Callable[[int], Any] | None = None
        self._examples: list[dict[str, Any]] = []
        if ref is None:
            return
        if is_import_path(ref):
            fn = import_object(ref, f"{class_ref}: scenario generator")
            if not callable(fn):
                raise EnvironmentConfigError(f"{class_ref}: scenario generator {ref!r} is not callable")
            self._generator = fn
        else:
            self._examples = _read_scenarios(class_ref, Path(ref))

    @property
    def examples(self) -> list[dict[str, Any]]:
        return self._examples

    def generate(self, seed: int) -> dict[str, Any]:
        if self._generator is not None:
            try:
                raw = self._generator(seed)
            except Exception as exc:
                raise EnvironmentConfigError(
                    f"{self.class_ref}: scenario generator {self.ref} failed for seed {seed}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return _as_scenario(self.class_ref, raw, f"generator {self.ref} (seed {seed})")
        if self._examples:
            return copy.deepcopy(self._examples[seed % len(self._examples)])
        return {}  # no source: the class starts from what its constructor sets up


def _as_scenario(class_ref: str, raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise EnvironmentConfigError(f"{class_ref}: {what} gave a {type(raw).__name__}, not a dict")
    try:
        return to_json_value(raw)  # scenarios are stored as JSON and replayed from it
    except (TypeError, ValueError) as exc:
        raise EnvironmentConfigError(f"{class_ref}: {what} is not JSON-serialisable: {exc}") from exc


def _read_scenarios(class_ref: str, path: Path) -> list[dict[str, Any]]:
    where = f"scenarios file {path}"
    if not path.is_file():
        raise EnvironmentConfigError(f"{class_ref}: {where}: file not found")
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise EnvironmentConfigError(f"{class_ref}: {where}: not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise EnvironmentConfigError(f"{class_ref}: {where}: expected a non-empty list of scenarios")
    return [_as_scenario(class_ref, item, f"{where} entry #{i}") for i, item in enumerate(items)]


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
        problem = check_arguments(tool.spec, arguments)
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
        try:
            with deadline(self.call_timeout_s, f"{self.class_name}.{method}"):
                return invoke_tool(getattr(self._instance, method), method, kwargs)
        except CallTimeout as exc:
            return ToolResult(None, f"{method} timed out: {exc}")

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
