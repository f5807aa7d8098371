"""Phase I: the directed sampler (paper Eq. 1-2), multi-turn on one evolving state.

Each turn has a target tool T_a. At each step: if T_a was reached, a short free continuation
(preferring tools that consume T_a's output); if T_a is legal, call it; otherwise call the legal
tool closest to T_a in the graph. Every call is executed; failed attempts are rejections, and only
successful calls enter the trace.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from funreason_pipeline.environments.mcp_config import expand
from funreason_pipeline.environments.toolsets import ToolsetConfig, World, toolset_argument_examples
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import response_fields
from funreason_pipeline.matching.arguments import ArgumentProvider
from funreason_pipeline.matching.names import GENERIC, error_words, tokens, tool_nouns
from funreason_pipeline.matching.values import changed_keys
from funreason_pipeline.models import Rejection, ToolCall, ToolSpec, Trajectory
from funreason_pipeline.sampling.walk import Abandoned, Walk


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


def server_places(toolset: ToolsetConfig) -> tuple[dict[str, list[str]], set[str]]:
    """(class -> its allowed directories, classes whose state is a SQLite database) of a toolset's MCP
    servers. An allowed directory is a folder on the server's command line that holds its state (the
    filesystem server's `{state_dir}/files`), as calls show it (`/workspace/files`): the user's own
    workspace, whose paths the server takes."""
    roots: dict[str, list[str]] = {}
    databases: set[str] = set()
    for cls in toolset.classes:
        opts = toolset.server_options(cls)
        if opts is None:
            continue
        if opts.state.kind == "dir" and opts.state.path in opts.args:
            roots[cls] = [expand(opts.state.path, opts.visible_state_dir)]
        elif opts.state.kind == "sqlite":
            databases.add(cls)
    return roots, databases


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
        self.roots, self.databases = server_places(toolset)

    def sample(self, trajectory_id: str, seed: int, scenario: dict, planner: TargetPlanner) -> SampleResult:
        """One trajectory on `scenario`: turns toward the planner's goals (sampling/walk.py)."""
        rng = random.Random(seed)
        walk = Walk(self, trajectory_id, rng, World.from_scenario(self.toolset, scenario, self.tool_list), planner)
        walk.scenario = scenario
        planner.previous, planner.queued, planner.requeued = None, [], set()
        wanted = rng.randint(self.config.min_turns, self.config.max_turns)
        try:
            for ti in range(2 * wanted):  # a turn that is not kept leaves room for another request
                if len(walk.turns) >= wanted:
                    break
                walk.next_turn(ti)
        except Abandoned:
            return SampleResult(None, walk.rejections, [])
        traj, reached = walk.finish(scenario, seed)
        return SampleResult(traj, walk.rejections, reached)

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
