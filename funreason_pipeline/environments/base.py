"""The Environment protocol: what a stateful tool class must offer the pipeline.

BFCL's classes are one adapter (bfcl.py); user classes are another. Nothing outside an adapter may
know which kind of environment it talks to.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from funreason_pipeline.environments.failures import failure_of
from funreason_pipeline.models import ToolSpec


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A call's outcome: `value` is JSON-serialisable; `error` is set when the call failed."""

    value: Any
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class CyclicStateError(ValueError):
    """The environment's state contains itself (e.g. BFCL's file system after a directory was copied into
    itself); such a state cannot be compared or serialised, so a trajectory reaching it is rejected."""


class EnvironmentConfigError(ValueError):
    """A configuration problem with an environment (bad class, bad schema, bad scenario)."""


@runtime_checkable
class Environment(Protocol):
    class_name: str

    def tool_specs(self) -> list[ToolSpec]: ...

    def load_scenario(self, scenario: dict[str, Any]) -> None: ...

    # may complete `arguments` in place with explicit values the recorded call must carry (BFCL:
    # parameters whose default is a shared mutable list)
    def call(self, method: str, arguments: dict[str, Any]) -> ToolResult: ...

    def snapshot(self) -> dict[str, Any]: ...

    def copy(self) -> Environment: ...


class EnvironmentFactory(Protocol):
    """Makes fresh environments of one class and seeded scenarios for it."""

    class_name: str

    def create(self) -> Environment: ...

    def tool_specs(self) -> list[ToolSpec]: ...

    def generate_scenario(self, seed: int) -> dict[str, Any]: ...

    # optional: def argument_examples(self) -> dict[str, list[dict[str, Any]]]
    # (method -> valid joint argument examples the schema cannot express; used by the sampler only)
    # optional: def unusable_tools(self) -> dict[str, str]
    # (method -> why no call of it can ever succeed; such tools are not sampling targets)


# ---- helpers every adapter shares ---------------------------------------------------------

@lru_cache(maxsize=4096)
def _validator(parameters_json: str) -> Draft202012Validator:
    # one compiled validator per schema; the schema text is the key (ToolSpec's dicts are not hashable)
    return Draft202012Validator(json.loads(parameters_json))


_ANNOTATIONS = {"description", "default", "title", "examples"}  # keywords that constrain nothing
_SCALARS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


def _simple_check(schema: Any) -> Callable[[Any], bool] | None:
    """A quick test a value passes only when the schema surely accepts it, for the schemas tools
    mostly have (a scalar type, a string enum, a list of those); None for any other schema."""
    if not isinstance(schema, dict) or not set(schema) - _ANNOTATIONS <= {"type", "enum", "items"}:
        return None
    t, enum = schema.get("type"), schema.get("enum")
    if enum is not None:
        if t != "string" or not isinstance(enum, list) or not all(isinstance(e, str) for e in enum):
            return None
        allowed = frozenset(enum)
        return lambda v: isinstance(v, str) and v in allowed
    if t == "array":
        each = _simple_check(schema["items"]) if "items" in schema else (lambda v: True)
        return None if each is None else (lambda v: isinstance(v, list) and all(each(x) for x in v))
    if "items" in schema:
        return None
    if t == "object":
        return lambda v: isinstance(v, dict)
    return _SCALARS.get(t) if isinstance(t, str) else None


_compiled: dict[int, tuple[dict, Draft202012Validator, dict[str, Callable[[Any], bool] | None] | None]] = {}


def _schema_checks(parameters: dict) -> tuple[Draft202012Validator, dict[str, Callable[[Any], bool] | None] | None]:
    """The validator of a tool's parameter schema and, per parameter, its quick test (None: none
    for the whole schema). Keyed by the schema dict itself, held in the entry so its id stays its
    own: schemas are never changed in place (a ToolSpec is changed by model_copy), and turning one
    into text to look it up cost a fifth of a check."""
    entry = _compiled.get(id(parameters))
    if entry is None or entry[0] is not parameters:
        if len(_compiled) >= 4096:
            _compiled.clear()
        quick = None
        if set(parameters) - _ANNOTATIONS <= {"type", "properties", "required"} and isinstance(
                parameters.get("properties", {}), dict):
            quick = {n: _simple_check(sub) for n, sub in parameters.get("properties", {}).items()}
        entry = _compiled[id(parameters)] = (parameters, _validator(json.dumps(parameters, sort_keys=True)), quick)
    return entry[1], entry[2]


def _where(error: ValidationError) -> str:
    """`updates.priority`, `mentions[0]`: where in the arguments a validation error is."""
    out = ""
    for part in error.absolute_path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


_PY_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object"}


def check_arguments(spec: ToolSpec, arguments: Any) -> str | None:
    """Validate call arguments against the tool's JSON Schema (jsonschema, Draft 2020-12: nested
    objects and array items, anyOf/oneOf, enums). Returns an error or None.

    A model (or the sampler) may pass unknown names or wrong types; such a call must become an
    error result, never a TypeError deep inside the tool. Unknown and missing top-level arguments
    are named first (the sampler's repairs read those messages); booleans are not numbers.
    """
    if not isinstance(arguments, dict):
        return f"arguments must be a JSON object, got {type(arguments).__name__}"
    props = spec.properties
    unknown = sorted(set(arguments) - set(props))
    if unknown:
        return f"unknown argument(s) for {spec.name}: {', '.join(unknown)}"
    missing = [p for p in spec.required if p not in arguments]
    if missing:
        return f"missing required argument(s) for {spec.name}: {', '.join(missing)}"
    validator, quick = _schema_checks(spec.parameters)
    if quick is not None and all((check := quick.get(k)) is not None and check(v) for k, v in arguments.items()):
        return None  # every argument surely valid: jsonschema would find nothing (and takes 20 times longer)
    error = best_match(validator.iter_errors(arguments))
    if error is None:
        return None
    where = _where(error) or "arguments"
    if error.validator == "type" and isinstance(error.validator_value, str):
        got = _PY_TYPES.get(type(error.instance), type(error.instance).__name__)
        return f"argument {where!r} of {spec.name} must be {error.validator_value}, got {got}"
    if error.validator == "enum":
        return f"argument {where!r} of {spec.name} must be one of {error.validator_value}, got {error.instance!r}"
    return f"argument {where!r} of {spec.name}: {error.message}"[:500]


def invoke_tool(fn: Any, method: str, kwargs: dict[str, Any]) -> ToolResult:
    """Call a tool method; every adapter shares this: a raise, an unserialisable result and a
    returned failure (environments/failures.py) all become error results, never a crashed stage."""
    try:
        raw = fn(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return ToolResult(None, f"{method} raised {type(exc).__name__}: {exc}")
    try:
        value = to_json_value(raw)
    except (TypeError, ValueError) as exc:
        return ToolResult(None, f"{method} returned an unserialisable result: {exc}")
    failure = failure_of(value, method)  # `{"error": ...}`, `login_status: False`, "Stock not found", ...
    return ToolResult(value, stable_sets(failure)) if failure else ToolResult(value)


_SET_REPR = re.compile(r"\{('[^'{}]*'(?:, '[^'{}]*')+)\}")


def stable_sets(text: str) -> str:
    """A Python set printed in a message ("Must be one of {'first', 'economy'}") in sorted order:
    its printed order follows the process's hash seed, and rejections must not differ by run."""
    return _SET_REPR.sub(lambda m: "{" + ", ".join(sorted(m.group(1).split(", "))) + "}", text)


def to_json_value(value: Any) -> Any:
    """Round-trip through JSON so results are plain data; raises TypeError/ValueError if impossible."""

    def _reject(obj: Any) -> Any:
        # numeric types beyond float (mpmath's mpf, Decimal) become JSON numbers, as BFCL's own
        # checker would see them printed; anything else is unserialisable
        if hasattr(obj, "__float__") and not isinstance(obj, (str, bytes)):
            number = float(obj)
            if math.isfinite(number):
                return number
        raise TypeError(f"unserialisable {type(obj).__name__} in tool result")

    return json.loads(json.dumps(value, default=_reject, allow_nan=False))


def public_state(obj: Any, _ancestors: tuple[int, ...] = ()) -> Any:
    """A JSON-able snapshot of an object's public attributes (recursively), cycle-safe.

    BFCL compares public attributes for state equality; we mirror that. Back references (a
    directory's parent) are dropped so the snapshot is a tree.
    """
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else repr(obj)
    if id(obj) in _ancestors:
        raise CyclicStateError(f"state of {type(obj).__name__} contains itself")
    anc = (*_ancestors, id(obj))
    if isinstance(obj, dict):
        return {str(k): public_state(v, anc) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [public_state(v, anc) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted((public_state(v, anc) for v in obj), key=repr)
    attrs = getattr(obj, "__dict__", None)
    if attrs is not None:
        # a back reference to the parent is structure, not state; any other way back is a cycle
        return {
            k: public_state(v, anc)
            for k, v in attrs.items()
            if not k.startswith("_") and not (k == "parent" and id(v) in anc)
        }
    return repr(obj)
