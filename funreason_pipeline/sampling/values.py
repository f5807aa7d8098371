"""Values the world offers: harvested from call results and environment state, matched to parameters.

Matching is by name tokens ("receiver_id" ~ "user id"), qualified by the producing tool's noun
(`post_tweet` returns `id` -> a "tweet id"), and by type. The same affinity drives the graph's
schema-derived data edges and the sampler's argument choice, so the two agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# tokens too common to identify an entity on their own
GENERIC = frozenset(
    {"id", "name", "status", "type", "result", "value", "list", "data", "info", "current", "new", "message",
     "success", "login", "count", "all", "by", "of", "to", "from", "the"}
)
_VERBS = frozenset(
    {"get", "list", "create", "post", "add", "set", "place", "book", "register", "search", "view", "find",
     "display", "retrieve", "compute", "estimate", "edit", "resolve", "close", "cancel", "send", "delete",
     "remove", "purchase", "fund", "withdraw", "notify", "filter", "verify", "authenticate", "check"}
)
_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


@lru_cache(maxsize=4096)
def tokens(name: str) -> tuple[str, ...]:
    out = []
    for part in _SPLIT.findall(name):
        t = part.lower()
        if len(t) > 3 and t.endswith("s") and not t.endswith(("ss", "us", "is")):
            t = t[:-1]  # crude singular: "messages" ~ "message", "numbers" ~ "number" (not "status")
        out.append(t)
    return tuple(out)


@lru_cache(maxsize=1024)
def tool_nouns(tool_name: str) -> tuple[str, ...]:
    return tuple(t for t in tokens(tool_name.split(".")[-1]) if t not in _VERBS and t not in GENERIC)


@lru_cache(maxsize=65536)
def affinity(param: str, param_desc: str, key: str, producer: str = "") -> float:
    """How strongly a value found under `key` (produced by tool `producer`) fits parameter `param`."""
    pt, kt = tokens(param), tokens(key)
    if not pt or not kt:
        return 0.0
    if pt == kt and not (len(pt) == 1 and pt[0] in GENERIC and pt[0] != "id"):
        return 1.0
    nouns = tool_nouns(producer) if producer else ()
    if pt == kt and nouns and set(tokens(param_desc)) & set(nouns):
        return 0.8  # a ticket's `status` -> "Status of the tickets to list": the same kind of thing
    if nouns and set(kt) <= GENERIC:  # `id` of post_tweet -> tweet_id
        qualified = (nouns[-1], *kt)
        if qualified == pt or (len(pt) >= 2 and pt[-len(qualified):] == qualified):
            return 0.9
    specific_shared = (set(pt) & set(kt)) - GENERIC
    # same head noun, but both sides name a different kind of it: a car's current_speed is not a
    # fan_speed, a card_number not a passport_number, a travel_date not an expiration_date
    qualified_apart = bool(set(pt[:-1]) - GENERIC) and bool(kt[:-1]) and not (set(pt[:-1]) & set(kt)) \
        and not (set(kt[:-1]) & set(pt)) and not (set(pt[:-1]) & set(nouns))
    if pt[-1] == kt[-1] and specific_shared and not qualified_apart:
        return 0.8
    desc = param_desc.lower()
    phrase = " ".join(kt)
    if len(kt) >= 2 and phrase in desc:
        return 0.7  # "receiver_id": "User ID of the user to send the message to." ~ user_id
    if specific_shared and (set(kt) <= set(pt) or set(pt) <= set(kt)) and kt[-1] not in _OUTCOMES:
        return 0.6  # content ~ file_content (but a mention_status is no mention)
    for i in range(len(kt) - 1):  # "file from current directory" ~ current_directory_content
        pair = kt[i:i + 2]
        if set(pair) - GENERIC and " ".join(pair) in desc:
            return 0.6
    if len(kt) == 1 and kt[0] not in GENERIC and len(kt[0]) >= 4 and kt[0] in desc.split():
        return 0.6  # cityA: "The zipcode of the first city." ~ zipcode
    if kt == ("name",) and pt[-1] in _NAMED:
        return 0.5  # a file's or directory's `name` ~ file_name, dir_name, folder
    if pt[-1] in _NAMED and set(kt) & _CONTAINERS and "content" not in pt:
        return 0.5  # a directory listing names what a file or folder parameter can take
    return 0.0


_OUTCOMES = frozenset({"status", "success", "count", "type"})  # a field that reports on a thing, not the thing
_NAMED = frozenset({"name", "folder", "dir", "directory", "file", "path", "source", "destination"})
_CONTAINERS = frozenset({"directory", "dir", "folder"})


@dataclass(frozen=True, slots=True)
class Value:
    key: str  # nearest field name the value sat under
    value: Any
    source: int | None = None  # index of the call that produced it; None = from the state
    producer: str = ""  # tool name that produced it
    jtype: str = ""  # JSON type, computed once at harvest (matching runs per parameter per step)


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


def harvest(obj: Any, key: str = "", source: int | None = None, producer: str = "", depth: int = 0,
            out: list[Value] | None = None, limit: int = 4000) -> list[Value]:
    """Flatten scalars out of nested JSON, each tagged with the nearest key name.

    Keys of "collection" dicts (whose values are dicts, e.g. a directory's `contents` or a user
    table) are themselves values: file names, user names.
    """
    if out is None:
        out = []
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
                out.append(Value(key, k, source, producer, "string"))
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


def error_kind(error: str | None) -> str:
    """An error message without its quoted or numeric particulars ('No such file: a.txt' ~ '...: b.txt')."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+(\.\d+)?|:\s.*$", "", error or "").strip().lower()


def error_words(error: str | None) -> set[str]:
    """The specific words of an error message ("not logged in" -> {"logged"})."""
    return {w for w in tokens(error or "") if w not in GENERIC and len(w) > 3}


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
