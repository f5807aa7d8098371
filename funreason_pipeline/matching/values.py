"""Values the world offers: harvested from call results and environment state.

Scalars are tagged with the nearest key name (`Value`); values that belong together (a username and
its PIN, one record's fields) are kept together as `Row`s; `changed_keys` says which state fields a
call changed. Matching them to parameters is `names.affinity`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from funreason_pipeline.matching.names import result_key, tokens


@dataclass(frozen=True, slots=True)
class Value:
    key: str  # nearest field name the value sat under
    value: Any
    source: int | None = None  # index of the call that produced it; None = from the state
    producer: str = ""  # tool name that produced it
    jtype: str = ""  # JSON type, computed once at harvest (matching runs per parameter per step)
    kind: str = ""  # what a collection's entry says it is (`"type": "directory"`): a folder is no file


def json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def entry_kind(entry: dict) -> str:
    """What a collection's entry is, when it says so: its `type` or `kind` field, or, in a file
    tree, "directory" for an entry holding `contents` and "file" for one holding `content`."""
    for field in ("type", "kind"):
        if isinstance(entry.get(field), str) and len(entry[field]) <= 20:
            return entry[field]
    if isinstance(entry.get("contents"), dict) or isinstance(entry.get("children"), dict):
        return "directory"
    return "file" if isinstance(entry.get("content"), str) else ""


def harvest(obj: Any, key: str = "", source: int | None = None, producer: str = "", depth: int = 0,
            out: list[Value] | None = None, limit: int = 4000) -> list[Value]:
    """Flatten scalars out of nested JSON, each tagged with the nearest key name.

    Keys of "collection" dicts (whose values are dicts, e.g. a directory's `contents` or a user
    table) are themselves values: file names, user names. A bare result of a tool (a scalar, or a
    list of them: `-> int`, `-> list[str]`) is known by `result_key(producer)`.
    """
    if out is None:
        out = []
        if not key and producer and not isinstance(obj, dict):
            key = result_key(producer)
    if len(out) >= limit or depth > 8:
        return out
    if isinstance(obj, dict):
        collection = len(obj) > 0 and all(isinstance(v, dict) for v in obj.values())
        if key and tokens(key)[-1:] == ("map",) and not collection:
            # a lookup table (`user_map`: name -> id): its keys are names, its values ids of the stem
            stem = key[: -len("map")].rstrip("_") or key
            for k, v in obj.items():
                out.append(Value(f"{stem}_name", k, source, producer, "string"))
                harvest(v, stem, source, producer, depth + 1, out, limit)
            return out
        for k, v in obj.items():
            if collection:
                out.append(Value(key, k, source, producer, "string", entry_kind(v)))
                harvest(v, key, source, producer, depth + 1, out, limit)
            else:
                harvest(v, k, source, producer, depth + 1, out, limit)
    elif isinstance(obj, list):
        for item in obj[:50]:
            harvest(item, key, source, producer, depth + 1, out, limit)
    elif obj is not None and not isinstance(obj, bool) and key:
        if isinstance(obj, str) and (not obj or len(obj) > 400):
            return out
        out.append(Value(key, obj, source, producer, json_type(obj)))
    return out


# ---- rows: values that belong together -----------------------------------------------------------

KEY, VALUE = "@key", "@value"  # the two sides of a mapping entry (`{username: pin}`), which have no names


@dataclass(frozen=True, slots=True)
class Row:
    """Values that belong together in the state: the key and value of one entry of a scalar mapping
    (a username and its PIN), or one record's scalar fields with the key it is filed under. A login
    needs a username *with its* PIN: drawn one by one, matching pairs are rare."""

    where: str  # the key the mapping, collection or record list sat under
    fields: tuple[tuple[str, Any], ...]

    @property
    def shape(self) -> tuple[str, tuple[str, ...]]:
        return self.where, tuple(f for f, _ in self.fields)


def _scalar(v: Any) -> bool:
    return isinstance(v, (str, int, float)) and not isinstance(v, bool) and not (isinstance(v, str) and (
        not v or len(v) > 400))


def harvest_rows(obj: Any, key: str = "", depth: int = 0, out: list[Row] | None = None,
                 limit: int = 2000) -> list[Row]:
    """Rows of a state snapshot: entries of scalar mappings (`{"ana": "4821", ...}`: key and value
    paired), entries of collections (`{"AC-1": {...}}`: the key with the record's scalar fields), and
    records with two or more scalar fields."""
    if out is None:
        out = []
    if len(out) >= limit or depth > 8:
        return out
    if isinstance(obj, dict) and obj:
        values = list(obj.values())
        if all(isinstance(v, dict) for v in values):  # a collection: keys are ids or names
            for k, v in obj.items():
                scalars = tuple((f, x) for f, x in v.items() if _scalar(x))
                out.append(Row(key, ((KEY, k), *scalars)))
                for f, x in v.items():
                    if isinstance(x, (dict, list)):
                        harvest_rows(x, f, depth + 1, out, limit)
            return out
        types = {json_type(v) for v in values}
        if key and len(obj) >= 2 and len(types) == 1 and all(_scalar(v) for v in values):
            # a scalar mapping (or a record of one type: both readings are offered, learning decides)
            out.extend(Row(key, ((KEY, k), (VALUE, v))) for k, v in obj.items())
        scalars = tuple((f, x) for f, x in obj.items() if _scalar(x))
        if len(scalars) >= 2:
            out.append(Row(key, scalars))
        for f, x in obj.items():
            if isinstance(x, (dict, list)):
                harvest_rows(x, f, depth + 1, out, limit)
    elif isinstance(obj, list):
        for item in obj[:50]:
            harvest_rows(item, key, depth + 1, out, limit)
    return out


def changed_keys(before: Any, after: Any, key: str = "", out: set[str] | None = None) -> set[str]:
    """Names of the state fields a call changed (`session`, `frozen`), to match against errors that
    name a state ("not logged in", "card frozen") when no tool is named."""
    out = set() if out is None else out
    if before == after:
        return out
    if isinstance(before, dict) and isinstance(after, dict):
        for k in set(before) | set(after):
            changed_keys(before.get(k), after.get(k), str(k), out)
    elif key:
        out.add(key)
    return out
