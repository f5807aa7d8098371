"""The environment-API graph: tools as nodes, prerequisite edges A -> B.

Data edges (B needs a value A produces) come from response schemas matched to parameters, plus
free-text parameters that can carry another class's output. State edges (B needs something A
leaves behind) are found by execution probing and confirmed: the same call of B fails on a fresh
scenario and succeeds after A. Probing may also discover data edges the schemas do not name.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError
from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.models import Edge, ToolSpec
from funreason_pipeline.sampling.arguments import ArgumentProvider, is_text_sink
from funreason_pipeline.sampling.values import GENERIC, affinity, harvest, tokens

_NUMERIC = {"integer", "number"}


def response_fields(schema: dict[str, Any] | None, prefix: str = "") -> list[tuple[str, str]]:
    """(field name, JSON type) of a response schema, descending into objects and array items."""
    out: list[tuple[str, str]] = []
    if not isinstance(schema, dict):
        return out
    for name, sub in (schema.get("properties") or {}).items():
        if not isinstance(sub, dict):
            continue
        t = sub.get("type", "string")
        if t == "array":
            items = sub.get("items") or {}
            out.append((name, items.get("type", "string") if isinstance(items, dict) else "string"))
            out.extend(response_fields(items if isinstance(items, dict) else None))
        elif t == "object" and sub.get("properties"):
            out.extend(response_fields(sub))
        else:
            out.append((name, t))
    return out


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
                            set(tokens(f)) <= {"result", "value"} and ps.get("type") in _NUMERIC:
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
                                             "score": round(best[0], 2)}),
                    )
    return list(edges.values())


def probe_edges(
    tools: list[ToolSpec],
    worlds: list[World],
    provider: ArgumentProvider,
    seed: int = 0,
    attempts: int = 4,
) -> list[Edge]:
    """Find prerequisites by execution on fresh scenarios (one World per probe scenario).

    For every tool B that fails on a fresh scenario in all attempts, try each tool A that succeeds
    fresh, then B. An edge is kept only when the very arguments that worked after A fail on a fresh
    copy: the success is due to A, not luck. Kind is 'data' when B's arguments came from A's result.
    Tools still failing are tried after pairs of state-changing tools (startEngine needs the doors
    locked and the brake pressed).
    """
    rng = random.Random(seed)
    found: dict[tuple[str, str], Edge] = {}

    def record(a_names: tuple[str, ...], b: ToolSpec, args: dict, sources: dict, fields: dict,
               w_index: int, fresh_error: str) -> None:
        for pos, a in enumerate(a_names):
            fed = [p for p, idx in sources.items() if idx == pos]
            kind = "data" if fed else "state"
            found.setdefault((a, b.name), Edge(
                src_tool=a, dst_tool=b.name, kind=kind, param=fed[0] if fed else None,
                src_field=fields.get(fed[0]) if fed else None,
                evidence=json.dumps({"method": "probe", "scenario": w_index, "after": list(a_names),
                                     "b_args": args, "fresh_error": fresh_error[:200]}, default=str),
            ))

    for w_index, base in enumerate(worlds):
        base_snapshot = base.snapshot()
        state = harvest(base_snapshot)
        works: dict[str, dict[str, Any]] = {}
        changes_state: set[str] = set()
        fresh_errors: dict[str, str] = {}
        for spec in tools:
            for _ in range(attempts * 2):
                probe = base.copy()
                args, _, _ = provider.propose(spec, [], state, rng)
                res = probe.call(spec.name, args)
                if not res.ok:
                    fresh_errors[spec.name] = res.error or ""
                    continue
                try:
                    after = probe.snapshot()
                except CyclicStateError:
                    continue  # e.g. a directory copied into itself: not a usable prefix
                works.setdefault(spec.name, args)
                if after != base_snapshot:
                    # prefer arguments with an effect: a login with a wrong password "succeeds" too
                    works[spec.name] = args
                    changes_state.add(spec.name)
                    break

        def try_after(prefix: tuple[str, ...], b: ToolSpec) -> bool:
            world = base.copy()
            results = []
            for pos, a in enumerate(prefix):
                ra = world.call(a, works[a])
                if not ra.ok:
                    return False
                results.extend(harvest(ra.value, source=pos, producer=a))
            try:
                after_state = harvest(world.snapshot())
            except CyclicStateError:
                return False
            for _ in range(attempts):
                args, sources, fields = provider.propose(b, results, after_state, rng)
                if not world.call(b.name, args).ok:
                    continue
                if not _needs_all(base, prefix, works, b.name, args):
                    return False  # the same call works without (part of) the prefix: not a prerequisite
                record(prefix, b, args, sources, fields, w_index, fresh_errors.get(b.name, ""))
                return True
            return False

        still_failing = []
        for b in tools:
            if b.name in works:
                continue
            hit = False
            for a in tools:
                if a.name != b.name and a.name in works and (a.name, b.name) not in found:
                    hit = try_after((a.name,), b) or hit
            if not hit and not any(dst == b.name for (_, dst) in found):
                still_failing.append(b)
        movers = sorted(changes_state)
        for b in still_failing:
            done = False
            for i, a1 in enumerate(movers):
                for a2 in movers[i + 1:]:
                    if b.name not in (a1, a2) and (try_after((a1, a2), b) or try_after((a2, a1), b)):
                        done = True
                        break
                if done:
                    break
    return list(found.values())


def _needs_all(base: World, prefix: tuple[str, ...], works: dict[str, dict[str, Any]], b: str,
               args: dict[str, Any]) -> bool:
    """True when B(args) fails after every proper sub-sequence of the prefix (including none)."""
    for drop in range(len(prefix)):
        world = base.copy()
        for a in prefix[:drop] + prefix[drop + 1:]:
            world.call(a, works[a])
        if world.call(b, args).ok:
            return False
    return True


def build_edges(toolset, tools: list[ToolSpec], probe_scenarios: list[dict], seed: int = 0) -> list[Edge]:
    """All edges of a toolset: schema data edges plus probed edges on the given scenarios.

    A probed edge that duplicates a schema data edge's (src, dst) is kept only if it is a state edge:
    the schema already explains the data dependency.
    """
    schema_edges = data_edges_from_schemas(tools)
    provider = ArgumentProvider(explore=True)
    worlds = [World.from_scenario(toolset, sc, tools) for sc in probe_scenarios]
    probed = probe_edges(tools, worlds, provider, seed=seed)
    known = {(e.src_tool, e.dst_tool) for e in schema_edges}
    return schema_edges + [e for e in probed if e.kind == "state" or (e.src_tool, e.dst_tool) not in known]
