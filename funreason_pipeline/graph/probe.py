"""Execution probing: prerequisites found by running tools on fresh scenarios (method.md, Phase I).

Every tool that works on a fresh scenario gets a recipe (its own call). For a tool B that fails
fresh, try each tool A of B's class with a recipe: A's recipe, then B. An edge A -> B is kept only
when the very arguments that worked fail once A's own call is left out: the success is due to A,
not luck. B then gets a recipe too, so chains are found over rounds (get_user_id -> message_login
-> search_messages). A's arguments are re-proposed a few times (locking *all* doors matters) and kept
in the evidence as `a_args`. Kind is 'data' when B's arguments came from A's result and B without A
fails differently than fresh. Tools still failing are tried after pairs of state-changing tools,
starting from one after which B complained about something else (startEngine: doors, then brake).
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError
from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.matching.arguments import ArgumentProvider
from funreason_pipeline.matching.names import error_kind
from funreason_pipeline.matching.values import Row, Value, harvest, harvest_rows
from funreason_pipeline.models import Edge, ToolSpec

Call = tuple[str, dict[str, Any]]


def probe_edges(tools: list[ToolSpec], worlds: list[World], provider: ArgumentProvider, seed: int = 0,
                attempts: int = 4, rounds: int = 3, observed: dict[str, list[Any]] | None = None,
                candidates: list[tuple[str, ...]] = (), errors: dict[str, str] | None = None) -> list[Edge]:
    """Probed edges over all probe scenarios (the first finding of an edge is kept). `observed`
    collects the results of successful calls per tool (response schemas of untyped returns are
    inferred from them); `candidates` (producer, consumer, parameter) are data edges some text
    suggests, kept when a value the producer returned makes the consumer work. `errors` collects
    the fresh error of each tool that never worked."""
    errors = {} if errors is None else errors
    rng = random.Random(seed)
    found: dict[tuple, Edge] = {}
    observed = {} if observed is None else observed
    for w_index, base in enumerate(worlds):
        probe = WorldProbe(tools, base, w_index, provider, rng, found, attempts, rounds, observed)
        probe.run()
        probe.confirm(candidates, random.Random(seed * 7919 + w_index))  # own draws: probing stays as it was
        for name, err in probe.fresh_errors.items():
            if name not in observed:  # tools that never worked: their error, for the edgeless warning
                errors.setdefault(name, err)
    return list(found.values())


@dataclass
class _Ran:
    """A call sequence run from the fresh scenario: the world it ends in (never called again, only
    copied), the values its results offer, and what its end state offers (harvested once; None when
    the state contains itself)."""

    world: World
    results: list[Value]
    seen: tuple[list[Value], list[Row]] | None = None
    harvested: bool = field(default=False)

    def state(self) -> tuple[list[Value], list[Row]] | None:
        if not self.harvested:
            self.harvested = True
            try:
                snap = self.world.snapshot()
            except CyclicStateError:
                return None  # e.g. a directory copied into itself: not a usable prefix
            self.seen = harvest(snap), harvest_rows(snap)
        # the same lists every time, to be read only: the argument provider keeps what it worked
        # out about a list (value groups, fitting values) for as long as it is handed the same one
        return self.seen


class WorldProbe:
    """Probing on one fresh scenario; adds what it finds to the shared `found` edges."""

    def __init__(self, tools: list[ToolSpec], base: World, w_index: int, provider: ArgumentProvider,
                 rng: random.Random, found: dict[tuple, Edge], attempts: int, rounds: int,
                 observed: dict[str, list[Any]] | None = None):
        self.tools, self.base, self.w_index = tools, base, w_index
        self.observed = {} if observed is None else observed
        self.provider, self.rng, self.found = provider, rng, found
        self.attempts, self.rounds = attempts, rounds
        self.by_name = {t.name: t for t in tools}
        self.recipes: dict[str, list[Call]] = {}  # tool -> calls from the fresh scenario ending with its own
        # (tool, arguments) -> the row assignment they came from, for calls that worked and changed
        # the state (a login with an email and its password): the sampler starts from these
        self.row_args: dict[tuple[str, str], tuple] = {}
        self.changes_state: set[str] = set()
        self.fresh_errors: dict[str, str] = {}
        # B -> {A: A's arguments after which B failed with a different complaint than fresh}
        self.progress: dict[str, dict[str, dict[str, Any]]] = {}
        # call sequences already run from this scenario (most are run again and again: A's recipe
        # before every B): tools are deterministic given their state (BFCL keeps its randomness in
        # the instance), so the same calls end in the same state
        self._runs: dict[str, tuple[_Ran | None, list[dict[str, Any]]]] = {}

    def run(self) -> None:
        self._fresh_recipes()
        self._learn_in_rounds([t.name for t in self.tools if t.name in self.recipes])
        # two prerequisites at once: start from a tool after which B complained about something else
        paired: dict[str, list[Call]] = {}
        for b in self.tools:
            if b.name in self.recipes:
                continue
            movers = sorted(a for a in self.changes_state
                            if self.by_name[a].class_name == b.class_name and a != b.name)
            stepped = self.progress.get(b.name, {})
            for a1, a2 in [(a1, a2) for a1 in sorted(stepped) for a2 in movers if a2 != a1]:
                keep = {a1: stepped[a1]}
                recipe = self._try_after((a1, a2), b, 8, keep) or self._try_after((a2, a1), b, 8, keep)
                if recipe:
                    paired[b.name] = recipe
                    break
        if paired:  # what those unlock (a running engine -> cruise control)
            self.recipes.update(paired)
            self._learn_in_rounds(sorted(paired))

    def _fresh_recipes(self) -> None:
        base_snapshot = self.base.snapshot()
        state = harvest(base_snapshot)
        rows = harvest_rows(base_snapshot)
        for spec in self.tools:
            for _ in range(self.attempts * 2):
                probe = self.base.copy()
                proposal = self.provider.propose(spec, [], state, self.rng, rows=rows)
                args, label = proposal.args, proposal.row_label
                res = probe.call(spec.name, args)
                self.provider.learn(proposal, res.ok, joint_only=True, error=res.error, value=res.value)
                if not res.ok:
                    self.fresh_errors[spec.name] = res.error or ""
                    continue
                self._observe(spec.name, res.value)
                try:
                    after = probe.snapshot()
                except CyclicStateError:
                    continue  # e.g. a directory copied into itself: not a usable prefix
                self.recipes.setdefault(spec.name, [(spec.name, args)])
                if after != base_snapshot:
                    # prefer arguments with an effect: a login with a wrong password "succeeds" too
                    self.recipes[spec.name] = [(spec.name, args)]
                    self.changes_state.add(spec.name)
                    if label is not None:
                        self.row_args[(spec.name, _args_key(args))] = label
                    break

    def _learn_in_rounds(self, prefixes: list[str]) -> None:
        for _ in range(self.rounds):  # later rounds try only the tools the previous round made work
            learned: dict[str, list[Call]] = {}
            for b in self.tools:
                if b.name in self.recipes:
                    continue
                for a in prefixes:
                    # classes are separate environments: only a tool of B's own class changes its state
                    same_class = self.by_name[a].class_name == b.class_name
                    if a != b.name and same_class and (a, b.name) not in self.found:
                        recipe = self._try_after((a,), b)
                        if recipe is not None:
                            learned.setdefault(b.name, recipe)
            if not learned:
                return
            self.recipes.update(learned)
            prefixes = sorted(learned)

    def _ran(self, calls: list[Call]) -> _Ran | None:
        """The calls run from the fresh scenario (memoised; None when one fails). Its world must
        only be copied, never called."""
        key = repr(calls)  # repr, not JSON: a tuple is no array to the schema check
        if key in self._runs:
            ran, filled = self._runs[key]
            for (_, args), added in zip(calls, filled):
                for k, v in added.items():
                    args.setdefault(k, copy.deepcopy(v))
            return ran  # its results were observed when it first ran
        world = self.base.copy()
        results: list[Value] = []
        filled: list[dict[str, Any]] = []
        ran: _Ran | None = _Ran(world, results)
        for pos, (name, args) in enumerate(calls):
            given = set(args)
            res = world.call(name, args)
            filled.append({k: copy.deepcopy(v) for k, v in args.items() if k not in given})
            if not res.ok:
                ran = None
                break
            self._observe(name, res.value)
            results.extend(harvest(res.value, source=pos, producer=name))
        self._runs[key] = ran, filled
        return ran

    def _try_after(self, prefix: tuple[str, ...], b: ToolSpec, variants: int | None = None,
                   fixed: dict[str, dict[str, Any]] | None = None) -> list[Call] | None:
        """B's recipe when it works after the prefix tools' recipes (and not without them)."""
        fixed = fixed or {}
        if variants is None:  # a state-changing A's arguments matter more (which doors it locks)
            variants = 4 if any(a in self.changes_state for a in prefix) else 2
        fresh_error = self.fresh_errors.get(b.name, "")
        variant = -1
        while (variant := variant + 1) < variants:
            calls = self._prefix_calls(prefix, fixed, fresh_args=variant > 0)
            ran = self._ran(calls) if calls is not None else None
            seen = ran.state() if ran is not None else None
            if seen is None:
                continue
            world, results = ran.world.copy(), ran.results
            after_state, rows = seen
            tries = -1
            b_tries = self.attempts
            while (tries := tries + 1) < b_tries:
                proposal = self.provider.propose(b, results, after_state, self.rng, rows=rows)
                args, sources, fields = proposal.args, proposal.sources, proposal.fields
                res = world.call(b.name, args)
                self.provider.learn(proposal, res.ok, joint_only=True, error=res.error, value=res.value)
                if not res.ok:
                    if len(prefix) == 1 and error_kind(res.error) != error_kind(fresh_error):
                        # a new complaint: one step on (locked doors, now the brake); both A's and
                        # B's arguments matter now, so try more of each
                        self.progress.setdefault(b.name, {}).setdefault(prefix[0], calls[-1][1])
                        variants, b_tries = max(variants, 8), max(b_tries, 2 * self.attempts)
                    continue
                self._observe(b.name, res.value)
                without = _needs_each(self.base, calls, prefix, b.name, args)
                if without is None:
                    return None  # the same call works without one of the prefix tools: no prerequisite
                calls = _whole_sets(self.base, calls, prefix, self.by_name, b.name, args)
                self._record(prefix, calls, b, args, sources, fields, fresh_error, without)
                return calls + [(b.name, args)]
        return None

    def _observe(self, tool: str, value: Any) -> None:
        seen = self.observed.setdefault(tool, [])
        if len(seen) < 12 and value not in seen:
            seen.append(value)

    def confirm(self, candidates: list[tuple[str, ...]], rng: random.Random, tries: int = 12) -> None:
        """Data edges a description names ("the id returned by transfer") or a bare result's name
        suggests (`add_note -> int` for `note_id`; a 4th element names the method): kept when,
        after the producer's recipe (and the consumer's own prerequisites), a value the producer
        returned makes the consumer work; the field it came from is the edge's `src_field`."""
        for a, b, param, *how in candidates:
            if (a, b, param) in self.found or self._recipe_for(a, rng) is None:
                continue
            before = self.recipes[b][:-1] if self._recipe_for(b, rng) else []
            # B's own prerequisites, then A's recipe (unless B's recipe already calls A: ship -> track)
            calls = before if any(n == a for n, _ in before) else before + self.recipes[a]
            ran = self._ran(calls)
            if ran is None:
                continue
            world, results = ran.world, ran.results
            spec = self.by_name[b]
            a_at = max(i for i, (n, _) in enumerate(calls) if n == a)
            mine = [v for v in results if v.source == a_at and _fits_param(spec, param, v)]
            seen = ran.state()
            if seen is None:
                continue
            state, rows = seen
            by_key: dict[str, list[Value]] = {}
            for v in mine:
                by_key.setdefault(v.key, []).append(v)
            for key, vals in sorted(by_key.items()):
                ok = False
                for attempt in range(tries):  # the other arguments matter too (a second account)
                    v = vals[attempt % len(vals)]
                    args = self.provider.propose(spec, results, state, rng, rows=rows).args
                    args[param] = v.value
                    if world.copy().call(b, args).ok:
                        ok = True
                        break
                if ok:
                    self.found[(a, b, param)] = Edge(
                        src_tool=a, dst_tool=b, kind="data", param=param, src_field=key,
                        evidence=json.dumps({"method": how[0] if how else "description", "scenario": self.w_index,
                                             "field": key,
                                             "b_args": args}, default=str))
                    break

    def _recipe_for(self, tool: str, rng: random.Random) -> list[Call] | None:
        """The tool's recipe on this scenario; one made from an edge found on an earlier scenario
        (login -> list_accounts: this scenario's login, then list_accounts) when it has none yet."""
        if tool in self.recipes:
            return self.recipes[tool]
        for e in sorted(self.found.values(), key=lambda e: e.src_tool):
            if e.kind != "state" or e.dst_tool != tool or e.src_tool not in self.recipes:
                continue
            ran = self._ran(self.recipes[e.src_tool])
            if ran is None or ran.state() is None:
                continue
            for _ in range(self.attempts):
                state, rows = ran.state()
                args = self.provider.propose(self.by_name[tool], ran.results, state, rng, rows=rows).args
                if ran.world.copy().call(tool, args).ok:
                    self.recipes[tool] = self.recipes[e.src_tool] + [(tool, args)]
                    return self.recipes[tool]
        return None

    def _prefix_calls(self, prefix: tuple[str, ...], fixed: dict[str, dict[str, Any]],
                      fresh_args: bool) -> list[Call] | None:
        """The prefix tools' recipes in order; with fresh_args, each tool's own arguments are
        proposed anew from what its recipe produced (None when that recipe no longer runs)."""
        calls: list[Call] = []
        for a in prefix:
            *before, (_, a_args) = self.recipes[a]
            calls.extend(before)
            if a in fixed:
                a_args = fixed[a]
            elif fresh_args:
                ran = self._ran(calls)
                seen = ran.state() if ran is not None else None
                if seen is None:
                    return None
                a_args = self.provider.propose(self.by_name[a], ran.results, seen[0], self.rng,
                                               rows=seen[1]).args
            calls.append((a, a_args))
        return calls

    def _record(self, prefix: tuple[str, ...], calls: list[Call], b: ToolSpec, args: dict, sources: dict,
                fields: dict, fresh_error: str, without: dict[str, str]) -> None:
        finals: dict[str, int] = {}  # each prefix tool's own (last) call in the executed sequence
        for i, (name, _) in enumerate(calls):
            if name in prefix:
                finals[name] = i
        a_args = {name: calls[i][1] for name, i in finals.items()}
        a_rows = {name: [label[1], [list(pair) for pair in label[2]]] for name, args in a_args.items()
                  if (label := self.row_args.get((name, _args_key(args))))}
        for a, idx in finals.items():
            fed = [p for p, src in sources.items() if src == idx]
            # Without A, B fails as it did fresh with any arguments ("No user is currently logged
            # in"): A's effect is on the state, even when one argument happened to come from A.
            if error_kind(without.get(a)) == error_kind(fresh_error):
                fed = []
            kind = "data" if fed else "state"
            self.found.setdefault((a, b.name), Edge(
                src_tool=a, dst_tool=b.name, kind=kind, param=fed[0] if fed else None,
                src_field=fields.get(fed[0]) if fed else None,
                evidence=json.dumps({"method": "probe", "scenario": self.w_index, "after": list(prefix),
                                     "field": fields.get(fed[0]) if fed else None, "a_args": a_args,
                                     "b_args": args, "fresh_error": fresh_error[:200],
                                     **({"a_rows": a_rows} if a_rows else {})}, default=str),
            ))


def _args_key(args: dict[str, Any]) -> str:
    return json.dumps(args, sort_keys=True, default=str)


def _fits_param(spec: ToolSpec, param: str, v: Value) -> bool:
    want = spec.properties.get(param, {}).get("type")
    return want is None or want == v.jtype or (want == "number" and v.jtype == "integer")


def _whole_sets(base: World, calls: list[Call], prefix: tuple[str, ...], by_name: dict[str, ToolSpec], b: str,
                args: dict[str, Any]) -> list[Call]:
    """The sequence with each prefix tool's enum-list arguments widened to the whole enum when B
    still works so: lockDoors(driver, rear_left, rear_right) enabled startEngine in a scenario whose
    passenger door was locked already; locking every door enables it in any scenario, and these
    arguments are what the sampler tries first (ApiGraph.enabling_args)."""
    out = list(calls)
    for a in prefix:
        last = max(i for i, (name, _) in enumerate(out) if name == a)
        props = by_name[a].properties
        a_args = out[last][1]
        wide = {k: list(props[k]["items"]["enum"]) if isinstance(v, list) and "enum" in props.get(k, {}).get(
            "items", {}) else v for k, v in a_args.items()}
        if wide == a_args:
            continue
        world = base.copy()
        trial = out[:last] + [(a, wide)] + out[last + 1:]
        if all(world.call(name, x).ok for name, x in trial) and world.call(b, args).ok:
            out = trial
    return out


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
