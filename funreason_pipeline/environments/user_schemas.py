"""Type hints of user environment methods as JSON Schema (parameters and responses)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel


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
