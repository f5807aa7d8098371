"""Phase III: the guided iterative chain. A reasoner solves each query with the primitive tools
(the advanced tool is only a hint); calls are verified by execution; on failure a critic explains
without revealing the answer and the reasoner tries again, up to K_max attempts. The kept sample has
the clean reasoning only: no hint, no critique."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.agents import offline
from funreason_pipeline.agents.advanced_tool import AdvancedTool, turn_offset
from funreason_pipeline.agents.chat import turn_messages
from funreason_pipeline.agents.llm_backend import (
    CritiqueAnswer,
    ReasoningAnswer,
    ReplyAnswer,
    ask,
    merge_stats,
)
from funreason_pipeline.agents.prompts import prompt, prompt_version
from funreason_pipeline.environments.toolsets import ToolsetConfig
from funreason_pipeline.models import Rejection, ToolSpec, Trajectory
from funreason_pipeline.progress import Progress
from funreason_pipeline.verify.execution import ProposedCall, parse_tool_calls, start_world, verify_turn


@dataclass
class TraceRow:
    trajectory_id: str
    turn_index: int
    attempts: int
    passed: bool
    reasoning: str
    calls: list[dict[str, Any]]
    critiques: list[str]
    reply: str
    prompt_version: str
    model: str


@dataclass
class Phase3Result:
    rows: list[TraceRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    stats: Any = None


def run_phase3(toolset: ToolsetConfig, tools: list[ToolSpec], trajs: list[Trajectory],
               queries: dict[tuple[str, int], dict[str, Any]], k_max: int = 3, client=None,
               log=None) -> Phase3Result:
    """`queries[(trajectory_id, turn)]` = {"query", "advanced_tool"}; turns go in order per trajectory."""
    version = prompt_version("reasoning", "critic", "reply", "system")
    out = Phase3Result()
    passed_text: dict[str, list[tuple[str, str]]] = {t.trajectory_id: [] for t in trajs}  # (query, reply)
    alive = {t.trajectory_id: True for t in trajs}
    openai_tools = [t.openai_tool() for t in tools]
    progress = Progress("cot_traces turns", len(queries), log)
    for level in range(max((len(t.turns) for t in trajs), default=0)):
        work = []
        for t in trajs:
            if level >= len(t.turns) or (t.trajectory_id, level) not in queries:
                alive[t.trajectory_id] = False
                continue
            if alive[t.trajectory_id]:
                work.append(t)
            else:  # its dialogue ends at the failed turn: record why this query was not attempted
                out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason="after_failed_turn"))
        if not work:  # no live turn at this level; later levels still owe their after_failed_turn rejections
            continue
        starts = {t.trajectory_id: start_world(toolset, tools, t, level) for t in work}
        if client is None:
            progress.advance(0)
            for t in work:
                calls = t.turns[level].calls
                adv = AdvancedTool.model_validate(_adv(queries[(t.trajectory_id, level)]))
                reasoning = offline.write_reasoning(adv, calls, turn_offset(t, level))
                proposed = [ProposedCall(c.tool, c.arguments) for c in calls]
                check = verify_turn(starts[t.trajectory_id], t, level, proposed)
                reply = offline.write_reply(adv, calls)
                _record(out, t, level, check.passed, 1, reasoning, proposed, [], reply, version, offline.OFFLINE,
                        check.problems, check.results)
                alive[t.trajectory_id] = check.passed
                passed_text[t.trajectory_id].append((queries[(t.trajectory_id, level)]["query"], reply))
                progress.advance()
            continue
        _llm_level(client, toolset, tools, openai_tools, work, level, queries, starts, passed_text, alive,
                   k_max, version, out)
        progress.advance(len(work))
    return out


def _adv(q: dict[str, Any]) -> dict[str, Any]:
    a = q["advanced_tool"]
    return {"name": a["name"], "description": a["description"], "inputs": [], "steps": a.get("steps", []),
            "output": a.get("output")}


def _record(out: Phase3Result, t: Trajectory, level: int, passed: bool, attempts: int, reasoning: str,
            proposed: list[ProposedCall], critiques: list[str], reply: str, version: str, model: str,
            problems: list[str], results: list[Any], reason: str = "verification_failed") -> None:
    """One trace row per turn; a failed one also gets exactly one rejection, with `reason`."""
    calls = [{"name": p.name, "arguments": p.arguments, "result": r} for p, r in zip(proposed, results)]
    out.rows.append(TraceRow(t.trajectory_id, level, attempts, passed, reasoning, calls, critiques, reply,
                             version, model))
    if not passed:
        out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason=reason,
                                        detail=json.dumps({"attempts": attempts, "problems": problems})[:2000]))


def _context(t: Trajectory, level: int, passed_text) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": prompt("system")}]
    for k, (query, reply) in enumerate(passed_text[t.trajectory_id][:level]):
        msgs += turn_messages(k, query, None, t.turns[k].calls, reply)
    return msgs


def _llm_level(client, toolset, tools, openai_tools, work, level, queries, starts, passed_text, alive, k_max,
               version, out) -> None:
    from funreason_pipeline.llm import LLMRequest

    base = {}
    for t in work:
        q = queries[(t.trajectory_id, level)]
        hint = f"Hint: the request amounts to `{q['advanced_tool']['name']}`: {q['advanced_tool']['description']}"
        tool_list = json.dumps([x["function"] for x in openai_tools])[:20000]
        base[t.trajectory_id] = _context(t, level, passed_text) + [
            {"role": "system", "content": prompt("reasoning") + "\nTools:\n" + tool_list + "\n" + hint},
            {"role": "user", "content": q["query"]},
        ]
    critiques: dict[str, list[str]] = {t.trajectory_id: [] for t in work}
    pending = list(work)
    last: dict[str, tuple] = {}
    for attempt in range(1, k_max + 1):
        reqs = []
        for t in pending:
            msgs = list(base[t.trajectory_id])
            for c in critiques[t.trajectory_id]:
                msgs.append({"role": "user", "content": f"Feedback on your previous attempt: {c}"})
            # per-role prompt versions: editing one prompt re-sends only the requests built from it
            reqs.append(LLMRequest(role="reasoning", item_id=f"{t.trajectory_id}/{level}/a{attempt}",
                                   messages=msgs, prompt_version=prompt_version("reasoning", "system")))
        answers, stats = ask(client, reqs, ReasoningAnswer)
        out.stats = merge_stats(out.stats, stats)
        failed = []
        for t, a in zip(pending, answers):
            if a.value is None:
                last[t.trajectory_id] = (False, attempt, "", [], [a.error or "no answer"], a.model, [])
                failed.append((t, [a.error or "no answer"], [], []))
                continue
            try:
                proposed = parse_tool_calls([c.model_dump() for c in a.value.calls])
            except ValueError as exc:
                last[t.trajectory_id] = (False, attempt, a.value.reasoning, [], [str(exc)], a.model, [])
                failed.append((t, [f"unparsable calls: {exc}"], [], []))
                continue
            check = verify_turn(starts[t.trajectory_id], t, level, proposed)
            last[t.trajectory_id] = (check.passed, attempt, a.value.reasoning, proposed, check.problems, a.model,
                                     check.results)
            if not check.passed:
                failed.append((t, check.problems, proposed, check.results))
        if attempt == k_max or not failed:
            break
        creqs = [LLMRequest(role="critic", item_id=f"{t.trajectory_id}/{level}/c{attempt}",
                            prompt_version=prompt_version("critic"),
                            messages=[{"role": "system", "content": prompt("critic")},
                                      {"role": "user", "content": json.dumps({
                                          "request": queries[(t.trajectory_id, level)]["query"],
                                          "calls": [{"name": p.name, "arguments": p.arguments} for p in props],
                                          "results": res, "problems": probs}, default=str)[:12000]}])
                 for t, probs, props, res in failed]
        canswers, stats = ask(client, creqs, CritiqueAnswer)
        out.stats = merge_stats(out.stats, stats)
        for (t, probs, _, _), a in zip(failed, canswers):
            critiques[t.trajectory_id].append(a.value.critique if a.value else offline.critique(probs))
        pending = [t for t, *_ in failed]
    # closing replies for the passed turns
    passed = [t for t in work if last[t.trajectory_id][0]]
    rreqs = [LLMRequest(role="reasoning", item_id=f"{t.trajectory_id}/{level}/reply",
                        prompt_version=prompt_version("reply"),
                        messages=[{"role": "system", "content": prompt("reply")},
                                  {"role": "user", "content": json.dumps({
                                      "request": queries[(t.trajectory_id, level)]["query"],
                                      "results": [c.result for c in t.turns[level].calls]}, default=str)[:12000]}])
             for t in passed]
    replies = {}
    if rreqs:
        ranswers, stats = ask(client, rreqs, ReplyAnswer)
        out.stats = merge_stats(out.stats, stats)
        replies = {t.trajectory_id: (a.value.reply if a.value else None) for t, a in zip(passed, ranswers)}
    for t in work:
        ok, attempts, reasoning, proposed, problems, model, results = last[t.trajectory_id]
        reply = replies.get(t.trajectory_id)
        reason = "verification_failed"
        if ok and not reply:  # the calls passed, but there is no closing reply to train on
            ok, reason, problems = False, "reply_failed", ["no usable closing reply from the model"]
        _record(out, t, level, ok, attempts, reasoning, proposed, critiques[t.trajectory_id], reply or "",
                version, model or "", problems, results, reason)
        alive[t.trajectory_id] = ok
        if ok:
            passed_text[t.trajectory_id].append((queries[(t.trajectory_id, level)]["query"], reply))
