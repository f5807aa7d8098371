"""Function docs as BFCL shows them to a prompting model (its Gorilla dialect), for bfcl_prompting.

BFCL's multi-turn prompt lists each function as its doc file has it (`type: "dict"`, `"float"`,
enums written into descriptions, a `response` schema) with " Note that the provided function is in
Python 3 syntax." appended to the description (`bfcl_eval.utils._func_doc_language_specific_pre_processing`),
dumped with ``json.dumps(functions, indent=4)``. The catalog converted those docs to JSON Schema
(`environments/bfcl.py`); here they go back: a BFCL class's tool takes its doc file entry as it is,
any other tool is converted (object -> dict, number -> float) with the catalog's response schema.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any

from funreason_pipeline.models import ToolSpec

PYTHON_HINT = " Note that the provided function is in Python 3 syntax."

# JSON Schema type names -> the names BFCL's docs use
_BFCL_TYPES = {"object": "dict", "number": "float"}


def to_gorilla_schema(schema: Any) -> Any:
    """JSON Schema -> BFCL's dialect, recursively (the inverse of `gorilla_to_json_schema` for the
    types; enums stay as `enum`, which BFCL's JSON doc listing shows as it is)."""
    if isinstance(schema, list):
        return [to_gorilla_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "type" and isinstance(value, str):
            out[key] = _BFCL_TYPES.get(value, value)
        elif key == "properties" and isinstance(value, dict):
            out[key] = {name: to_gorilla_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties"):
            out[key] = to_gorilla_schema(value)
        else:
            out[key] = value
    return out


def _bfcl_doc(spec: ToolSpec) -> dict[str, Any] | None:
    """The doc file entry of a BFCL class's tool (None for other classes)."""
    try:
        from funreason_pipeline.environments.bfcl import BFCL_CLASSES, _function_docs
    except ImportError:  # pragma: no cover - bfcl_eval is a dependency
        return None
    if spec.class_name not in BFCL_CLASSES:
        return None
    doc = next((d for d in _function_docs(spec.class_name) if d["name"] == spec.method), None)
    return None if doc is None else {**copy.deepcopy(doc), "name": spec.name}


def bfcl_function(spec: ToolSpec) -> dict[str, Any]:
    """One tool as BFCL's prompt lists it (before the language hint)."""
    doc = _bfcl_doc(spec)
    if doc is not None:
        return doc
    out: dict[str, Any] = {"name": spec.name, "description": spec.description,
                           "parameters": to_gorilla_schema(spec.parameters)}
    if spec.response is not None:
        out["response"] = to_gorilla_schema(spec.response)
    return out


def bfcl_functions(specs: Iterable[ToolSpec]) -> dict[str, dict[str, Any]]:
    """name -> BFCL doc of every tool (what `write_exports(bfcl_functions=...)` takes)."""
    return {s.name: bfcl_function(s) for s in specs}


def from_openai_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A BFCL doc from an OpenAI tool alone (no response schema: OpenAI tools have none)."""
    fn = tool.get("function", tool) if tool.get("type") == "function" else tool
    return {"name": fn["name"], "description": fn.get("description", ""),
            "parameters": to_gorilla_schema(fn.get("parameters") or {"type": "object", "properties": {}})}


def with_language_hint(docs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The docs as BFCL's loader leaves them for Python categories: the hint after each description."""
    out = []
    for d in docs:
        d = copy.deepcopy(dict(d))
        d["description"] = d.get("description", "") + PYTHON_HINT
        out.append(d)
    return out
