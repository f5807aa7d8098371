"""Rule-based reward for the RL export (export/rl.py): execute a model's calls, compare BFCL-style.

A row of `rl.parquet` holds the state at the start of one user turn as `initial_state` plus the calls
of the earlier turns (`prior_calls`), and the turn's ground truth (its calls with their results and
the expected end state). `score_calls(row, calls)` rebuilds that start state, runs the model's calls
on the toolset's allow-listed tool methods and returns a `Verdict`:

* `valid`: BFCL's multi-turn checks both pass: the end state equals the expected one (state check)
  and every ground-truth result is among the results produced so far, prior turns included (an
  unordered multiset subset: the response check);
* `score`: 1.0 when valid and every proposed call was well-formed; otherwise a partial score below
  1: the mean of the state score (share of the state's changed leaves that match: a wrong argument
  writes a wrong leaf) and the response score (share of expected results produced), times the share
  of proposed calls that could be run at all. No calls when calls were expected score 0.

Model output is data: calls are parsed (JSON, or `ast` for Python-like call lists), never `eval`ed;
a name outside the toolset's tools (private and dunder names included) is refused with a reason and
not run. `TurnEnv` exposes the same environment step by step for trainers that let the model see
tool results within a turn; `compute_score` is the signature verl's custom reward function expects.

No `from __future__ import annotations` here: verl loads a reward given by file path without
registering the module in `sys.modules` (verl/utils/import_utils.py `load_module`), and a dataclass
with postponed annotations looks its module up there and fails to load.
"""

import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from funreason_pipeline.environments.base import CyclicStateError, to_json_value
from funreason_pipeline.environments.toolsets import ToolsetConfig, World, load_toolsets, toolset_tools
from funreason_pipeline.export.formats import FormatError, parse_pythonic_calls, split_think
from funreason_pipeline.verify.replay import canonical

MAX_CALLS = 64  # a completion proposing more calls than this is refused outright (bounded work)


class RowError(ValueError):
    """The row itself is unusable: missing fields, an unknown toolset, or a state that does not rebuild."""


@dataclass(frozen=True)
class Verdict:
    valid: bool  # BFCL state check and response check both pass
    score: float  # 1.0 iff valid and every call well-formed; else in [0, 1)
    state_ok: bool
    response_ok: bool
    state_score: float
    response_score: float
    problems: tuple[str, ...] = ()
    results: tuple[Any, ...] = field(default=(), repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "problems": list(self.problems), "results": list(self.results)}


def _field(mapping: Mapping[str, Any], key: str) -> Any:
    """A row field that may be JSON text (as stored in Parquet) or already decoded."""
    if key not in mapping:
        raise RowError(f"row has no {key!r}")
    value = mapping[key]
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise RowError(f"row field {key!r} is not valid JSON: {exc}") from exc
    return value


def _toolset(name: str, classes: Sequence[str]) -> ToolsetConfig:
    for ts in load_toolsets():
        if ts.name == name:
            if list(ts.classes) != list(classes):
                raise RowError(f"toolset {name!r} has classes {ts.classes}, the row says {list(classes)}")
            return ts
    try:  # a toolset this checkout's config does not name: BFCL classes need no options
        return ToolsetConfig(name=name, classes=list(classes))
    except ValueError as exc:
        raise RowError(f"row's toolset {name!r} cannot be built: {exc}") from exc


def _as_call(raw: Any) -> tuple[str, dict[str, Any]]:
    """(name, arguments) of one proposed call: {"name", "arguments"} or OpenAI's {"function": {...}};
    arguments a JSON object or JSON text. Raises ValueError or TypeError with the reason otherwise."""
    if isinstance(raw, Mapping) and isinstance(raw.get("function"), Mapping):
        raw = raw["function"]
    if not isinstance(raw, Mapping) or not isinstance(raw.get("name"), str):
        raise TypeError(f"not a call: {str(raw)[:120]!r}")
    name, args = raw["name"], raw.get("arguments", {})
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            raise ValueError(f"arguments of {name[:60]!r} are not valid JSON: {exc}") from exc
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise TypeError(f"arguments of {name[:60]!r} must be a JSON object, got {type(args).__name__}")
    return name, args


def start_world(info: Mapping[str, Any]) -> tuple[ToolsetConfig, World, list[Any]]:
    """The world at the start of a row's turn from its `extra_info` (or verl's `create_kwargs`, the
    same fields): `toolset`, `classes`, `initial_state`, `prior_calls` (replayed, each must give its
    recorded result). Returns the toolset, the world and the prior calls' results."""
    if not isinstance(info, Mapping):
        raise RowError(f"extra_info must be a mapping, got {type(info).__name__}")
    toolset = _toolset(str(info.get("toolset")), _field(info, "classes"))
    try:
        world = World.from_scenario(toolset, _field(info, "initial_state"), toolset_tools(toolset))
    except (TypeError, ValueError, KeyError) as exc:
        raise RowError(f"initial_state does not build the toolset's classes: {exc}") from exc
    prior_results: list[Any] = []
    for turn in _field(info, "prior_calls"):
        for c in turn:
            try:
                name, args = _as_call(c)
            except (TypeError, ValueError) as exc:
                raise RowError(f"a prior call is malformed: {exc}") from exc
            res = world.call(name, args)
            got = res.value if res.ok else {"error": res.error}
            if canonical(got) != canonical(c.get("result")):
                raise RowError(f"prior call {name} does not reproduce its recorded result")
            prior_results.append(got)
    return toolset, world, prior_results


class TurnEnv:
    """The environment of one RL row at the start of its turn; the model's calls run here."""

    def __init__(self, row: Mapping[str, Any], start: tuple[ToolsetConfig, World, list[Any], Any] | None = None):
        """`start`: what `start_world(row's extra_info)` gives and that world's snapshot, when the
        caller has them (score_each)."""
        info = _field(row, "extra_info") if "extra_info" in row else row
        reward_model = _field(row, "reward_model") if "reward_model" in row else row
        truth = _field(reward_model, "ground_truth")
        if not isinstance(truth, Mapping) or not isinstance(truth.get("calls"), list) or "end_state" not in truth:
            raise RowError("ground_truth must hold `calls` (a list) and `end_state`")
        if start is None:
            self.toolset, self.world, self.prior_results = start_world(info)
            self.start_state = self._snapshot()
        else:
            self.toolset, self.world, self.prior_results, self.start_state = start
        self.end_state: Any = None  # the snapshot verdict() took
        self.expected_calls = list(truth["calls"])
        self.expected_state = truth["end_state"]
        self.results: list[Any] = []
        self.proposed = 0
        self.refused: list[str] = []

    def _snapshot(self) -> Any:
        try:
            return to_json_value(self.world.snapshot())
        except CyclicStateError:
            return None  # a state that contains itself never matches

    def step(self, calls: Sequence[Any]) -> list[Any]:
        """Run proposed calls in order; returns one result per call (`{"error": ...}` for a failing
        or refused call). Only names of the toolset's tools run; anything else is refused."""
        out = []
        for raw in calls:
            self.proposed += 1
            try:
                if self.proposed > MAX_CALLS:
                    raise ValueError(f"more than {MAX_CALLS} calls in one turn")
                name, args = _as_call(raw)
                if name not in self.world.tools:  # the allow-list: private and dunder names are never in it
                    raise ValueError(f"unknown tool {name[:80]!r} (not a tool of {self.toolset.name!r})")
            except (ValueError, TypeError) as exc:
                self.refused.append(str(exc))
                out.append({"error": f"refused: {exc}"})
                continue
            res = self.world.call(name, args)
            got = res.value if res.ok else {"error": res.error}
            self.results.append(got)
            out.append(got)
        return out

    def verdict(self) -> Verdict:
        problems = [f"refused call: {r}" for r in self.refused]
        end = self.end_state = self._snapshot()
        state_ok = end is not None and end == self.expected_state
        state_score = 1.0 if state_ok else _changed_leaf_share(self.start_state, self.expected_state, end)
        have = Counter(canonical(r) for r in [*self.prior_results, *self.results])
        need = Counter(canonical(c.get("result")) for c in self.expected_calls)
        missing = sum((need - have).values())
        response_ok = missing == 0
        response_score = 1.0 - missing / sum(need.values()) if need else 1.0
        if not state_ok:
            problems.append("state_mismatch: the environment ended in a different state than expected")
        if not response_ok:
            problems.append(f"response_mismatch: {missing} expected result(s) were never produced")
        valid = state_ok and response_ok
        if self.expected_calls and not self.results:
            problems.append("empty_turn: no call was run")
            score = 0.0
        else:
            well_formed = (self.proposed - len(self.refused)) / self.proposed if self.proposed else 1.0
            score = (state_score + response_score) / 2 * well_formed
        return Verdict(valid=valid, score=round(score, 6), state_ok=state_ok, response_ok=response_ok,
                       state_score=round(state_score, 6), response_score=round(response_score, 6),
                       problems=tuple(problems), results=tuple(self.results))


_MISSING = object()


def _leaves(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, canonical(value)


def _changed_leaf_share(start: Any, expected: Any, end: Any) -> float:
    """Of the state leaves the ground truth or the model changed, the share that ended as expected."""
    if end is None:
        return 0.0
    s, e, m = (dict(_leaves(x)) for x in (start, expected, end))
    changed = [p for p in e.keys() | m.keys() | s.keys()
               if e.get(p, _MISSING) != s.get(p, _MISSING) or m.get(p, _MISSING) != s.get(p, _MISSING)]
    if not changed:
        return 1.0
    return sum(1 for p in changed if m.get(p, _MISSING) == e.get(p, _MISSING)) / len(changed)


def score_calls(row: Mapping[str, Any], calls: Sequence[Any]) -> Verdict:
    """Score a model's calls for one RL row (all the calls it made in the turn, in order)."""
    env = TurnEnv(row)
    env.step(calls)
    return env.verdict()


def _start_key(info: Any) -> tuple[list[Any], list[list[Any]]] | None:
    """What fixes a row's start world, strictly (JSON text: key order, 1 vs 1.0 vs true differ): the
    toolset, classes, initial_state, and per prior call its name, arguments and recorded result
    (canonical, as start_world compares it). Returns (head, prior turns) to extend, or None when the
    row is not well-formed enough to tell (score_calls then says why)."""
    try:
        head = [str(info.get("toolset")), json.dumps(_field(info, "classes")), json.dumps(_field(info, "initial_state"))]
        prior = []
        for turn in _field(info, "prior_calls"):
            calls = []
            for c in turn:
                name, args = _as_call(c)
                calls.append([name, json.dumps(args), canonical(c.get("result"))])
            prior.append(calls)
    except (RowError, TypeError, ValueError, AttributeError):
        return None
    return head, prior


def score_each(items: Iterable[tuple[Mapping[str, Any], Sequence[Any]]]) -> Iterator[Verdict]:
    """`score_calls(row, calls)` of each (row, calls), in order, the same verdicts, for less work on
    the rows of one dialogue: a row whose start (toolset, classes, initial_state, prior calls with
    their results) is exactly where an earlier item ended (its start plus its calls, every one run
    and giving the result this row records for it, as replaying them in start_world must) carries
    on in that item's world instead of rebuilding it from the initial state and replaying all the
    earlier turns. Environments are deterministic (replaying is what every check relies on), so
    that world is the one start_world would build; anything that does not match starts afresh."""
    ends: dict[str, tuple[ToolsetConfig, World, list[Any], Any]] = {}
    for row, calls in items:
        info = _field(row, "extra_info") if isinstance(row, Mapping) and "extra_info" in row else row
        key = _start_key(info) if isinstance(info, Mapping) else None
        start = ends.pop(json.dumps(key), None) if key is not None else None
        env = TurnEnv(row, start)
        ran = []  # (name, arguments as given) of each call, before it runs (a call may fill in defaults)
        for raw in calls:
            try:
                name, args = _as_call(raw)
                ran.append([name, json.dumps(args)])
            except (TypeError, ValueError):
                ran = None
                break
        env.step(calls)
        verdict = env.verdict()  # snapshots the end: the next turn's start, as nothing runs in between
        if key is not None and ran is not None and not env.refused and len(env.results) == len(ran):
            head, prior = key
            done = [[n, a, canonical(r)] for (n, a), r in zip(ran, env.results)]
            ends[json.dumps((head, [*prior, done]))] = (env.toolset, env.world,
                                                        [*env.prior_results, *env.results], env.end_state)
        yield verdict


_TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def parse_completion(text: str) -> list[dict[str, Any]]:
    """The calls in a model's text: `<tool_call>{json}</tool_call>` blocks (Hermes/Qwen style), else a
    Python-like call list per line (`[f(a=1), g()]`, BFCL prompting style), else a JSON list of calls.
    A `<think>` block is skipped. Parsing only: nothing is evaluated. Raises ValueError if none parse
    (TypeError if `text` is not a string)."""
    if not isinstance(text, str):
        raise TypeError("completion must be a string")
    try:
        _, body = split_think(text)
    except FormatError as exc:
        raise ValueError(str(exc)) from exc
    blocks = _TOOL_CALL_BLOCK.findall(body)
    if blocks:
        calls = []
        for b in blocks:
            try:
                calls.append(json.loads(b))
            except json.JSONDecodeError as exc:
                raise ValueError(f"a <tool_call> block is not JSON: {exc}") from exc
        return calls
    lines = [ln.strip() for ln in body.strip().splitlines() if ln.strip().startswith("[")]
    try:
        return [c for ln in lines for c in parse_pythonic_calls(ln)] if lines else parse_pythonic_calls(body)
    except FormatError as python_error:
        try:
            value = json.loads(body)
        except json.JSONDecodeError:
            raise ValueError(f"no parsable calls: {python_error}") from python_error
        return value if isinstance(value, list) else [value]


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Any = None,
                  **kwargs: Any) -> dict:
    """verl's custom reward function (`custom_reward_function.path` = this file or
    `pkg://funreason_pipeline.reward`, `name` = compute_score): parse the completion's calls (in a
    multi-turn tool rollout the decoded response holds every step's `<tool_call>` blocks), run them
    on the row's start state, score them. Extra keyword arguments verl passes (`reward_kwargs`,
    `reward_router_address`, ...) are accepted and unused. Never raises: an unusable row or
    completion scores 0 with the reason."""
    if not isinstance(extra_info, Mapping) or not extra_info:
        return {"score": 0.0, "valid": 0.0, "reason": "no extra_info: the row's start state is unknown"}
    row = {"reward_model": {"ground_truth": ground_truth}, "extra_info": extra_info}
    try:
        calls = parse_completion(solution_str)
    except (ValueError, TypeError) as exc:
        return {"score": 0.0, "valid": 0.0, "reason": f"unparsable completion: {exc}"[:300]}
    try:
        verdict = score_calls(row, calls)
    except (RowError, TypeError, KeyError) as exc:  # RowError is a ValueError
        return {"score": 0.0, "valid": 0.0, "reason": f"unusable row: {exc}"[:300]}
    return {"score": verdict.score, "valid": float(verdict.valid), "reason": "; ".join(verdict.problems)[:300]}
