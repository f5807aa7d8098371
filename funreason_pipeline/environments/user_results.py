"""What a user class's method returned, as the pipeline reads it: plain JSON values, and whether
the return value itself reports a failure.

App code returns its records as they are (dataclasses, pydantic models, Enums, dates, sets) and
often reports a refused request instead of raising one: `{"ok": False, "msg": ...}`,
`{"success": False}`, `{"status": "error"}` or a string "Error: ...". Taken as successes, such
calls would enter the ground truth as if they had worked, and probing would never see that a
login was needed first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from typing import Any

from pydantic import BaseModel

from funreason_pipeline.environments.base import public_state
from funreason_pipeline.environments.failures import failure_of


def plain_result(value: Any, depth: int = 0) -> Any:
    """The value with app types turned into JSON types: dataclasses, pydantic models and named
    tuples become objects, Enums their values, dates ISO strings, sets and tuples lists, other
    objects their public attributes (as the state is read). Anything else is left for the JSON
    check to accept or refuse."""
    if depth > 50 or value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, enum.Enum):
        return plain_result(value.value, depth + 1)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain_result(getattr(value, f.name), depth + 1)
                for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a NamedTuple
        return {k: plain_result(v, depth + 1) for k, v in value._asdict().items()}
    if isinstance(value, dict):
        return {_plain_key(k): plain_result(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_result(v, depth + 1) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((plain_result(v, depth + 1) for v in value), key=repr)
    if hasattr(value, "__dict__") and not callable(value):
        return plain_result(public_state(value), depth + 1)
    return value


def _plain_key(key: Any) -> Any:
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, (dt.datetime, dt.date, dt.time)):
        key = key.isoformat()
    return key


def returned_error(value: Any) -> str | None:
    """The failure a return value reports, or None (environments/failures.py: the rule every
    adapter shares; kept under this name for callers that read user results)."""
    return failure_of(value)
