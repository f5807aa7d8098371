"""Type hints of user environment methods as JSON Schema (parameters and responses).

pydantic decides the schema (`TypeAdapter(hint).json_schema()`); this module only fits it to what a
tool schema needs: standalone (no `$ref`s), no titles, `Optional[X]` is `X`, tuples and sets are plain
arrays. pydantic models keep pydantic's own schema of them (their defaults and nullable fields).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Annotated, Any, Literal, Union

import typing_extensions as te
from pydantic import Field, PydanticUserError, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema


class UnusableType(TypeError):
    """A type hint with no JSON Schema (or too vague to generate arguments for)."""


def hint_schema(hint: Any) -> dict[str, Any]:
    """JSON Schema of a type hint (scalars, unions, Literal/Enum, containers, TypedDicts, dataclasses,
    pydantic models, whatever else pydantic validates); UnusableType when it has none."""
    try:
        schema = TypeAdapter(_normalise(hint, ())).json_schema(schema_generator=_ToolSchema)
    except PydanticUserError as exc:  # no core schema for the type, or none in JSON Schema
        name = hint.__name__ if isinstance(hint, type) else str(hint)
        raise UnusableType(f"type {name!r} has no JSON Schema ({exc.message.split('. ')[0]})") from exc
    return _inline_refs(schema)


def _normalise(hint: Any, stack: tuple[type, ...]) -> Any:
    """The hint as pydantic should read it: TypedDicts and dataclasses rebuilt as typing_extensions
    TypedDicts (pydantic rejects typing.TypedDict before Python 3.12; a dataclass argument is its init
    fields), plain-string Annotated metadata made a description."""
    if hint is object:  # pydantic reads it as Any: nothing to generate arguments from
        raise UnusableType("type 'object' has no JSON Schema")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is Annotated:
        meta = (Field(description=m) if isinstance(m, str) else m for m in args[1:])
        return Annotated[(_normalise(args[0], stack), *meta)]
    if origin in (te.Required, te.NotRequired):  # said again when the TypedDict is rebuilt
        return _normalise(args[0], stack)
    if origin is not None and origin is not Literal and args:
        new = tuple(_normalise(a, stack) for a in args)
        return Union[new] if origin in (Union, types.UnionType) else origin[new]  # noqa: UP007
    is_dataclass = isinstance(hint, type) and dataclasses.is_dataclass(hint)
    if not (is_dataclass or te.is_typeddict(hint)):
        return hint
    if hint in stack:  # a recursive structure: say it is an object and stop
        return dict
    hints = typing.get_type_hints(hint, include_extras=True)
    if is_dataclass:
        required = {f.name: f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                    for f in dataclasses.fields(hint) if f.init}
    else:  # an explicit (Not)Required wins: from string annotations, __required_keys__ misses it
        required = {k: k in hint.__required_keys__ for k in hints}
        required |= {k: typing.get_origin(h) is te.Required for k, h in hints.items()
                     if typing.get_origin(h) in (te.Required, te.NotRequired)}
    fields = {k: (te.Required if req else te.NotRequired)[_normalise(hints[k], (*stack, hint))]
              for k, req in required.items()}
    return te.TypedDict(hint.__name__, fields)


class _ToolSchema(GenerateJsonSchema):
    """pydantic's JSON Schema in the tool dialect, keys in the order pydantic writes them."""

    def sort(self, value: Any, parent_key: str | None = None) -> Any:
        return value

    def nullable_schema(self, schema: Any) -> dict[str, Any]:
        # Optional[X] is X: an absent optional argument is how a caller says "none"
        return self.generate_inner(schema["schema"])

    def model_schema(self, schema: Any) -> dict[str, Any]:
        return _inline_refs(schema["cls"].model_json_schema())  # pydantic's own, as the model defines it

    def list_schema(self, schema: Any) -> dict[str, Any]:
        return _no_empty(super().list_schema(schema), "items", {})

    def dict_schema(self, schema: Any) -> dict[str, Any]:
        out = super().dict_schema(schema)
        out.pop("propertyNames", None)  # JSON object keys are strings; the adapter converts them
        return _no_empty(out, "additionalProperties", True)

    def set_schema(self, schema: Any) -> dict[str, Any]:
        # a JSON array whose duplicates the adapter drops
        out = {k: v for k, v in super().set_schema(schema).items() if k != "uniqueItems"}
        return _no_empty(out, "items", {})

    frozenset_schema = set_schema

    def tuple_schema(self, schema: Any) -> dict[str, Any]:
        return _plain_array(super().tuple_schema(schema))

    def named_tuple_schema(self, schema: Any) -> dict[str, Any]:
        return _plain_array(super().named_tuple_schema(schema))

    def typed_dict_schema(self, schema: Any) -> dict[str, Any]:
        out = super().typed_dict_schema(schema)
        out.setdefault("required", [])  # said even when empty, as for every object we describe
        return out


def _plain_array(schema: dict[str, Any]) -> dict[str, Any]:
    """A fixed-length array: items only when all positions agree, and no length."""
    out = _no_empty(schema, "items", {})
    prefix = out.pop("prefixItems", [])
    if "items" not in out:
        out.pop("minItems", None)
        out.pop("maxItems", None)
        if prefix and all(p == prefix[0] for p in prefix):
            out["items"] = prefix[0]
    return out


def _no_empty(schema: dict[str, Any], key: str, empty: Any) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if not (k == key and v == empty)}


def _inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """pydantic writes nested models as $refs into $defs; tool schemas are read standalone."""
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
