"""The sft_samples stage, pure: dialogues -> filtered SFT samples, each replayed against its trajectory.

Order: decontamination (per dialogue), split into one sample per user turn, clairvoyant calls (a call
using a value only a not-yet-seen result shows), near-duplicate queries, exact duplicates, length. Every dropped item is a rejection with its reason. Every kept sample is
replayed (verify.replay.replay_sample): its calls re-executed from the trajectory's scenario, the
injected errors recorded by the dialogue stage known as such, each turn checked against the ground
truth; the problems are what the blocking check `every_sample_replays` reports.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline import provenance
from funreason_pipeline.environments.toolsets import ToolsetConfig
from funreason_pipeline.export.formats import dialogue_to_samples
from funreason_pipeline.filtering.filters import decontaminate, exact_dedup, length_filter, near_dup_queries
from funreason_pipeline.models import Rejection, ToolSpec, Trajectory
from funreason_pipeline.verify.clairvoyance import clairvoyant_calls
from funreason_pipeline.verify.replay import expected_end_states, replay_sample


def clairvoyance_filter(samples: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """Samples with no clairvoyant call (verify/clairvoyance.py) and a `clairvoyant_call` rejection
    per other sample, naming the call and the value; a blocking gate: such a sample is never kept."""
    kept, rejections = [], []
    for s in samples:
        found = clairvoyant_calls(s["messages"], s["tools"])
        if found:
            rejections.append({"item_id": s["sample_id"], "reason": "clairvoyant_call",
                               "detail": "; ".join(f.detail() for f in found)[:2000]})
        else:
            kept.append(s)
    return kept, rejections


@dataclass
class SampleSet:
    samples: list[dict[str, Any]] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    replay_failures: list[str] = field(default_factory=list)  # "<sample_id>: <reason>: <detail>"

    def current_queries(self) -> list[str]:
        return [s["messages"][s["train_from"] - 1]["content"] for s in self.samples]


def _json(value: Any, default: Any) -> Any:
    if value is None:
        return default
    return json.loads(value) if isinstance(value, str) else value


def dialogue_items(rows: list[dict[str, Any]], trajectories: dict[str, Trajectory]) -> list[dict[str, Any]]:
    """Rows of the `dialogues` table (JSON text columns) as dicts the filters and the replay read."""
    return [{"dialogue_id": r["dialogue_id"], "trajectory_id": r["trajectory_id"],
             "messages": _json(r["messages"], []), "tools": _json(r["tools"], []),
             "role_models": _json(r.get("role_models"), []), "injected_errors": _json(r.get("injected_errors"), {}),
             "scenario": trajectories[r["trajectory_id"]].scenario if r["trajectory_id"] in trajectories else None}
            for r in rows]


def build_samples(dialogue_rows: list[dict[str, Any]], trajectories: dict[str, Trajectory],
                  toolset: ToolsetConfig, tools: list[ToolSpec]) -> SampleSet:
    out = SampleSet()
    items, rej = decontaminate(dialogue_items(dialogue_rows, trajectories))
    rejs = list(rej)
    samples = []
    for d in items:
        for s in dialogue_to_samples(d):
            role_models = provenance.sample_role_models(d["role_models"], s["turn_index"])
            samples.append(dict(s, trajectory_id=d["trajectory_id"], role_models=role_models,
                                provenance=provenance.label(role_models),
                                injected_errors=d["injected_errors"]))
    samples, rej = clairvoyance_filter(samples)
    rejs += rej
    query = {s["sample_id"]: s["messages"][s["train_from"] - 1]["content"] for s in samples}
    kept_ids, rej = near_dup_queries([(s["sample_id"], query[s["sample_id"]]) for s in samples])
    rejs += rej
    kept = {i for i, _ in kept_ids}
    samples = [s for s in samples if s["sample_id"] in kept]
    samples, rej = exact_dedup(samples)
    rejs += rej
    samples, rej = length_filter(samples)
    rejs += rej
    out.rejections = [Rejection(item_id=r["item_id"], reason=r["reason"], detail=r.get("detail", "")) for r in rejs]
    out.samples = list(samples)
    ends: dict[str, list[str | None]] = {}
    for s in out.samples:
        traj = trajectories.get(s["trajectory_id"])
        if traj is None:
            out.replay_failures.append(f"{s['sample_id']}: unknown_trajectory: {s['trajectory_id']}")
            continue
        if traj.trajectory_id not in ends:
            ends[traj.trajectory_id] = expected_end_states(traj, toolset, tools)
        problems = replay_sample(s["messages"], traj, toolset, tools, s["injected_errors"], ends[traj.trajectory_id])
        out.replay_failures += [f"{s['sample_id']}: {p}" for p in problems]
    return out
