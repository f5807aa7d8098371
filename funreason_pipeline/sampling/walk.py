"""One trajectory's walk (Phase I): turns walked on one live world, each cut down to a task.

A `Walk` holds what a trajectory has so far: the world, the calls made (`flat`), the values their
results offer, which tools are satisfied, and a cached reading of the world's state. Its named steps:

- `next_turn`: the planner's goal (target, via), walked call by call (`_walk_turn`);
- `_read_state`: re-read the classes the last call may have changed (values, rows, what is new);
- `_attempt`: call one tool with proposed arguments, learning from each outcome;
- `_repair_or_ban`: after a failed tool, repair what the error names and retry, or give it up;
- `_record`: a successful call joins the turn;
- `_keep_turn`: cut the walked calls to the requested action and what it needs (sampling/task.py)
  and re-execute them from the turn's start, or drop the turn with its reason;
- `finish`: the trajectory, sealed and replayed, or why it is not kept.

The sampler (`DirectedSampler`) owns what is learned across trajectories (argument sources, error
words, risky tools); a walk uses it and tells it what it saw.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from funreason_pipeline.environments.base import CyclicStateError, ToolResult
from funreason_pipeline.environments.failures import failure_of
from funreason_pipeline.environments.toolsets import World
from funreason_pipeline.matching import paths as path_book
from funreason_pipeline.matching import sql as table_book
from funreason_pipeline.matching.arguments import NEW_STATE, Proposal
from funreason_pipeline.matching.values import Row, Value, harvest, harvest_rows
from funreason_pipeline.models import Rejection, ToolCall, Trajectory, Turn
from funreason_pipeline.sampling.task import TurnNotKept, shape_turn, turn_problems
from funreason_pipeline.verify.replay import seal_trajectory

if TYPE_CHECKING:
    from funreason_pipeline.sampling.sampler import DirectedSampler, TargetPlanner


class Abandoned(Exception):
    """The trajectory cannot go on (its state came to contain itself); the reason is recorded."""


@dataclass
class TurnWalk:
    """One turn being walked: its goal and what happened so far."""

    target: str
    via: str | None  # the source of an edge to exercise: called first, its result feeding the target
    via_done: bool
    free_left: int  # calls allowed after the target (a free continuation)
    onward: set[str]  # tools with an unexercised edge from the target
    repairs_left: int
    calls: list[ToolCall] = field(default_factory=list)
    banned: set[str] = field(default_factory=set)  # tools given up on in this turn
    reached: bool = False
    pending: list[str] = field(default_factory=list)  # a stack: tools an error asked for, then the tool to retry
    pending_for: set[str] = field(default_factory=set)  # tools in a repair chain (their own failures may be repaired)
    repaired_with: set[str] = field(default_factory=set)


class Walk:
    def __init__(self, sampler: DirectedSampler, trajectory_id: str, rng: random.Random, world: World,
                 planner: TargetPlanner):
        self.s, self.tid, self.rng, self.world, self.planner = sampler, trajectory_id, rng, world, planner
        self.flat: list[ToolCall] = []
        self.results: list[Value] = []
        self.satisfied: set[str] = set()  # called, or waived because the state they create already holds
        self.turns: list[Turn] = []
        self.rejections: list[Rejection] = []
        self.reached_targets: list[str] = []
        self.last_call: dict[str, int] = {}  # tool -> index of its latest call in `flat`
        # the state as last read: values, rows of values that belong together, per-class parts
        self.state: list[Value] | None = None
        self.rows: list[Row] = []
        self.initial: set[tuple[str, object]] | None = None  # (key, value) pairs of the initial state
        self.parts: dict[str, list[Value]] = {}
        self.row_parts: dict[str, list[Row]] = {}
        self.snaps: dict[str, dict] = {}  # the last snapshot per class
        self.dirty: set[str] = set(sampler.toolset.classes)  # classes whose state must be read again
        self._ti = 0  # the index of the turn being walked (rejections name it)
        self.scenario: dict = {}  # what built the initial state (texts of files the user wrote)

    # ---- a turn -----------------------------------------------------------------------------------

    def next_turn(self, ti: int) -> None:
        cfg = self.s.config
        self._ti = ti
        target, via = self.planner.next_goal()
        # an edge to exercise: call `via` first (unless this trajectory already did), then the
        # target, with arguments preferably taken from via's result
        free_left = self.rng.randint(0, cfg.free_continuation_max)
        turn = TurnWalk(target, via, via is None or via in self.last_call, free_left,
                        self.planner.open_from(target) if free_left else set(), cfg.repairs_per_turn)
        # the turn is walked on the live world, then cut down to a task (sampling/task.py) and
        # re-executed from here: keep what the cut needs to restart from the turn's start
        before = (self.world.copy(), len(self.flat), len(self.results), set(self.satisfied), dict(self.last_call))
        self._walk_turn(turn)
        self._keep_turn(ti, turn, before)

    def _walk_turn(self, turn: TurnWalk) -> None:
        cfg = self.s.config
        for _ in range(cfg.max_calls_per_turn * 3):
            if len(turn.calls) >= cfg.max_calls_per_turn or (turn.reached and turn.free_left <= 0):
                break
            while turn.pending and turn.pending[-1] in turn.banned:
                turn.pending.pop()
            goal = turn.target if turn.via_done or turn.via in turn.banned or turn.reached else turn.via
            if turn.pending and not turn.reached:
                tool = turn.pending.pop()
            else:
                tool = self.s._next_tool(goal, turn.reached, self.satisfied, turn.banned,
                                         {c.tool for c in turn.calls}, self.rng, turn.onward)
            if tool is None:
                break
            if self.state is None:
                self._read_state()
            call, res = self._attempt(tool, goal, turn)
            if call is None:
                self._repair_or_ban(tool, res, turn)
                continue
            self._record(call, turn)

    def _read_state(self) -> None:
        """Only the class of the last call can have changed: re-read just that part."""
        try:
            for cls in sorted(self.dirty):
                snap = self.world.envs[cls].snapshot()
                if self.flat and cls in self.snaps:
                    self.s._learn_changes(self.flat[-1], self.snaps[cls], snap)
                self.snaps[cls] = snap
                self.row_parts[cls] = harvest_rows({cls: snap})
                part = harvest({cls: snap})
                if self.initial is not None:  # tag what earlier calls created: acted on next
                    part = [v if (v.key, v.value) in self.initial
                            else Value(v.key, v.value, None, NEW_STATE, v.jtype) for v in part]
                self.parts[cls] = part
        except CyclicStateError as exc:
            # e.g. a directory copied into itself; from now on calls of that tool are made on a
            # copy first and undone when they do it again
            self.s._risky.add(self.flat[-1].tool)
            self.rejections.append(Rejection(item_id=self.tid, reason="cyclic_state", detail=str(exc)))
            raise Abandoned from exc
        self.dirty.clear()
        classes = self.s.toolset.classes
        self.state = [v for cls in classes for v in self.parts[cls]]
        self.rows = [r for cls in classes for r in self.row_parts[cls]]
        if self.initial is None:
            self.initial = {(v.key, v.value) for v in self.state}

    def _attempt(self, tool: str, goal: str, turn: TurnWalk) -> tuple[ToolCall | None, ToolResult]:
        """Call `tool` with proposed arguments until one call works (the target gets more tries:
        reaching it is the point of the turn); every failed call is a recorded rejection."""
        s, cfg, rng = self.s, self.s.config, self.rng
        enabling = s.graph.enabling_for(tool, goal) if not turn.reached and tool != goal else None
        if enabling is not None and not _fits_here(enabling, s.tools[tool], self.results, self.state):
            enabling = None  # probed on another scenario: its credentials or ids do not exist here
        same_error, last_error = 0, None  # consecutive attempts failing with the very same message
        res = ToolResult(None, "not called")
        for attempt in range(cfg.target_attempts if tool == turn.target else cfg.arg_attempts):
            if attempt == 0 and enabling is not None and rng.random() < cfg.enabling_args_rate:
                # the arguments that made the target work in probing (no source to credit)
                proposal = Proposal(tool, dict(enabling))
            else:
                paths, tables = self._books(tool)
                proposal = s.provider.propose(
                    s.tools[tool], self.results, self.state, rng,
                    prefer=turn.target if turn.reached else turn.via if tool == turn.target else None, rows=self.rows,
                    paths=paths, tables=tables, made_by={i: c.tool for i, c in enumerate(self.flat)})
            args, sources = proposal.args, proposal.sources
            backup = self.world.copy() if tool in s._risky else None
            res = self.world.call(tool, args)
            s.provider.learn(proposal, res.ok, error=res.error, value=res.value)
            if res.ok and backup is not None:
                try:
                    self.world.snapshot()
                except CyclicStateError as exc:  # undo it: this call is a failed attempt
                    self.world, res = backup, ToolResult(None, f"unusable state: {exc}")
            if res.ok:
                return ToolCall(tool=tool, arguments=args, result=res.value, sources=sources), res
            self.rejections.append(Rejection(
                item_id=f"{self.tid}/turn{self._ti}/{tool}", reason="tool_error",
                detail=json.dumps({"tool": tool, "arguments": args, "error": res.error}, default=str)[:2000],
            ))
            same_error = same_error + 1 if res.error == last_error else 1
            last_error = res.error
            if same_error >= cfg.same_error_stop:
                break  # new arguments do not change the answer ("Start the engine"): repair instead
        return None, res

    def _books(self, tool: str) -> tuple[path_book.PathBook | None, table_book.TableBook | None]:
        """What the world shows of the tool's server's allowed directories or database (None for
        every other class: their arguments are matched as ever)."""
        cls = self.s.tools[tool].class_name
        if cls in self.s.roots:
            setup = [ToolCall(tool=c["tool"], arguments=c.get("arguments", {}))
                     for c in (self.scenario.get(cls) or {}).get("calls", []) if isinstance(c, dict) and "tool" in c]
            tree = self.snaps.get(cls, {}).get("state")
            return path_book.book_of(self.s.roots[cls], tree if isinstance(tree, dict) else None,
                                     self.flat, setup), None
        if cls in self.s.databases:
            dump = self.snaps.get(cls, {}).get("state")
            return None, table_book.book_of(dump if isinstance(dump, dict) else None, self.flat)
        return None, None

    def _repair_or_ban(self, tool: str, res: ToolResult, turn: TurnWalk) -> None:
        target = turn.target
        redo = self.s.graph.state_prereqs.get(target, set()) & (self.satisfied - turn.banned) \
            if tool == target else set()
        # a fixer that is not legal yet fails and is repaired in turn (engine -> doors)
        fixers = self.s._named_by(res.error, exclude={tool} | turn.banned | turn.repaired_with)
        if turn.repairs_left > 0 and (redo or fixers) and (tool in (target, turn.via) or tool in turn.pending_for):
            # The target's prerequisites "succeeded" without effect (a login with an unknown id
            # returns login_status false), or the error names what is missing ("Booking not found":
            # book_flight returns a booking_id; "Start the engine"): repair, then retry; a repair
            # that fails may be repaired in turn.
            turn.repairs_left -= 1
            self.satisfied -= redo
            turn.pending.append(tool)
            if fixers:  # a repair that did not help is not tried again in this turn
                turn.pending.append(self.rng.choices(list(fixers), weights=list(fixers.values()))[0])
                turn.repaired_with.add(turn.pending[-1])
            turn.pending_for.update(turn.pending)
            return
        turn.banned.add(tool)
        if tool in self.s.graph.state_prereqs.get(target, ()):
            self.satisfied.add(tool)  # e.g. login fails as "already logged in"

    def _record(self, call: ToolCall, turn: TurnWalk) -> None:
        tool = call.tool
        call.after = sorted(self.last_call[p] for p in self.s.graph.state_prereqs.get(tool, ()) if p in self.last_call)
        self.last_call[tool] = len(self.flat)
        self.results.extend(harvest(call.result, source=len(self.flat), producer=tool))
        self.flat.append(call)
        turn.calls.append(call)
        self.satisfied.add(tool)
        turn.via_done = turn.via_done or tool == turn.via
        self.dirty.add(self.s.tools[tool].class_name)
        self.state = None
        if turn.reached:
            turn.free_left -= 1
        elif tool == turn.target:
            turn.reached = True

    def _keep_turn(self, ti: int, turn: TurnWalk, before: tuple) -> None:
        world_before, n_flat, n_results, satisfied_before, last_call_before = before
        target, turn_calls = turn.target, turn.calls
        if not turn_calls:
            self.rejections.append(Rejection(item_id=f"{self.tid}/turn{ti}", reason="target_unreachable",
                                             detail=json.dumps({"target": target})))
            return
        if not turn.reached:
            # the calls happened on the live state, so the turn stays, aimed at its last call
            self.rejections.append(Rejection(
                item_id=f"{self.tid}/turn{ti}", reason="target_missed",
                detail=json.dumps({"target": target, "kept_as": turn_calls[-1].tool}),
            ))
            target = turn_calls[-1].tool
        target_pos = max(i for i, c in enumerate(turn_calls) if c.tool == target)
        del self.flat[n_flat:]
        # a new list, not a truncated one: the argument provider caches groups per result list
        # and assumes it only grows
        self.results = self.results[:n_results]
        self.last_call = dict(last_call_before)
        self.state, self.dirty = None, set(self.s.toolset.classes)  # the world is replaced below: read it again
        self.snaps.clear()
        try:
            shaped = shape_turn(world_before, turn_calls, target_pos, n_flat, self.s.tools)
            problems = turn_problems(shaped.calls, len(shaped.calls) - 1, n_flat, failure_of)
            if problems:
                raise TurnNotKept("; ".join(problems))
        except (TurnNotKept, CyclicStateError) as exc:
            # the walk cannot be cut to a clean task: the turn never happened
            self.world, self.satisfied = world_before, satisfied_before
            why = "cyclic_state" if isinstance(exc, CyclicStateError) else str(exc).split(":")[0]
            first = [t for t in getattr(exc, "undone_by", []) if t != target]
            if first and target not in self.planner.requeued:
                self.planner.requeued.add(target)
                self.planner.queued = [*dict.fromkeys(first), target]
            self.rejections.append(Rejection(item_id=f"{self.tid}/turn{ti}", reason=why, detail=str(exc)[:2000]))
            return
        for c, why in shaped.dropped:
            self.rejections.append(Rejection(item_id=f"{self.tid}/turn{ti}/{c.tool}", reason=why,
                                             detail=json.dumps({"tool": c.tool, "arguments": c.arguments,
                                                                "target": target}, default=str)[:2000]))
        self.world, turn_calls = shaped.world, shaped.calls
        self.satisfied = satisfied_before | {c.tool for c in turn_calls} | (
            self.satisfied - {c.tool for c, _ in shaped.dropped})
        for c in turn_calls:
            self.last_call[c.tool] = len(self.flat)
            self.results.extend(harvest(c.result, source=len(self.flat), producer=c.tool))
            self.flat.append(c)
        if target not in {c.tool for c in turn_calls}:
            return
        self.planner.pending.add(target)  # covered once the trajectory is accepted
        self.planner.previous = target
        self.reached_targets.append(target)
        self.turns.append(Turn(target_tool=target, calls=turn_calls))

    # ---- the trajectory ---------------------------------------------------------------------------

    def finish(self, scenario: dict, seed: int) -> tuple[Trajectory | None, list[str]]:
        """The sealed trajectory, or None with the rejection recorded."""
        if not self.turns:
            self.rejections.append(Rejection(item_id=self.tid, reason="empty_trajectory"))
            return None, []
        problems = [f"turn {k}: {p}" for k, t in enumerate(self.turns) for p in turn_problems(
            t.calls, max(i for i, c in enumerate(t.calls) if c.tool == t.target_tool),
            sum(len(u.calls) for u in self.turns[:k]), failure_of)]
        if problems:  # the cut should make this impossible: a gate, not a filter
            self.rejections.append(Rejection(item_id=self.tid, reason=problems[0].split(": ")[1],
                                             detail="; ".join(problems)[:2000]))
            return None, []
        traj = Trajectory(trajectory_id=self.tid, toolset=self.s.toolset.name, seed=seed,
                          scenario=scenario, turns=self.turns)
        traj, problems, end_world = seal_trajectory(traj, self.s.toolset, self.s.tool_list)
        try:
            end_world.snapshot()
        except CyclicStateError as exc:
            problems.append(str(exc))
        if problems:  # a tool with hidden state or an error that still mutated: never ship it
            self.rejections.append(Rejection(item_id=self.tid, reason="replay_mismatch",
                                             detail="; ".join(problems)[:2000]))
            return None, []
        return traj, self.reached_targets


def _fits_here(args: dict, spec, results: list[Value], state: list[Value]) -> bool:
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
