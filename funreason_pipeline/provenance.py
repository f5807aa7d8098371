"""Which model wrote what, per agent role: per turn, per dialogue, per sample, per export.

A role's value is a model name, "offline" for the pipeline's templated offline agent, "unused" for a
role no text came from (no critique was needed), or several of them joined with "+" when the turns a
row covers were written by different ones (a sample carries every earlier turn of its dialogue as
context; the flow joins a turn's critic models the same way). A row is "partly_offline" when some
used role is offline and some other had a real model: the card and the exports say so row by row.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

ROLES = ("tooling", "querying", "reasoning", "critic")
OFFLINE = "offline"
UNRECORDED = "unrecorded"  # a row written before role_models existed, or an answer without a model name
UNUSED = "unused"  # the role wrote nothing for the row (no critique was needed)
SEP = "+"
STAGE_ROLES = {"queries": ("tooling", "querying"), "cot_traces": ("reasoning", "critic")}


def row_role_models(row: Mapping[str, Any], stage: str) -> dict[str, str]:
    """role -> model of one `queries` / `cot_traces` row: its `role_models` column (JSON object) when
    the table has one (a role it leaves out wrote nothing: the critic of a turn passed at once),
    else the row's `model` (tables written before `role_models` existed: Phase II runs tooling and
    querying on one backend, Phase III reasoning and critic, and the critic only spoke when a turn
    took more than one attempt)."""
    roles = STAGE_ROLES[stage]
    raw = row.get("role_models")
    if raw:
        given = json.loads(raw) if isinstance(raw, str) else dict(raw)
        return {r: str(given[r]) if r in given else UNUSED for r in roles}
    model = str(row.get("model") or UNRECORDED)
    out = dict.fromkeys(roles, model)
    if stage == "cot_traces" and (row.get("attempts") or 1) <= 1:
        out["critic"] = UNUSED
    return out


def turn_role_models(query_rows: Iterable[Mapping[str, Any]], cot_rows: Iterable[Mapping[str, Any]],
                     ) -> dict[str, dict[int, dict[str, str]]]:
    """trajectory_id -> turn index -> role -> model, from the rows of `queries` and `cot_traces`."""
    out: dict[str, dict[int, dict[str, str]]] = {}
    for stage, rows in (("queries", query_rows), ("cot_traces", cot_rows)):
        for r in rows:
            out.setdefault(r["trajectory_id"], {}).setdefault(r["turn_index"], {}).update(
                row_role_models(r, stage))
    return out


def models_of(value: str) -> list[str]:
    return [m for m in value.split(SEP) if m]


def merge(per_turn: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """One row's role -> model(s) over the turns it covers; a role used in some turn drops `unused`."""
    seen: dict[str, set[str]] = {r: set() for r in ROLES}
    for turn in per_turn:
        for r in ROLES:
            seen[r].update(models_of(turn.get(r) or UNRECORDED))
    for ms in seen.values():
        if len(ms) > 1:
            ms.discard(UNUSED)
    return {r: SEP.join(sorted(ms)) if ms else UNRECORDED for r, ms in seen.items()}


def sample_role_models(dialogue_turns: list[Mapping[str, str]], turn_index: int) -> dict[str, str]:
    """A sample of turn `turn_index` shows turns 0..turn_index of its dialogue."""
    return merge(dialogue_turns[: turn_index + 1])


def is_real(value: str) -> bool:
    """Every model named for the role is a real one (not offline, unrecorded or unused)."""
    ms = models_of(value)
    return bool(ms) and not {OFFLINE, UNRECORDED, UNUSED} & set(ms)


def label(role_models: Mapping[str, str]) -> str:
    """"model" (every role that wrote something had a real model), "offline" (none did),
    "partly_offline", or "unrecorded" (a row written before provenance was recorded)."""
    values = [role_models.get(r, UNRECORDED) for r in ROLES]
    if all(v == UNRECORDED for v in values):
        return UNRECORDED
    used = [v for v in values if v != UNUSED]
    real = [is_real(v) for v in used]
    return "model" if all(real) else "offline" if not any(real) else "partly_offline"


def offline_roles(prov: Mapping[str, Any]) -> list[str]:
    """Roles of a `summary` where some sample has offline or unrecorded text."""
    return [r for r in ROLES if {OFFLINE, UNRECORDED} & set(prov["by_role"][r]["models"])]


def summary(sample_role_models: list[Mapping[str, str]]) -> dict[str, Any]:
    """The card's headline: per role, the share of samples whose text in that role came from real
    models only, and the models seen (samples per model, `unused` included); and how many samples are
    model-made, partly offline and offline."""
    n = len(sample_role_models)
    by_role = {}
    for r in ROLES:
        values = [s.get(r, UNRECORDED) for s in sample_role_models]
        models = Counter(m for v in values for m in models_of(v))
        by_role[r] = {"real_model_share": round(sum(map(is_real, values)) / n, 3) if n else 0.0,
                      "models": dict(sorted(models.items()))}
    labels = Counter(label(s) for s in sample_role_models)
    counts = {k: labels.get(k, 0) for k in ("model", "partly_offline", "offline")}
    if labels.get(UNRECORDED):
        counts[UNRECORDED] = labels[UNRECORDED]
    return {"samples": n, "by_role": by_role, "samples_by_provenance": counts}


def backend(prov: Mapping[str, Any]) -> str:
    """"offline", "partly offline" or "openai-compatible", from a `summary`."""
    counts = prov["samples_by_provenance"]
    if prov["samples"] == 0 or counts["offline"] == prov["samples"]:
        return "offline"
    if counts["model"] == prov["samples"]:
        return "openai-compatible"
    if counts["model"] or counts["partly_offline"]:
        return "partly offline"
    return "offline" if counts["offline"] else UNRECORDED
