"""Phase I: the directed sampler (paper Eq. 1-2), multi-turn on one evolving state.

Each turn has a target tool T_a. At each step: if T_a was reached, a short free continuation
(preferring tools that consume T_a's output); if T_a is legal, call it; otherwise call the legal
tool closest to T_a in the graph. Every call is executed; failed attempts are rejections, and only
successful calls enter the trace.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from funreason_pipeline.environments.base import CyclicStateError, ToolResult
from funreason_pipeline.environments.failures import failure_of
from funreason_pipeline.environments.toolsets import ToolsetConfig, World, toolset_argument_examples
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import response_fields
from funreason_pipeline.matching.arguments import NEW_STATE, ArgumentProvider, Proposal
from funreason_pipeline.matching.names import GENERIC, error_words, tokens, tool_nouns
from funreason_pipeline.matching.values import Row, Value, changed_keys, harvest, harvest_rows
from funreason_pipeline.models import Rejection, ToolCall, ToolSpec, Trajectory, Turn
from funreason_pipeline.sampling.task import TurnNotKept, shape_turn, turn_problems
from funreason_pipeline.verify.replay import seal_trajectory


@dataclass(frozen=True)
class SamplerConfig:
    min_turns: int = 3
    max_turns: int = 6
    max_calls_per_turn: int = 6
    arg_attempts: int = 4
    target_attempts: int = 8
    # calls after the target are not part of the request: a free continuation becomes the next turn's
    # target (TargetPlanner.follow) instead; > 0 brings back extra calls, which the turn's cut drops
    free_continuation_max: int = 0
    feed_first_rate: float = 0.9  # when the target is legal at once, how often a feeder goes first
    repairs_per_turn: int = 3  # error-guided repairs (call what the error names, then retry)
    enabling_args_rate: float = 0.7  # how often a state prerequisite first tries its probe-proven arguments
    edge_goals: bool = True  # aim turns at graph edges no trajectory has exercised yet (Q3)
    via_rate: float = 0.3  # how often a turn is also asked to go through such an edge (costly: failed attempts)
    same_error_stop: int = 4  # attempts with the same error in a row that end a tool's attempts


@dataclass
class TargetPlanner:
    """Targets cover every tool first (hard tools early), then go after graph edges no accepted
    trajectory has exercised yet (then repeat weighted by prerequisites). A goal may also name a
    `via`: the source of an unexercised edge into the target, to be called first and used by it."""

    graph: ApiGraph
    rng: random.Random
    covered: set[str] = field(default_factory=set)  # targets of accepted trajectories
    pending: set[str] = field(default_factory=set)  # targets reached in the trajectory being sampled
    tries: dict[str, int] = field(default_factory=dict)
    max_tries: int = 12
    unusable: frozenset[str] = frozenset()  # tools no call of which can succeed: never targets
    via_rate: float = 0.3
    edge_goals: bool = True
    exercised: set[tuple[str, str]] = field(default_factory=set)  # edges used by accepted trajectories
    edge_tries: dict[tuple[str, str], int] = field(default_factory=dict)
    max_edge_tries: int = 3
    # the previous turn's target: continuing from it (a consumer of its output over a new edge) is
    # the next turn's request, not extra calls in its turn
    previous: str | None = None
    follow_rate: float = 0.5
    # targets asked for next, in order: a target whose turn only took back its own writes (log
    # in, then log out) comes back after a turn that asks for those writes alone
    queued: list[str] = field(default_factory=list)
    requeued: set[str] = field(default_factory=set)  # each target once per trajectory

    def __post_init__(self) -> None:
        names = sorted(t for t in self.graph.tools if t not in self.unusable)
        self.candidates = sorted(names)
        self.rng.shuffle(names)
        self.order = sorted(names, key=lambda t: -self.graph.prerequisite_count(t))
        self.weights = [1.0 + self.graph.prerequisite_count(t) for t in self.candidates]
        usable = set(names)
        self.edges = sorted({(e.src_tool, e.dst_tool) for e in self.graph.edges
                             if e.src_tool in usable and e.dst_tool in usable and e.src_tool != e.dst_tool})
        self.edges_into: dict[str, list[tuple[str, str]]] = {}
        for e in self.edges:
            self.edges_into.setdefault(e[1], []).append(e)

    def next_target(self) -> str:
        return self.next_goal()[0]

    def next_goal(self) -> tuple[str, str | None]:
        """(target, via): via is None or the source of an unexercised edge into the target."""
        if self.queued:
            return self.queued.pop(0), None
        if self.previous is not None and self.rng.random() < self.follow_rate:
            onward = sorted(t for t in self.open_from(self.previous) if t not in self.pending)
            if onward:
                dst = self.rng.choice(onward)
                self.edge_tries[(self.previous, dst)] = self.edge_tries.get((self.previous, dst), 0) + 1
                return dst, self.previous
        for t in self.order:
            if t not in self.covered and t not in self.pending and self.tries.get(t, 0) < self.max_tries:
                self.tries[t] = self.tries.get(t, 0) + 1
                return t, self._via_into(t)
        open_edges = [e for e in self.edges if self._open(e)] if self.edge_goals else []
        if open_edges:
            src, dst = self.rng.choice(open_edges)
            self.edge_tries[(src, dst)] = self.edge_tries.get((src, dst), 0) + 1
            return dst, src
        target = self.rng.choices(self.candidates, weights=self.weights)[0]
        return target, self._via_into(target)

    def edge_share(self) -> float:
        """Share of the graph's (usable) edges used by accepted trajectories so far."""
        return len(self.exercised.intersection(self.edges)) / len(self.edges) if self.edges else 1.0

    def has_open_edges(self) -> bool:
        return self.edge_goals and any(self._open(e) for e in self.edges)

    def open_from(self, src: str) -> set[str]:
        """Tools with an unexercised edge from `src` (a free continuation can go through one)."""
        return {d for s, d in self.edges if s == src and self._open((s, d))} if self.edge_goals else set()

    def _open(self, edge: tuple[str, str]) -> bool:
        return edge not in self.exercised and self.edge_tries.get(edge, 0) < self.max_edge_tries

    def _via_into(self, target: str) -> str | None:
        if not self.edge_goals or self.rng.random() >= self.via_rate:
            return None
        open_edges = [e for e in self.edges_into.get(target, ()) if self._open(e)]
        if not open_edges:
            return None
        src, dst = self.rng.choice(open_edges)
        self.edge_tries[(src, dst)] = self.edge_tries.get((src, dst), 0) + 1
        return src

    def uncovered(self) -> list[str]:
        return [t for t in self.order if t not in self.covered]

    def settle(self, accepted: bool, used: set[tuple[str, str]] = frozenset()) -> None:
        """A dropped trajectory (replay mismatch, self-containing state) covers nothing."""
        if accepted:
            self.covered |= self.pending
            self.exercised |= used
        self.pending.clear()


@dataclass
class SampleResult:
    trajectory: Trajectory | None
    rejections: list[Rejection]
    reached_targets: list[str]


class DirectedSampler:
    def __init__(self, toolset: ToolsetConfig, tools: list[ToolSpec], graph: ApiGraph,
                 config: SamplerConfig | None = None):
        self.toolset = toolset
        self.tools = {t.name: t for t in tools}
        self.tool_list = tools
        self.graph = graph
        self.config = config or SamplerConfig()
        self._risky: set[str] = set()  # tools that once left a state that contains itself
        # per tool, the specific words of its name and response fields (matched against error messages)
        self._vocab = {t.name: {w for f, _ in response_fields(t.response) for w in tokens(f)} - GENERIC
                       for t in tools}
        # per tool, the words of the state fields its calls changed (login -> session): an error
        # naming a state ("session expired") finds the tool that changes it
        self._changes: dict[str, set[str]] = {}
        self.provider = ArgumentProvider(data_fields=dict(graph.data_fields),
                                         examples=toolset_argument_examples(toolset, tools),
                                         proven_rows=graph.proven_rows)

    def sample(self, trajectory_id: str, seed: int, scenario: dict, planner: TargetPlanner) -> SampleResult:
        cfg = self.config
        rng = random.Random(seed)
        world = World.from_scenario(self.toolset, scenario, self.tool_list)
        flat: list[ToolCall] = []
        results: list[Value] = []
        satisfied: set[str] = set()  # called, or waived because the state they create already holds
        turns: list[Turn] = []
        rejections: list[Rejection] = []
        reached_targets: list[str] = []
        state: list[Value] | None = None
        initial: set[tuple[str, object]] | None = None  # (key, value) pairs of the initial state
        parts: dict[str, list[Value]] = {}  # harvested state values per environment class
        row_parts: dict[str, list[Row]] = {}  # values of the state that belong together, per class
        rows: list[Row] = []
        snaps: dict[str, dict] = {}  # the last snapshot per class
        dirty: set[str] = set(self.toolset.classes)  # classes whose state must be read again
        last_call: dict[str, int] = {}  # tool -> index of its latest call in `flat`

        planner.previous, planner.queued, planner.requeued = None, [], set()
        wanted = rng.randint(cfg.min_turns, cfg.max_turns)
        for ti in range(2 * wanted):  # a turn that is not kept leaves room for another request
            if len(turns) >= wanted:
                break
            target, via = planner.next_goal()
            # an edge to exercise: call `via` first (unless this trajectory already did), then the
            # target, with arguments preferably taken from via's result
            via_done = via is None or via in last_call
            turn_calls: list[ToolCall] = []
            banned: set[str] = set()
            reached = False
            repairs_left = cfg.repairs_per_turn
            pending: list[str] = []  # a stack: tools an error asked for, then the tool to retry
            pending_for: set[str] = set()  # tools in a repair chain (their own failures may be repaired)
            repaired_with: set[str] = set()
            free_left = rng.randint(0, cfg.free_continuation_max)
            onward = planner.open_from(target) if free_left else set()
            # the turn is walked on the live world, then cut down to a task (sampling/task.py) and
            # re-executed from here: keep what the cut needs to restart from the turn's start
            world_before, n_flat, n_results = world.copy(), len(flat), len(results)
            satisfied_before, last_call_before = set(satisfied), dict(last_call)
            for _ in range(cfg.max_calls_per_turn * 3):
                if len(turn_calls) >= cfg.max_calls_per_turn or (reached and free_left <= 0):
                    break
                while pending and pending[-1] in banned:
                    pending.pop()
                goal = target if via_done or via in banned or reached else via
                if pending and not reached:
                    tool = pending.pop()
                else:
                    tool = self._next_tool(goal, reached, satisfied, banned, {c.tool for c in turn_calls}, rng,
                                           onward)
                if tool is None:
                    break
                if state is None:
                    # only the class of the last call can have changed: re-read just that part
                    try:
                        for cls in sorted(dirty):
                            snap = world.envs[cls].snapshot()
                            if flat and cls in snaps:
                                self._learn_changes(flat[-1], snaps[cls], snap)
                            snaps[cls] = snap
                            row_parts[cls] = harvest_rows({cls: snap})
                            part = harvest({cls: snap})
                            if initial is not None:  # tag what earlier calls created: acted on next
                                part = [v if (v.key, v.value) in initial
                                        else Value(v.key, v.value, None, NEW_STATE, v.jtype) for v in part]
                            parts[cls] = part
                    except CyclicStateError as exc:
                        # e.g. a directory copied into itself; from now on calls of that tool are
                        # made on a copy first and undone when they do it again
                        self._risky.add(flat[-1].tool)
                        rejections.append(Rejection(item_id=trajectory_id, reason="cyclic_state", detail=str(exc)))
                        return SampleResult(None, rejections, [])
                    dirty.clear()
                    state = [v for cls in self.toolset.classes for v in parts[cls]]
                    rows = [r for cls in self.toolset.classes for r in row_parts[cls]]
                    if initial is None:
                        initial = {(v.key, v.value) for v in state}
                enabling = self.graph.enabling_for(tool, goal) if not reached and tool != goal else None
                if enabling is not None and not _fits_here(enabling, self.tools[tool], results, state):
                    enabling = None  # probed on another scenario: its credentials or ids do not exist here
                call = None
                same_error, last_error = 0, None  # consecutive attempts failing with the very same message
                # the target gets more tries: reaching it is the point of the turn
                for attempt in range(cfg.target_attempts if tool == target else cfg.arg_attempts):
                    if attempt == 0 and enabling is not None and rng.random() < cfg.enabling_args_rate:
                        # the arguments that made the target work in probing (no source to credit)
                        proposal = Proposal(tool, dict(enabling))
                    else:
                        proposal = self.provider.propose(
                            self.tools[tool], results, state, rng,
                            prefer=target if reached else via if tool == target else None, rows=rows)
                    args, sources = proposal.args, proposal.sources
                    backup = world.copy() if tool in self._risky else None
                    res = world.call(tool, args)
                    self.provider.learn(proposal, res.ok, error=res.error, value=res.value)
                    if res.ok and backup is not None:
                        try:
                            world.snapshot()
                        except CyclicStateError as exc:  # undo it: this call is a failed attempt
                            world, res = backup, ToolResult(None, f"unusable state: {exc}")
                    if res.ok:
                        call = ToolCall(tool=tool, arguments=args, result=res.value, sources=sources)
                        break
                    rejections.append(Rejection(
                        item_id=f"{trajectory_id}/turn{ti}/{tool}", reason="tool_error",
                        detail=json.dumps({"tool": tool, "arguments": args, "error": res.error}, default=str)[:2000],
                    ))
                    same_error = same_error + 1 if res.error == last_error else 1
                    last_error = res.error
                    if same_error >= cfg.same_error_stop:
                        break  # new arguments do not change the answer ("Start the engine"): repair instead
                if call is None:
                    redo = self.graph.state_prereqs.get(target, set()) & (satisfied - banned) \
                        if tool == target else set()
                    # a fixer that is not legal yet fails and is repaired in turn (engine -> doors)
                    fixers = self._named_by(res.error, exclude={tool} | banned | repaired_with)
                    if repairs_left > 0 and (redo or fixers) and (tool in (target, via) or tool in pending_for):
                        # The target's prerequisites "succeeded" without effect (a login with an
                        # unknown id returns login_status false), or the error names what is missing
                        # ("Booking not found": book_flight returns a booking_id; "Start the engine"):
                        # repair, then retry; a repair that fails may be repaired in turn.
                        repairs_left -= 1
                        satisfied -= redo
                        pending.append(tool)
                        if fixers:  # a repair that did not help is not tried again in this turn
                            pending.append(rng.choices(list(fixers), weights=list(fixers.values()))[0])
                            repaired_with.add(pending[-1])
                        pending_for.update(pending)
                        continue
                    banned.add(tool)
                    if tool in self.graph.state_prereqs.get(target, ()):
                        satisfied.add(tool)  # e.g. login fails as "already logged in"
                    continue
                call.after = sorted(last_call[p] for p in self.graph.state_prereqs.get(tool, ()) if p in last_call)
                last_call[tool] = len(flat)
                results.extend(harvest(call.result, source=len(flat), producer=tool))
                flat.append(call)
                turn_calls.append(call)
                satisfied.add(tool)
                via_done = via_done or tool == via
                dirty.add(self.tools[tool].class_name)
                state = None
                if reached:
                    free_left -= 1
                elif tool == target:
                    reached = True
            if not turn_calls:
                rejections.append(Rejection(item_id=f"{trajectory_id}/turn{ti}", reason="target_unreachable",
                                            detail=json.dumps({"target": target})))
                continue
            if not reached:
                # the calls happened on the live state, so the turn stays, aimed at its last call
                rejections.append(Rejection(
                    item_id=f"{trajectory_id}/turn{ti}", reason="target_missed",
                    detail=json.dumps({"target": target, "kept_as": turn_calls[-1].tool}),
                ))
                target = turn_calls[-1].tool
            target_pos = max(i for i, c in enumerate(turn_calls) if c.tool == target)
            del flat[n_flat:]
            # a new list, not a truncated one: the argument provider caches groups per result list
            # and assumes it only grows
            results = results[:n_results]
            last_call = dict(last_call_before)
            state, dirty = None, set(self.toolset.classes)  # the world is replaced below: read it again
            snaps.clear()
            try:
                shaped = shape_turn(world_before, turn_calls, target_pos, n_flat, self.tools)
                problems = turn_problems(shaped.calls, len(shaped.calls) - 1, n_flat, failure_of)
                if problems:
                    raise TurnNotKept("; ".join(problems))
            except (TurnNotKept, CyclicStateError) as exc:
                # the walk cannot be cut to a clean task: the turn never happened
                world, satisfied = world_before, satisfied_before
                why = "cyclic_state" if isinstance(exc, CyclicStateError) else str(exc).split(":")[0]
                first = [t for t in getattr(exc, "undone_by", []) if t != target]
                if first and target not in planner.requeued:
                    planner.requeued.add(target)
                    planner.queued = [*dict.fromkeys(first), target]
                rejections.append(Rejection(item_id=f"{trajectory_id}/turn{ti}", reason=why, detail=str(exc)[:2000]))
                continue
            for c, why in shaped.dropped:
                rejections.append(Rejection(item_id=f"{trajectory_id}/turn{ti}/{c.tool}", reason=why,
                                            detail=json.dumps({"tool": c.tool, "arguments": c.arguments,
                                                               "target": target}, default=str)[:2000]))
            world, turn_calls = shaped.world, shaped.calls
            satisfied = satisfied_before | {c.tool for c in turn_calls} | (
                satisfied - {c.tool for c, _ in shaped.dropped})
            for c in turn_calls:
                last_call[c.tool] = len(flat)
                results.extend(harvest(c.result, source=len(flat), producer=c.tool))
                flat.append(c)
            if target not in {c.tool for c in turn_calls}:
                continue
            planner.pending.add(target)  # covered once the trajectory is accepted
            planner.previous = target
            reached_targets.append(target)
            turns.append(Turn(target_tool=target, calls=turn_calls))

        if not turns:
            rejections.append(Rejection(item_id=trajectory_id, reason="empty_trajectory"))
            return SampleResult(None, rejections, [])
        problems = [f"turn {k}: {p}" for k, t in enumerate(turns) for p in turn_problems(
            t.calls, max(i for i, c in enumerate(t.calls) if c.tool == t.target_tool),
            sum(len(u.calls) for u in turns[:k]), failure_of)]
        if problems:  # the cut above should make this impossible: a gate, not a filter
            rejections.append(Rejection(item_id=trajectory_id, reason=problems[0].split(": ")[1],
                                        detail="; ".join(problems)[:2000]))
            return SampleResult(None, rejections, [])
        traj = Trajectory(trajectory_id=trajectory_id, toolset=self.toolset.name, seed=seed,
                          scenario=scenario, turns=turns)
        traj, problems, end_world = seal_trajectory(traj, self.toolset, self.tool_list)
        try:
            end_world.snapshot()
        except CyclicStateError as exc:
            problems.append(str(exc))
        if problems:  # a tool with hidden state or an error that still mutated: never ship it
            rejections.append(Rejection(item_id=trajectory_id, reason="replay_mismatch",
                                        detail="; ".join(problems)[:2000]))
            return SampleResult(None, rejections, [])
        return SampleResult(traj, rejections, reached_targets)

    def _learn_changes(self, call: ToolCall, before: dict, after: dict) -> None:
        """Remember which state fields a call changed; a tool's result keys name what it hands out."""
        if isinstance(call.result, dict):  # an untyped `-> dict` tool: its real result names it
            self._vocab[call.tool] = self._vocab.get(call.tool, set()) | (
                {w for k in call.result for w in tokens(str(k))} - GENERIC)
        words = {w for k in changed_keys(before, after) for w in tokens(k)} - GENERIC
        if words:
            self._changes.setdefault(call.tool, set()).update(words)

    def _named_by(self, error: str | None, exclude: set[str]) -> dict[str, float]:
        """Tools weighted by how well they match what an error message complains about: a word of
        the tool's name counts, and so does naming it among its response fields (a producer: "Booking
        not found" -> book_flight returns a booking_id), but only once ("Start the engine" ->
        startEngine far more often than displayCarStatus with its engineState field). An error that
        names a state ("not logged in", "session expired", "card frozen") also finds the tools whose
        calls cured it in probing (the graph's state edges) or changed the state field it names."""
        words = error_words(error)
        fixers, changes = self.graph.fixer_words, self._changes
        scores = {t: 2 * len(set(tool_nouns(t)) & words) + 2 * min(1, len(vocab & words))
                  + 3 * min(1, len(fixers.get(t, set()) & words)) + 2 * min(1, len(changes.get(t, set()) & words))
                  for t, vocab in self._vocab.items() if t not in exclude} if words else {}
        return {t: float(sc * sc) for t, sc in sorted(scores.items()) if sc}

    def _next_tool(self, target: str, reached: bool, satisfied: set[str], banned: set[str],
                   in_turn: set[str], rng: random.Random, onward: set[str] = frozenset()) -> str | None:
        g = self.graph
        names = sorted(self.tools)
        if reached:  # free continuation: prefer consumers of the target's output, new edges first
            legal = [t for t in names if t not in banned and t != target and g.is_legal(t, satisfied)]
            consumers = [t for t in legal if g.g.has_edge(target, t)]
            pool = [t for t in consumers if t in onward] or consumers or legal
            return rng.choice(pool) if pool else None
        dist = g.distances_to(target)
        legal = [t for t in names if t not in banned and g.is_legal(t, satisfied)]
        feeders = {e.src_tool for e in g.edges if e.dst_tool == target and e.kind == "data"} - {target}
        if target in legal:
            # make the turn a chain: often first call a tool whose output feeds the target
            ready = [t for t in legal if t in feeders and t not in in_turn]
            if not in_turn and ready and rng.random() < self.config.feed_first_rate:
                return rng.choice(ready)
            return target
        # progress first: unmet state prerequisites, then producers of unmet data-fed parameters
        unmet_state = g.state_prereqs.get(target, set()) - satisfied
        unmet_data = set().union(*[grp for grp in g.required_data_sources.get(target, ()) if not grp & satisfied])

        def priority(t: str) -> int:
            return 0 if t in unmet_state else 1 if t in unmet_data else 2

        ranked = [(priority(t), dist[t], t) for t in legal if t in dist and t != target and t not in in_turn]
        if (unmet_state or unmet_data) and not any(r[0] < 2 for r in ranked):
            # prerequisites that feed each other in a cycle (every twitter tool wants a username some
            # other twitter tool returns) are never strictly legal: let the user supply the value
            prereqs = [(priority(t), dist.get(t, 999), t) for t in names
                       if priority(t) < 2 and t not in banned and t not in in_turn and t != target
                       and g.is_legal(t, satisfied, strict=False)]
            if prereqs:
                ranked = prereqs
        if not ranked:
            # No strictly legal step leads on: the user may supply what the target needs. Still
            # prefer one preparatory call that feeds the target before calling it.
            relaxed = [t for t in names if t not in banned and g.is_legal(t, satisfied, strict=False)]
            if in_turn and target in relaxed:
                return target
            ranked = [(priority(t), dist[t], t) for t in relaxed if t in dist and t != target and t not in in_turn]
            if not ranked:
                return target if target in relaxed else None
        best = min(r[:2] for r in ranked)
        return rng.choice([t for *key, t in ranked if tuple(key) == best])


def _fits_here(args: dict, spec: ToolSpec, results: list[Value], state: list[Value]) -> bool:
    """Whether probe-proven arguments make sense in this world: each string is a schema enum member
    or a value the world shows (a username from another scenario is not)."""
    seen: set | None = None
    for name, value in args.items():
        for v in value if isinstance(value, list) else [value]:
            if not isinstance(v, str):
                continue
            schema = spec.properties.get(name, {})
            if v in schema.get("enum", ()) or v in schema.get("items", {}).get("enum", ()):
                continue
            if seen is None:
                seen = {x.value for x in state} | {x.value for x in results}
            if v not in seen:
                return False
    return True
