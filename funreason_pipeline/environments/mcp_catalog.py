"""An MCP server's tools/list answer as the toolset's tool catalog, and tools/call answers as results.

Input schema -> parameters, output schema -> response schema (absent: graph building infers it from
what probing saw the tool return), annotations (readOnlyHint, destructiveHint, idempotentHint) kept
as hints. A tool whose schema does not parse is an error naming the tool.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from jsonschema import Draft202012Validator, SchemaError

from funreason_pipeline.environments.base import EnvironmentConfigError, ToolResult, to_json_value
from funreason_pipeline.environments.failures import failure_of
from funreason_pipeline.models import ToolSpec

HINTS = ("readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_-]")


def tool_name(mcp_name: str) -> str:
    # OpenAI function names allow only [A-Za-z0-9_-]; MCP names may hold dots or slashes
    return _BAD_NAME_CHARS.sub("_", mcp_name)[:64]


def _schema(tool: dict[str, Any], field: str, label: str) -> dict[str, Any] | None:
    raw = tool.get(field)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise EnvironmentConfigError(f"{label}: tool {tool.get('name')!r} has a {field} that is not a JSON object")
    schema = {k: v for k, v in raw.items() if k != "$schema"}  # the draft tag is noise for a model
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise EnvironmentConfigError(
            f"{label}: tool {tool.get('name')!r} has a {field} that is not a valid JSON Schema: {exc.message}; "
            "fix the server or list the tool under exclude_tools") from exc
    return schema


def catalog(tools: list[dict[str, Any]], class_ref: str, label: str,
            translate: tuple[str, str] | None = None) -> tuple[list[ToolSpec], dict[str, dict[str, bool]]]:
    """ToolSpecs (in the server's order) and each tool's annotations."""
    if not tools:
        raise EnvironmentConfigError(f"{label}: the server declares no tools")
    specs, hints, seen = [], {}, set()
    for tool in tools:
        name = tool.get("name") if isinstance(tool, dict) else None
        if not isinstance(name, str) or not name:
            raise EnvironmentConfigError(f"{label}: a tool without a name in tools/list: {str(tool)[:200]}")
        if tool_name(name) in seen:
            raise EnvironmentConfigError(f"{label}: two tools are named {tool_name(name)!r}")
        seen.add(tool_name(name))
        params = _schema(tool, "inputSchema", label) or {"type": "object", "properties": {}}
        if params.get("type") != "object":
            raise EnvironmentConfigError(f"{label}: tool {name!r} takes {params.get('type')!r}, not an object")
        params.setdefault("properties", {})
        description = str(tool.get("description") or tool.get("title") or name)
        if translate:  # the real state folder never appears in what a model reads
            description = description.replace(*translate)
            params = json.loads(json.dumps(params).replace(*translate))
        specs.append(ToolSpec(name=tool_name(name), class_name=class_ref, method=name, description=description,
                              parameters=params, response=_schema(tool, "outputSchema", label)))
        notes = tool.get("annotations") or {}
        hints[name] = {h: bool(notes[h]) for h in HINTS if isinstance(notes, dict) and h in notes}
    return specs, hints


def call_result(method: str, answer: dict[str, Any], error_patterns: list[str] = ()) -> ToolResult:
    """A tools/call answer as a ToolResult: structured content when the server gives it, else the
    text (parsed when it is JSON). `isError` is an error; so is a failure reported in the value
    (`Error: ...`, `{"success": false}`, `{"status": "error"}`), as for every other adapter, and
    text matching one of the server's declared `error_patterns` (a partial failure is a failure)."""
    content = answer.get("content") or []
    texts = [c.get("text", "") for c in content if isinstance(c, dict) and c.get("type") == "text"]
    others = [c for c in content if isinstance(c, dict) and c.get("type") != "text"]
    if answer.get("structuredContent") is not None:
        value: Any = answer["structuredContent"]
    elif len(texts) == 1 and not others:
        value = _maybe_json(texts[0])
    else:
        value = [_maybe_json(t) for t in texts] + [{"type": c.get("type"), "mimeType": c.get("mimeType")}
                                                   for c in others]
    if answer.get("isError"):
        return ToolResult(value, ("\n".join(texts) or "the tool reported an error").strip()[:1000])
    failure = failure_of(value, method)
    if not failure:
        failure = _declared_failure(texts, error_patterns)
    return ToolResult(value, failure) if failure else ToolResult(value)


def _declared_failure(texts: list[str], patterns: list[str]) -> str | None:
    """The first line of a text result that holds a match of a declared error pattern."""
    for pattern in patterns:
        for text in texts:
            m = re.search(pattern, text)
            if m:
                start = text.rfind("\n", 0, m.start()) + 1
                return text[start:].split("\n", 1)[0].strip()[:1000] or "the tool reported an error in its text"
    return None


def _maybe_json(text: str) -> Any:
    stripped = text.strip()
    if stripped[:1] in "[{":
        try:
            return json.loads(stripped)
        except ValueError:
            pass
        try:  # some Python servers answer str(rows): a Python literal, as safe to read as JSON
            return to_json_value(ast.literal_eval(stripped))
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            return text
    return text
