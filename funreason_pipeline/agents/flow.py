"""Phases II and III as one concurrent flow: every trajectory of every partition is a task that goes
turn by turn (advanced tool and query, then the reasoner with the critic, then the closing reply, then
the next turn), all on one event loop and one open LLM session. Up to C requests are in flight
whenever any trajectory has work, with no barrier between partitions, phases or turn levels.

A turn's Phase II runs only once the turn before it passed Phase III: its dialogue ends at a failed
turn, so a query for a later turn would be paid for and never used. Such turns are rejected in the
queries stage (`after_failed_turn`), so every turn is accounted for: a trace row or a rejection.

With `session=None` (or offline roles) the offline agents answer, deterministically. Rows come back
in the order the batch code made them (turn level, then trajectory), whatever order the tasks finish in.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.agents import offline
from funreason_pipeline.agents.advanced_tool import AdvancedTool, intermediate_values, structure, turn_offset
from funreason_pipeline.agents.answers import (
    CritiqueAnswer,
    QueryAnswer,
    ReasoningAnswer,
    ReplyAnswer,
    ToolingAnswer,
)
from funreason_pipeline.agents.budget import (
    PromptTooLong,
    check_messages,
    fit_tool_list,
    message_chars,
    payload,
)
from funreason_pipeline.agents.chat import group_steps, turn_messages
from funreason_pipeline.agents.prompts import PHASE3_PROMPTS, prompt, prompt_version
from funreason_pipeline.agents.query_check import check_query
from funreason_pipeline.environments.toolsets import ToolsetConfig, World
from funreason_pipeline.models import Rejection, ToolCall, ToolSpec, Trajectory
from funreason_pipeline.seeds import stable_seed
from funreason_pipeline.verify.execution import (
    ProposedCall,
    call_problem,
    check_turn,
    expected_world,
    parse_tool_calls,
    run_call,
    verify_turn,
)

FEEDBACK = "Feedback on your previous attempt: "
STEP_RESULTS = "Results of your calls, in order: "  # JSON mode: a step's results come back as a user message
MAX_STEPS = 8
log = logging.getLogger(__name__)


@dataclass
class QueryRow:
    trajectory_id: str
    turn_index: int
    advanced_tool: dict[str, Any]
    query: str
    prompt_version: str
    model: str
    role_models: dict[str, str] = field(default_factory=dict)  # tooling / querying -> model ("offline")


@dataclass
class TraceRow:
    trajectory_id: str
    turn_index: int
    attempts: int
    passed: bool
    reasoning: str
    calls: list[dict[str, Any]]  # {name, arguments, result, step}
    critiques: list[str]
    reply: str
    prompt_version: str
    model: str
    role_models: dict[str, str] = field(default_factory=dict)  # reasoning / critic -> model(s)
    step_reasoning: list[str] = field(default_factory=list)  # one text per step of `calls`


@dataclass
class StageResult:
    rows: list = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    stats: Any = None  # the LLM session's figures (whole run), None offline
    requests: Counter = field(default_factory=Counter)  # this partition's requests by role / cache hits


@dataclass
class Partition:
    """One day x toolset partition's input."""

    key: str
    toolset: ToolsetConfig
    tools: list[ToolSpec]
    trajectories: list[Trajectory]


@dataclass
class Outcome:
    queries: StageResult = field(default_factory=StageResult)
    traces: StageResult = field(default_factory=StageResult)


@dataclass
class FlowProgress:
    """Turns done / total and rejections so far; the caller prints it with the session's in-flight."""

    total_turns: int = 0
    done_turns: int = 0
    rejected_turns: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self, in_flight: int | None = None, sent: int | None = None) -> str:
        elapsed = time.monotonic() - self.started
        rate = self.done_turns / elapsed if elapsed > 0 else 0.0
        eta = (self.total_turns - self.done_turns) / rate if rate > 0 else 0.0
        parts = [f"turns {self.done_turns}/{self.total_turns}", f"rejected {self.rejected_turns}"]
        if in_flight is not None:
            parts.insert(0, f"in flight {in_flight}")
        if sent is not None:
            parts.append(f"requests {sent}")
        return "llm stages: " + ", ".join(parts) + f", {elapsed:.0f}s elapsed, ETA {eta:.0f}s"


class _Ctx:
    """What every turn of one partition needs: specs, tool list, versions, the session (or None)."""

    def __init__(self, part: Partition, session, online2: bool, online3: bool, k_max: int,
                 out: Outcome, progress: FlowProgress, max_steps: int = MAX_STEPS) -> None:
        self.part, self.session, self.online2, self.online3, self.k_max = part, session, online2, online3, k_max
        self.max_steps = max_steps
        self.out, self.progress = out, progress
        self.specs = {t.name: t for t in part.tools}
        self.functions = [t.openai_tool()["function"] for t in part.tools]
        self.v2 = prompt_version("tooling", "querying")
        self.v3 = prompt_version(*PHASE3_PROMPTS)
        self.system = prompt("system").strip()

    def budget(self, role: str) -> int:
        return self.session.settings.role(role).prompt_budget_chars()

    async def ask(self, role: str, item_id: str, messages: list[dict[str, Any]], version: str, parser,
                  counter: Counter, tools: list[dict[str, Any]] | None = None, tools_chars: int = 0):
        from funreason_pipeline.llm import LLMRequest
        from funreason_pipeline.llm.structured import acall_structured

        check_messages(messages, max(0, self.budget(role) - tools_chars), role)
        req = LLMRequest(role=role, item_id=item_id, messages=messages, tools=tools, prompt_version=version)
        res = await acall_structured(self.session, req, parser)
        counter[role] += 1 + res.repairs_sent  # up to two repairs per call
        if res.response is not None and res.response.cached:
            counter["cache_hits"] += 1
        return res


def _label(res) -> str:
    return res.response.model if res.response is not None else ""


async def _ask_phase2(ctx: _Ctx, role: str, item: str, request: dict, what: str, parser):
    """One Phase II agent call: its JSON request within the role's budget, the parsed answer, or the
    turn's rejection (`prompt_too_long`, `<role>_failed`)."""
    try:
        user = payload(request, ctx.budget(role), what)
        res = await ctx.ask(role, item, [{"role": "system", "content": prompt(role)}, {"role": "user", "content": user}],
                            prompt_version(role), parser, ctx.out.queries.requests)
    except PromptTooLong as exc:
        return Rejection(item_id=item, reason="prompt_too_long", detail=f"{role}: {exc}")
    if not res.ok:
        return Rejection(item_id=item, reason=f"{role}_failed",
                         detail=f"{res.reason}: {res.error} | raw: {(res.raw_text or '')[:800]}")
    return res


# --- Phase II: one turn ----------------------------------------------------------------------------
async def _query_turn(ctx: _Ctx, t: Trajectory, level: int, earlier: list[str]) -> QueryRow | Rejection:
    item = f"{t.trajectory_id}/{level}"
    adv = structure(t, level, ctx.specs)
    inter = intermediate_values(t.turns[level].calls, turn_offset(t, level))
    if not ctx.online2:
        adv.name, adv.description = offline.describe(adv, ctx.specs)
        query = offline.write_query(adv, ctx.specs, stable_seed("query", t.trajectory_id, level))
        models = {"tooling": offline.OFFLINE, "querying": offline.OFFLINE}
    else:
        chain = [{"tool": c.tool, "arguments": c.arguments, "result": c.result} for c in t.turns[level].calls]
        a = await _ask_phase2(ctx, "tooling", item, {"calls": chain, "user_inputs": [i.model_dump() for i in adv.inputs]},
                              "the turn's calls", ToolingAnswer)
        if isinstance(a, Rejection):
            return a
        adv.name, adv.description = a.value.name[:48], a.value.description
        b = await _ask_phase2(ctx, "querying", item, {
            "advanced_tool": {"name": adv.name, "description": adv.description},
            "user_supplied_values": {i.name: i.value for i in adv.inputs},
            "intermediate_values_never_mention": inter, "earlier_user_messages": earlier},
            "the query request", QueryAnswer)
        if isinstance(b, Rejection):
            return b
        query = b.value.query
        models = {"tooling": _label(a), "querying": _label(b)}
    problems = check_query(query, adv, inter)
    if problems:
        return Rejection(item_id=item, reason="invalid_query",
                         detail=json.dumps({"query": query, "problems": problems})[:2000])
    model = models["querying"] or models["tooling"]
    return QueryRow(t.trajectory_id, level, adv.schema(), query, ctx.v2, model, models)


# --- Phase III: one turn ---------------------------------------------------------------------------
def _adv(q: dict[str, Any]) -> AdvancedTool:
    a = q["advanced_tool"]
    return AdvancedTool.model_validate({"name": a["name"], "description": a["description"], "inputs": [],
                                        "steps": a.get("steps", []), "output": a.get("output")})


def _trace(t, level, passed, attempts, reasoning, proposed, results, critiques, reply, version, models,
           steps: list[int] | None = None):
    """`reasoning`: one text per step (or one text); `steps`: each proposed call's step."""
    steps = steps or [0] * len(proposed)
    calls = [{"name": p.name, "arguments": p.arguments, "result": r, "step": s}
             for p, r, s in zip(proposed, results, steps)]
    texts = reasoning if isinstance(reasoning, list) else [reasoning] if reasoning else []
    model = models.get("reasoning", "")
    return TraceRow(t.trajectory_id, level, attempts, passed, "\n\n".join(texts), calls, critiques, reply, version,
                    model, models, texts)


async def _trace_turn(ctx: _Ctx, t: Trajectory, level: int, q: dict[str, Any],
                      history: list[dict[str, Any]], start: World) -> tuple[TraceRow, Rejection | None, World]:
    """The turn's trace row, its rejection when it did not pass, and the ground truth's world after
    the turn (the next turn's start; `start` is the world at this turn's start, used up). Online, the
    reasoner works step by step on a copy of `start` (`_attempt`), up to K_max attempts with the critic."""
    item = f"{t.trajectory_id}/{level}"
    if not ctx.online3:
        calls = t.turns[level].calls
        adv = _adv(q)
        reasoning = offline.write_reasoning(adv, calls, turn_offset(t, level))
        proposed = [ProposedCall(c.tool, c.arguments) for c in calls]
        check = verify_turn(start, t, level, proposed, consume=True)
        reply = offline.write_reply(adv, calls)
        row = _trace(t, level, check.passed, 1, reasoning, proposed, check.results, [], reply, ctx.v3,
                     {"reasoning": offline.OFFLINE}, [c.step for c in calls])
        return row, None if check.passed else _rejection(item, "verification_failed", 1, check.problems), \
            check.expected

    n = ctx.out.traces.requests
    hint = f"Hint: the request amounts to `{q['advanced_tool']['name']}`: {q['advanced_tool']['description']}"
    classes = {ctx.specs[c.tool].class_name for c in t.turns[level].calls if c.tool in ctx.specs}
    keep = {s.name for s in ctx.part.tools if s.class_name in classes}
    json_mode = ctx.session.settings.role("reasoning").tool_calling == "json"
    critic_models: set[str] = set()
    reasoning_models: set[str] = set()
    critiques: list[str] = []
    expected = expected_world(start, t, level)  # what every attempt is checked against
    try:
        instructions = prompt("reasoning") + ("\n" + prompt("reasoning_json") if json_mode else "")
        shown = as_json_protocol(history) if json_mode else history
        fixed = len(ctx.system) + len(instructions) + len(hint) + len(q["query"]) + message_chars(shown)
        tool_list, _how = fit_tool_list(ctx.functions, max(0, ctx.budget("reasoning") - fixed), keep)
        if json_mode:  # no `tools` field: the list is part of the instructions
            instructions += "\nTools:\n" + tool_list
            tools, tools_chars = None, 0
        else:  # the same fitted list, as OpenAI tools
            tools = [{"type": "function", "function": f} for f in json.loads(tool_list)]
            tools_chars = len(tool_list)
        base = [{"role": "system", "content": ctx.system}, *shown,
                {"role": "system", "content": instructions + "\n" + hint},
                {"role": "user", "content": q["query"]}]
        # per-role prompt versions: editing one prompt re-sends only the requests built from it
        version = prompt_version("reasoning", "system", *(("reasoning_json",) if json_mode else ()))
        parser = ReasoningAnswer if json_mode else _native_step
        passed, attempt, run = False, 0, _Attempt()
        for attempt in range(1, ctx.k_max + 1):
            msgs = base + [{"role": "user", "content": FEEDBACK + c} for c in critiques]
            run = await _attempt(ctx, t, level, start, expected, msgs, tools, tools_chars, version, parser,
                                 json_mode, f"{item}/a{attempt}", n)
            reasoning_models |= run.models
            passed = run.passed
            if passed or attempt == ctx.k_max:
                break
            request = {"request": q["query"],
                       "calls": [{"step": c.step, "name": c.tool, "arguments": c.arguments} for c in run.calls],
                       "results": [c.result for c in run.calls], "problems": run.problems}
            c = await ctx.ask("critic", f"{item}/c{attempt}",
                              [{"role": "system", "content": prompt("critic")},
                               {"role": "user", "content": payload(request, ctx.budget("critic"), "the critic request")}],
                              prompt_version("critic"), CritiqueAnswer, n)
            if c.ok:
                critiques.append(c.value.critique)
                critic_models.add(_label(c))
            else:  # the critic failed: the offline critique keeps the loop going, and the row says so
                critiques.append(offline.critique(run.problems))
                critic_models.add(offline.OFFLINE)
        reply = ""
        reason = "verification_failed"
        problems = run.problems
        if passed:
            # the reply speaks of the results the kept sample shows (the ground truth's are among them)
            r = await ctx.ask("reasoning", f"{item}/reply",
                              [{"role": "system", "content": prompt("reply")},
                               {"role": "user", "content": payload({"request": q["query"], "results": [
                                   c.result for c in run.calls]}, ctx.budget("reasoning"), "the reply request")}],
                              prompt_version("reply"), ReplyAnswer, n)
            reply = r.value.reply if r.ok else ""
            if not reply:  # the calls passed, but there is no closing reply to train on
                passed, reason, problems = False, "reply_failed", ["no usable closing reply from the model"]
    except PromptTooLong as exc:
        row = _trace(t, level, False, 0, "", [], [], critiques, "", ctx.v3, {"reasoning": ""})
        return row, Rejection(item_id=item, reason="prompt_too_long", detail=str(exc)), expected
    models = {"reasoning": "+".join(sorted(m for m in reasoning_models if m))}
    if critic_models:
        models["critic"] = "+".join(sorted(critic_models))
    row = _trace(t, level, passed, attempt, run.texts, [ProposedCall(c.tool, c.arguments) for c in run.calls],
                 [c.result for c in run.calls], critiques, reply, ctx.v3, models, [c.step for c in run.calls])
    return row, None if passed else _rejection(item, reason, attempt, problems), expected


# --- the step-wise reasoner ------------------------------------------------------------------------
@dataclass
class _Step:
    """One answer of the reasoner: its reasoning and the calls of the step (none: it is done)."""

    reasoning: str
    calls: list[dict[str, Any]]  # {name, arguments (a JSON object or its text)}


@dataclass
class _Attempt:
    passed: bool = False
    problems: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)  # one per step with calls
    calls: list[ToolCall] = field(default_factory=list)  # run, with result and step
    models: set[str] = field(default_factory=set)


_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def _native_step(resp) -> _Step:
    """A tool-calling answer: its tool_calls, and its thinking (a `reasoning_content` field, or
    <think> in the content; else the visible text) as the step's reasoning. Arguments stay text
    here: unparsable ones fail the attempt with a clear problem instead of a repair request."""
    content = resp.content or ""
    if "</think>" in content and "<think>" not in content:  # templates that open <think> in the prompt
        content = "<think>" + content
    parts = [resp.reasoning or "", *_THINK.findall(content), _THINK.sub("", content)]
    text = "\n\n".join(p.strip() for p in parts if p and p.strip())
    return _Step(text, [{"name": c.name, "arguments": c.arguments} for c in resp.tool_calls])


def _step_messages(level: int, steps: list[tuple[str, list[ToolCall]]], json_mode: bool) -> list[dict[str, Any]]:
    """The steps so far as the reasoner's conversation continues them: exactly as the exported
    dialogue renders them (ids by position, so the same history gives the same request), or in the
    JSON protocol."""
    msgs = turn_messages(level, "", steps, "")[1:-1]
    return as_json_protocol(msgs) if json_mode else msgs


def as_json_protocol(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-calling messages for an endpoint without tool calling: an assistant's calls become its JSON
    answer ({"reasoning", "calls"}), the tool messages after it one user message with the results."""
    out: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None
    for m in messages:
        if m["role"] == "tool":
            if results is None:
                results = []
                out.append({"role": "user", "content": results})
            results.append({"name": m.get("name"), "result": json.loads(m["content"])})
            continue
        results = None
        if m["role"] == "assistant" and m.get("tool_calls"):
            content = m.get("content") or ""
            reasoning = "\n\n".join(x.strip() for x in _THINK.findall(content)) or content.strip()
            calls = [{"name": tc["function"]["name"], "arguments": json.loads(tc["function"]["arguments"])}
                     for tc in m["tool_calls"]]
            out.append({"role": "assistant", "content": json.dumps({"reasoning": reasoning, "calls": calls},
                                                                    ensure_ascii=False)})
        else:
            out.append(m)
    return [dict(m, content=STEP_RESULTS + json.dumps(m["content"], ensure_ascii=False, sort_keys=True))
            if isinstance(m["content"], list) else m for m in out]


async def _attempt(ctx: _Ctx, t: Trajectory, level: int, start: World, expected: World, msgs: list[dict[str, Any]],
                   tools, tools_chars: int, version: str, parser, json_mode: bool, item: str,
                   counter: Counter) -> _Attempt:
    """One attempt at a turn, as a trained model runs it: each step's calls run on a copy of the
    turn's start state and their results join the conversation before the next step is asked for,
    until an answer without calls; then the turn is checked against the ground truth (`expected`:
    the world after its calls)."""
    out = _Attempt()
    world = start.copy()
    steps: list[tuple[str, list[ToolCall]]] = []
    for k in range(ctx.max_steps + 1):
        a = await ctx.ask("reasoning", f"{item}/s{k}", msgs + _step_messages(level, steps, json_mode), version,
                          parser, counter, tools, tools_chars)
        out.models.add(_label(a))
        if not a.ok:
            out.problems = [f"{a.reason}: {a.error}" if a.reason else (a.error or "no answer")]
            return out
        step = a.value if isinstance(a.value, _Step) else _Step(a.value.reasoning,
                                                                 [c.model_dump() for c in a.value.calls])
        if not step.calls:
            break
        if k == ctx.max_steps:
            out.problems = [f"step_limit: still calling tools after {ctx.max_steps} steps (the limit); "
                            + "a turn ends with an answer without calls"]
            return out
        try:
            proposed = parse_tool_calls(step.calls)
        except ValueError as exc:
            out.problems = [f"bad_arguments: {exc}"]
            return out
        bad = [p for p in (call_problem(world, c) for c in proposed) if p]
        if bad:  # the model's mistake, not a tool error: the attempt fails and the critic sees why
            out.problems = bad
            return out
        calls = [ToolCall(tool=p.name, arguments=p.arguments, result=run_call(world, p), step=k) for p in proposed]
        steps.append((step.reasoning, calls))
        out.texts.append(step.reasoning)
        out.calls += calls
    check = check_turn(start, t, level, world, [c.result for c in out.calls], expected)
    out.passed, out.problems = check.passed, check.problems
    return out


def _rejection(item: str, reason: str, attempts: int, problems: list[str]) -> Rejection:
    return Rejection(item_id=item, reason=reason, detail=json.dumps({"attempts": attempts, "problems": problems})[:2000])


def _shown_turn(level: int, query: str, row: TraceRow) -> list[dict[str, Any]]:
    """The turn as the exported dialogue shows it (agents/dialogue.py): the next turn's reasoner sees
    exactly this, not the ground truth's calls."""
    calls = [ToolCall(tool=c["name"], arguments=c["arguments"], result=c.get("result"), step=c.get("step", 0))
             for c in row.calls]
    return turn_messages(level, query, group_steps(calls, row.step_reasoning or row.reasoning), row.reply)


# --- a trajectory ----------------------------------------------------------------------------------
async def _trajectory(ctx: _Ctx, t: Trajectory) -> None:
    out, prog = ctx.out, ctx.progress
    earlier: list[str] = []
    history: list[dict[str, Any]] = []
    n = len(t.turns)
    start: World | None = None  # the world at the turn's start: the scenario, then each turn's ground truth
    for level in range(n):
        got = await _query_turn(ctx, t, level, earlier)
        if isinstance(got, Rejection):
            out.queries.rejections.append(got)
            out.queries.rejections += [Rejection(item_id=f"{t.trajectory_id}/{j}", reason="after_rejected_turn")
                                       for j in range(level + 1, n)]
            prog.done_turns += n - level
            prog.rejected_turns += n - level
            return
        out.queries.rows.append(got)
        q = {"query": got.query, "advanced_tool": got.advanced_tool}
        if start is None:
            start = World.from_scenario(ctx.part.toolset, t.scenario, ctx.part.tools)
        row, rejection, start = await _trace_turn(ctx, t, level, q, history, start)
        out.traces.rows.append(row)
        prog.done_turns += 1
        if rejection is not None:
            out.traces.rejections.append(rejection)
            prog.rejected_turns += 1
            # their queries were never written: recorded where the work stopped
            out.queries.rejections += [Rejection(item_id=f"{t.trajectory_id}/{j}", reason="after_failed_turn",
                                                 detail=f"turn {level} did not pass Phase III")
                                       for j in range(level + 1, n)]
            prog.done_turns += n - level - 1
            prog.rejected_turns += n - level - 1
            return
        earlier.append(q["query"])
        history += _shown_turn(level, q["query"], row)


async def _guarded(ctx: _Ctx, t: Trajectory) -> None:
    """One trajectory; an unexpected error ends it with a recorded rejection (its turns not yet done),
    not the whole run: one environment's bug must not cost a night's other trajectories."""
    try:
        await _trajectory(ctx, t)
    except Exception as exc:  # noqa: BLE001 - recorded with its type and message, then logged
        out = ctx.out
        done = {(r.trajectory_id, r.turn_index) for r in out.traces.rows}
        left = [k for k in range(len(t.turns)) if (t.trajectory_id, k) not in done]
        out.traces.rejections += [Rejection(item_id=f"{t.trajectory_id}/{k}", reason="flow_error",
                                            detail=f"{type(exc).__name__}: {exc}"[:2000]) for k in left]
        log.warning("trajectory %s stopped by %s: %s", t.trajectory_id, type(exc).__name__, exc)


def _order(items: list, key: Callable, index: dict[str, int]) -> list:
    """Level-major, then input order: the order the batch stages wrote (stable exports)."""
    return sorted(items, key=lambda x: (key(x)[1], index.get(key(x)[0], 0)))


def _item_key(r: Rejection) -> tuple[str, int]:
    tid, _, rest = r.item_id.rpartition("/")
    return (tid, int(rest)) if rest.isdigit() else (r.item_id, -1)


async def run_flow(parts: list[Partition], session=None, *, online2: bool = False, online3: bool = False,
                   k_max: int = 3,
                   progress: FlowProgress | None = None, report: Callable[[str], None] | None = None,
                   report_every_s: float = 1.0, max_steps: int = MAX_STEPS) -> dict[str, Outcome]:
    """All partitions' trajectories at once; {partition key: Outcome}. `session` is an open
    `LLMSession` (needed when online2/online3). `report` gets a progress line every second."""
    progress = progress or FlowProgress()
    progress.total_turns += sum(len(t.turns) for p in parts for t in p.trajectories)
    outcomes = {p.key: Outcome() for p in parts}
    tasks = []
    for p in parts:
        ctx = _Ctx(p, session, online2, online3, k_max, outcomes[p.key], progress, max_steps)
        tasks += [_guarded(ctx, t) for t in p.trajectories]

    async def reporter() -> None:
        while True:
            await asyncio.sleep(report_every_s)
            report(progress.line(getattr(session, "in_flight", None),
                                 session.counters["sent"] if session is not None else None))

    rep = asyncio.ensure_future(reporter()) if report is not None else None
    try:
        await asyncio.gather(*tasks)
    finally:
        if rep is not None:
            rep.cancel()
    if report is not None:
        report(progress.line(getattr(session, "in_flight", None),
                             session.counters["sent"] if session is not None else None))
    stats = session.snapshot() if session is not None else None
    for p in parts:
        o = outcomes[p.key]
        index = {t.trajectory_id: i for i, t in enumerate(p.trajectories)}
        for stage in (o.queries, o.traces):
            stage.rows = _order(stage.rows, lambda r: (r.trajectory_id, r.turn_index), index)
            stage.rejections = _order(stage.rejections, _item_key, index)
            stage.stats = stats
    return outcomes
