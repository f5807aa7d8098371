"""The environment-API graph: tools as nodes, prerequisite edges A -> B.

Data edges (B needs a value A produces) come from response schemas matched to parameters, plus
free-text parameters that can carry another class's output. State edges (B needs something A
leaves behind) are found by execution probing and confirmed: the same call of B fails on a fresh
scenario and succeeds after A. Probing may also discover data edges the schemas do not name.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError
from funreason_pipeline.environments.toolsets import World, toolset_argument_examples
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


Call = tuple[str, dict[str, Any]]


def probe_edges(
    tools: list[ToolSpec],
    worlds: list[World],
    provider: ArgumentProvider,
    seed: int = 0,
    attempts: int = 4,
    rounds: int = 3,
) -> list[Edge]:
    """Find prerequisites by execution on fresh scenarios (one World per probe scenario).

    Every tool that works on a fresh scenario gets a recipe (its own call). For a tool B that fails
    fresh, try each tool A with a recipe: A's recipe, then B. An edge A -> B is kept only when the
    very arguments that worked fail once A's own call is left out: the success is due to A, not
    luck. B then gets a recipe too, so chains are found over rounds (get_user_id -> message_login ->
    search_messages). A's arguments are re-proposed a few times (locking *all* doors matters) and
    kept in the evidence as `a_args`. Kind is 'data' when B's arguments came from A's result. Tools
    still failing are tried after pairs of state-changing tools (startEngine needs the doors locked
    and the brake pressed).
    """
    rng = random.Random(seed)
    found: dict[tuple[str, str], Edge] = {}
    by_name = {t.name: t for t in tools}

    def record(prefix: tuple[str, ...], calls: list[Call], b: ToolSpec, args: dict, sources: dict,
               fields: dict, w_index: int, fresh_error: str, without: dict[str, str]) -> None:
        finals: dict[str, int] = {}  # each prefix tool's own (last) call in the executed sequence
        for i, (name, _) in enumerate(calls):
            if name in prefix:
                finals[name] = i
        a_args = {name: calls[i][1] for name, i in finals.items()}
        for a, idx in finals.items():
            fed = [p for p, src in sources.items() if src == idx]
            # Without A, B fails as it did fresh with any arguments ("No user is currently logged
            # in"): A's effect is on the state, even when one argument happened to come from A.
            if _error_kind(without.get(a)) == _error_kind(fresh_error):
                fed = []
            kind = "data" if fed else "state"
            found.setdefault((a, b.name), Edge(
                src_tool=a, dst_tool=b.name, kind=kind, param=fed[0] if fed else None,
                src_field=fields.get(fed[0]) if fed else None,
                evidence=json.dumps({"method": "probe", "scenario": w_index, "after": list(prefix),
                                     "field": fields.get(fed[0]) if fed else None, "a_args": a_args,
                                     "b_args": args, "fresh_error": fresh_error[:200]}, default=str),
            ))

    for w_index, base in enumerate(worlds):
        base_snapshot = base.snapshot()
        state = harvest(base_snapshot)
        recipes: dict[str, list[Call]] = {}  # tool -> calls from the fresh scenario ending with its own
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
                recipes.setdefault(spec.name, [(spec.name, args)])
                if after != base_snapshot:
                    # prefer arguments with an effect: a login with a wrong password "succeeds" too
                    recipes[spec.name] = [(spec.name, args)]
                    changes_state.add(spec.name)
                    break

        def run(calls: list[Call]) -> tuple[World, list] | None:
            world = base.copy()
            results: list = []
            for pos, (name, args) in enumerate(calls):
                res = world.call(name, args)
                if not res.ok:
                    return None
                results.extend(harvest(res.value, source=pos, producer=name))
            return world, results

        # B -> {A: A's arguments after which B failed with a different complaint than fresh}
        progress: dict[str, dict[str, dict[str, Any]]] = {}

        def try_after(prefix: tuple[str, ...], b: ToolSpec, variants: int | None = None,
                      fixed: dict[str, dict[str, Any]] | None = None) -> list[Call] | None:
            """B's recipe when it works after the prefix tools' recipes (and not without them)."""
            fixed = fixed or {}
            if variants is None:  # a state-changing A's arguments matter more (which doors it locks)
                variants = 4 if any(a in changes_state for a in prefix) else 2
            variant = -1
            while (variant := variant + 1) < variants:
                calls = prefix_calls(prefix, fixed, fresh_args=variant > 0)
                got = run(calls) if calls is not None else None
                if got is None:
                    continue
                world, results = got
                try:
                    after_state = harvest(world.snapshot())
                except CyclicStateError:
                    continue
                tries = -1
                b_tries = attempts
                while (tries := tries + 1) < b_tries:
                    args, sources, fields = provider.propose(b, results, after_state, rng)
                    res = world.call(b.name, args)
                    if not res.ok:
                        if len(prefix) == 1 and _error_kind(res.error) != _error_kind(fresh_errors.get(b.name)):
                            # a new complaint: one step on (locked doors, now the brake); both A's and
                            # B's arguments matter now, so try more of each
                            progress.setdefault(b.name, {}).setdefault(prefix[0], calls[-1][1])
                            variants, b_tries = max(variants, 8), max(b_tries, 2 * attempts)
                        continue
                    without = _needs_each(base, calls, prefix, b.name, args)
                    if without is None:
                        return None  # the same call works without one of the prefix tools: no prerequisite
                    record(prefix, calls, b, args, sources, fields, w_index, fresh_errors.get(b.name, ""), without)
                    return calls + [(b.name, args)]
            return None

        def prefix_calls(prefix: tuple[str, ...], fixed: dict[str, dict[str, Any]],
                         fresh_args: bool) -> list[Call] | None:
            """The prefix tools' recipes in order; with fresh_args, each tool's own arguments are
            proposed anew from what its recipe produced (None when that recipe no longer runs)."""
            calls: list[Call] = []
            for a in prefix:
                *before, (_, a_args) = recipes[a]
                calls.extend(before)
                if a in fixed:
                    a_args = fixed[a]
                elif fresh_args:
                    got = run(calls)
                    if got is None:
                        return None
                    try:
                        now = harvest(got[0].snapshot())
                    except CyclicStateError:
                        return None
                    a_args, _, _ = provider.propose(by_name[a], got[1], now, rng)
                calls.append((a, a_args))
            return calls

        def learn_in_rounds(prefixes: list[str]) -> None:
            for _ in range(rounds):  # later rounds try only the tools the previous round made work
                learned: dict[str, list[Call]] = {}
                for b in tools:
                    if b.name in recipes:
                        continue
                    for a in prefixes:
                        # classes are separate environments: only a tool of B's own class changes B's state
                        if a != b.name and (a, b.name) not in found and by_name[a].class_name == b.class_name:
                            recipe = try_after((a,), b)
                            if recipe is not None:
                                learned.setdefault(b.name, recipe)
                if not learned:
                    return
                recipes.update(learned)
                prefixes = sorted(learned)

        learn_in_rounds([t.name for t in tools if t.name in recipes])
        # two prerequisites at once: start from a tool after which B complained about something else
        paired: dict[str, list[Call]] = {}
        for b in tools:
            if b.name in recipes:
                continue
            movers = sorted(a for a in changes_state if by_name[a].class_name == b.class_name and a != b.name)
            stepped = progress.get(b.name, {})
            for a1, a2 in [(a1, a2) for a1 in sorted(stepped) for a2 in movers if a2 != a1]:
                keep = {a1: stepped[a1]}
                recipe = try_after((a1, a2), b, 8, keep) or try_after((a2, a1), b, 8, keep)
                if recipe:
                    paired[b.name] = recipe
                    break
        if paired:  # what those unlock (a running engine -> cruise control)
            recipes.update(paired)
            learn_in_rounds(sorted(paired))
    return list(found.values())


def _error_kind(error: str | None) -> str:
    """An error message without its quoted or numeric particulars ('No such file: a.txt' ~ '...: b.txt')."""
    return re.sub(r"'[^']*'|\"[^\"]*\"|\d+(\.\d+)?|:\s.*$", "", error or "").strip().lower()


def _needs_each(base: World, calls: list[Call], prefix: tuple[str, ...], b: str,
                args: dict[str, Any]) -> dict[str, str] | None:
    """When B(args) fails whenever one prefix tool's own call is left out of the sequence: the
    error B gives without each prefix tool; None when B works without one of them."""
    errors: dict[str, str] = {}
    for a in prefix:
        last = max(i for i, (name, _) in enumerate(calls) if name == a)
        world = base.copy()
        for name, a_args in calls[:last] + calls[last + 1:]:
            world.call(name, a_args)
        res = world.call(b, args)
        if res.ok:
            return None
        errors[a] = res.error or ""
    return errors


def build_edges(toolset, tools: list[ToolSpec], probe_scenarios: list[dict], seed: int = 0) -> list[Edge]:
    """All edges of a toolset: schema data edges plus probed edges on the given scenarios.

    A probed edge that duplicates a schema data edge's (src, dst) is kept only if it is a state edge:
    the schema already explains the data dependency.
    """
    tools = sorted(tools, key=lambda t: t.name)  # the graph must not depend on the catalog's row order
    schema_edges = data_edges_from_schemas(tools)
    provider = ArgumentProvider(explore=True, examples=toolset_argument_examples(toolset, tools))
    worlds = [World.from_scenario(toolset, sc, tools) for sc in probe_scenarios]
    probed = probe_edges(tools, worlds, provider, seed=seed)
    known = {(e.src_tool, e.dst_tool) for e in schema_edges}
    return schema_edges + [e for e in probed if e.kind == "state" or (e.src_tool, e.dst_tool) not in known]
