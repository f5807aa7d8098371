"""Phase II: per turn, an advanced tool (tooling agent) and a hard user query (querying agent)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.agents import offline
from funreason_pipeline.agents.advanced_tool import intermediate_values, structure, turn_offset
from funreason_pipeline.agents.llm_backend import QueryAnswer, ToolingAnswer, ask, merge_stats
from funreason_pipeline.agents.prompts import prompt, prompt_version
from funreason_pipeline.agents.query_check import check_query
from funreason_pipeline.models import Rejection, ToolSpec, Trajectory
from funreason_pipeline.seeds import stable_seed


@dataclass
class QueryRow:
    trajectory_id: str
    turn_index: int
    advanced_tool: dict[str, Any]
    query: str
    prompt_version: str
    model: str


@dataclass
class Phase2Result:
    rows: list[QueryRow] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    stats: Any = None


def run_phase2(trajs: list[Trajectory], tools: list[ToolSpec], client=None) -> Phase2Result:
    """`client` None = offline agents; else an LLMClient with tooling and querying roles."""
    specs = {t.name: t for t in tools}
    version = prompt_version("tooling", "querying")
    out = Phase2Result()
    alive = {t.trajectory_id: True for t in trajs}
    earlier: dict[str, list[str]] = {t.trajectory_id: [] for t in trajs}
    for level in range(max((len(t.turns) for t in trajs), default=0)):
        work = [t for t in trajs if level < len(t.turns)]
        for t in work:
            if not alive[t.trajectory_id]:
                out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason="after_rejected_turn"))
        work = [t for t in work if alive[t.trajectory_id]]
        structs = {t.trajectory_id: structure(t, level, specs) for t in work}
        inter = {t.trajectory_id: intermediate_values(t.turns[level].calls, turn_offset(t, level)) for t in work}
        if client is None:
            model = offline.OFFLINE
            for t in work:
                adv = structs[t.trajectory_id]
                adv.name, adv.description = offline.describe(adv, specs)
            queries = {t.trajectory_id: offline.write_query(structs[t.trajectory_id], specs,
                                                            stable_seed("query", t.trajectory_id, level))
                       for t in work}
        else:
            model = ""
            reqs = [_tooling_request(t, level, structs[t.trajectory_id], version) for t in work]
            answers, stats = ask(client, reqs, ToolingAnswer)
            out.stats = merge_stats(out.stats, stats)
            ok_work = []
            for t, a in zip(work, answers):
                if a.value is None:
                    out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason="tooling_failed",
                                                    detail=f"{a.error} | raw: {(a.raw or '')[:800]}"))
                    alive[t.trajectory_id] = False
                    continue
                structs[t.trajectory_id].name = a.value.name[:48]
                structs[t.trajectory_id].description = a.value.description
                model = a.model or model
                ok_work.append(t)
            work = ok_work
            reqs = [_query_request(t, level, structs[t.trajectory_id], inter[t.trajectory_id],
                                   earlier[t.trajectory_id], version) for t in work]
            answers, stats = ask(client, reqs, QueryAnswer)
            out.stats = merge_stats(out.stats, stats)
            queries = {}
            for t, a in zip(work, answers):
                if a.value is None:
                    out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason="querying_failed",
                                                    detail=f"{a.error} | raw: {(a.raw or '')[:800]}"))
                    alive[t.trajectory_id] = False
                else:
                    queries[t.trajectory_id] = a.value.query
                    model = a.model or model
        for t in work:
            q = queries.get(t.trajectory_id)
            if q is None:
                continue
            adv = structs[t.trajectory_id]
            problems = check_query(q, adv, inter[t.trajectory_id])
            if problems:
                out.rejections.append(Rejection(item_id=f"{t.trajectory_id}/{level}", reason="invalid_query",
                                                detail=json.dumps({"query": q, "problems": problems})[:2000]))
                alive[t.trajectory_id] = False
                continue
            earlier[t.trajectory_id].append(q)
            out.rows.append(QueryRow(t.trajectory_id, level, adv.schema(), q, version, model))
    return out


def _tooling_request(t: Trajectory, level: int, adv, version: str):
    from funreason_pipeline.llm import LLMRequest

    chain = [{"tool": c.tool, "arguments": c.arguments, "result": c.result} for c in t.turns[level].calls]
    user = json.dumps({"calls": chain, "user_inputs": [i.model_dump() for i in adv.inputs]}, default=str)[:12000]
    return LLMRequest(role="tooling", item_id=f"{t.trajectory_id}/{level}", prompt_version=prompt_version("tooling"),
                      messages=[{"role": "system", "content": prompt("tooling")}, {"role": "user", "content": user}])


def _query_request(t: Trajectory, level: int, adv, inter: list, earlier: list[str], version: str):
    from funreason_pipeline.llm import LLMRequest

    user = json.dumps({"advanced_tool": {"name": adv.name, "description": adv.description},
                       "user_supplied_values": {i.name: i.value for i in adv.inputs},
                       "intermediate_values_never_mention": inter,
                       "earlier_user_messages": earlier}, default=str)[:12000]
    return LLMRequest(role="querying", item_id=f"{t.trajectory_id}/{level}", prompt_version=prompt_version("querying"),
                      messages=[{"role": "system", "content": prompt("querying")}, {"role": "user", "content": user}])
