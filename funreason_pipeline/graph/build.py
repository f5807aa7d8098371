"""The environment-API graph: tools as nodes, prerequisite edges A -> B.

Data edges (B needs a value A produces) come from response schemas matched to parameters, plus
free-text parameters that can carry another class's output. State edges (B needs something A
leaves behind) are found by execution probing (graph/probe.py) and confirmed: the same call of B
succeeds after A and fails without it. Probing may also discover data edges the schemas do not name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from genson import SchemaBuilder

from funreason_pipeline.environments.toolsets import World, toolset_argument_examples
from funreason_pipeline.graph.probe import probe_edges
from funreason_pipeline.matching.arguments import ArgumentProvider, is_text_sink
from funreason_pipeline.matching.names import GENERIC, affinity, result_key, tokens
from funreason_pipeline.models import Edge, ToolSpec

_NUMERIC = {"integer", "number"}
# numeric parameters that set how to compute, not what to compute on: no result chains into them
_SETTINGS = {"precision", "decimal", "place", "digit"}


def _json_type(schema: dict[str, Any]) -> str:
    """A schema's type; of a list of types (`["integer", "null"]`, as inferred for a field that was
    sometimes null) the first that is not null."""
    t = schema.get("type", "string")
    if isinstance(t, list):
        t = next((x for x in t if x != "null"), "null")
    return t if isinstance(t, str) else "string"


def response_fields(schema: dict[str, Any] | None, prefix: str = "") -> list[tuple[str, str]]:
    """(field name, JSON type) of a response schema, descending into objects and array items (a
    result that is a list of records names the records' fields)."""
    out: list[tuple[str, str]] = []
    if not isinstance(schema, dict):
        return out
    if _json_type(schema) == "array" and not schema.get("properties"):
        items = schema.get("items")
        return response_fields(items) if isinstance(items, dict) else out
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        t = _json_type(sub)
        if t == "array":
            items = sub.get("items") or {}
            out.append((name, _json_type(items) if isinstance(items, dict) else "string"))
            out.extend(response_fields(items if isinstance(items, dict) else None))
        elif t == "object" and sub.get("properties"):
            out.extend(response_fields(sub))
        else:
            out.append((name, t))
    return out


def bare_result_type(schema: dict[str, Any] | None) -> str | None:
    """The JSON type of a response that is a bare scalar (`-> int`, `-> str`) or a list of them,
    else None: such a value is known by `result_key(tool)`."""
    if not isinstance(schema, dict) or schema.get("properties"):
        return None
    t = _json_type(schema)
    if t == "array" and isinstance(schema.get("items"), dict):
        t = _json_type(schema["items"])
    return t if t in ("string", "integer", "number") else None


def _types_fit(param_schema: dict[str, Any], field_type: str) -> bool:
    want = param_schema.get("type")
    if want == "array":
        want = (param_schema.get("items") or {}).get("type", "string")
    if want in _NUMERIC and field_type in _NUMERIC:
        return True
    return want == field_type


def data_edges_from_schemas(tools: Iterable[ToolSpec]) -> list[Edge]:
    tools = list(tools)
    edges: dict[tuple[str, str, str], Edge] = {}
    for a in tools:
        fields = response_fields(a.response)
        for b in tools:
            if a.name == b.name:
                continue
            for p, ps in b.properties.items():
                desc = ps.get("description", "")
                best: tuple[float, str, str] | None = None
                for f, ft in fields:
                    if not _types_fit(ps, ft) or "enum" in ps:
                        continue
                    score = affinity(p, desc, f, a.name)
                    how = "name"
                    if score < 0.6 and a.class_name == b.class_name and ft in _NUMERIC and \
                            set(tokens(f)) <= {"result", "value"} and ps.get("type") in _NUMERIC \
                            and not set(tokens(p)) & _SETTINGS:
                        score, how = 0.6, "numeric chain"  # compute, then compute on the result
                    if score < 0.6 and a.class_name != b.class_name and is_text_sink(p, ps) and \
                            ft in ("string", "number") and not set(tokens(f)) <= GENERIC:
                        score, how = 0.6, "text sink"  # e.g. post a file's content, message a price
                    if score >= 0.6 and (best is None or score > best[0]):
                        best = (score, f, how)
                if best:
                    edges[(a.name, b.name, p)] = Edge(
                        src_tool=a.name, dst_tool=b.name, kind="data", param=p, src_field=best[1],
                        evidence=json.dumps({"method": "schema", "rule": best[2], "field": best[1],
                                             "score": round(best[0], 2),
                                             **({"response": "observed"} if (a.response or {}).get("observed")
                                                else {})}),
                    )
    return list(edges.values())


def observed_response_schema(results: list[Any]) -> dict[str, Any] | None:
    """A response schema inferred from results a tool really returned (genson), for tools typed
    `-> dict` or `-> list` whose declared schema names no fields: data edges then follow what
    tools return (a list of records: the records' fields)."""
    objects = [r for r in results if isinstance(r, dict)]
    listed = not objects
    if listed:  # a list of records (`search -> list[dict]`)
        objects = [x for r in results if isinstance(r, list) for x in r if isinstance(x, dict)]
    if not objects:
        return None
    builder = SchemaBuilder()
    for r in objects:
        builder.add_object(r)
    schema = builder.to_schema()
    schema.pop("$schema", None)
    if not schema.get("properties"):
        return None
    return {"type": "array", "items": schema} if listed else schema


def with_observed_responses(tools: list[ToolSpec], observed: dict[str, list[Any]]) -> list[ToolSpec]:
    """The tools, those without declared response fields given the schema of what they returned."""
    out = []
    for t in tools:
        inferred = None if response_fields(t.response) else observed_response_schema(observed.get(t.name, []))
        if inferred:
            desc = (t.response or {}).get("description")
            t = t.model_copy(update={"response": {**inferred, "observed": True,
                                                  **({"description": desc} if desc else {})}})
        out.append(t)
    return out


def described_producers(tools: list[ToolSpec]) -> list[tuple[str, str, str]]:
    """(producer, consumer, parameter) where a parameter's description names another tool of the
    toolset ("the account id as listed by list_accounts", "the id returned by transfer")."""
    names = {t.name for t in tools} | {t.method for t in tools}
    by_method = {t.method: t.name for t in tools} | {t.name: t.name for t in tools}
    out = []
    for b in tools:
        for p, ps in b.properties.items():
            for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", ps.get("description", "")):
                a = by_method.get(word) if word in names else None
                if a and a != b.name and (a, b.name, p) not in out:
                    out.append((a, b.name, p))
    return out


def bare_result_candidates(tools: list[ToolSpec]) -> list[tuple[str, str, str, str]]:
    """(producer, consumer, parameter, "result") where a producer's bare result (`add_note -> int`,
    known as "note") fits a parameter by name (`note_id`). Only candidates: a status string
    (`cancel_order -> "cancelled"`, known as "order") fits `order_id` as well by name, so probing
    must see the value make the consumer work."""
    out = []
    for a in tools:
        t = bare_result_type(a.response)
        if t is None:
            continue
        key = result_key(a.name)
        for b in tools:
            if b.name == a.name:
                continue
            for p, ps in b.properties.items():
                if "enum" not in ps and _types_fit(ps, t) and affinity(p, ps.get("description", ""), key, a.name) >= 0.6:
                    out.append((a.name, b.name, p, "result"))
    return out


def build_edges(toolset, tools: list[ToolSpec], probe_scenarios: list[dict], seed: int = 0,
                report: dict[str, Any] | None = None) -> list[Edge]:
    """All edges of a toolset: schema data edges plus probed edges on the given scenarios.

    Tools typed `-> dict` get the schema of what probing saw them return before schema edges are
    matched; parameters whose description names a producer tool get a data edge when probing
    confirms it. A probed edge that duplicates a schema data edge's (src, dst) is kept only if it is
    a state edge: the schema already explains the data dependency.
    """
    tools = sorted(tools, key=lambda t: t.name)  # the graph must not depend on the catalog's row order
    provider = ArgumentProvider(explore=True, examples=toolset_argument_examples(toolset, tools))
    worlds = [World.from_scenario(toolset, sc, tools) for sc in probe_scenarios]
    observed: dict[str, list[Any]] = {}
    errors: dict[str, str] = {}
    probed = probe_edges(tools, worlds, provider, seed=seed, observed=observed,
                         candidates=described_producers(tools) + bare_result_candidates(tools), errors=errors)
    if report is not None:  # what probing saw, for the warning on a graph without edges
        report.update({"worked": sorted(observed), "errors": dict(sorted(errors.items())),
                       "scenarios": len(worlds)})
    seen = with_observed_responses(tools, observed)
    schema_edges = data_edges_from_schemas(seen)
    known = {(e.src_tool, e.dst_tool) for e in schema_edges}
    known_params = {(e.src_tool, e.dst_tool, e.param) for e in schema_edges}
    return schema_edges + [e for e in probed if e.kind == "state" or (
        (e.src_tool, e.dst_tool) not in known
        if '"description"' not in e.evidence and json.loads(e.evidence).get("method") == "probe"
        else (e.src_tool, e.dst_tool, e.param) not in known_params)]


NO_EDGE_TIPS = ("return dicts with descriptive keys (`account_id`, not `id`) or a TypedDict, name the "
                "producing tool in parameter descriptions (\"the id returned by open_account\"), and make sure "
                "calls can succeed on a fresh scenario (probing finds state edges only from working calls)")


def edgeless_hint(tools: list[ToolSpec], report: dict[str, Any]) -> str:
    """Why a toolset's graph has no edges, as far as probing shows, and what to change."""
    worked, errors = report.get("worked", []), report.get("errors", {})
    if not worked:
        sample = "; ".join(f"{t}: {e[:80]!r}" for t, e in list(errors.items())[:3])
        return (f"no graph edges: no call of any of the {len(tools)} tools succeeded on "
                f"{report.get('scenarios', 0)} fresh scenarios ({sample}). Check that a generated scenario "
                "holds values the tools accept (credentials, ids) where the sampler can find them: in the "
                "state, as values or as a {key: value} mapping, or in ARGUMENT_EXAMPLES.")
    if not any(response_fields(t.response) for t in tools):
        return (f"no graph edges: {len(worked)} of {len(tools)} tools work, but none returns named fields "
                "(results are not dicts): " + NO_EDGE_TIPS)
    return (f"no graph edges: {len(worked)} of {len(tools)} tools work, but no result field matches a parameter "
            "and no call needed another's state: " + NO_EDGE_TIPS)
