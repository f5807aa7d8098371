"""The filtered SFT set and its exports (thin: filters and formats live in filtering/ and export/)."""

import json
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline import config
from funreason_pipeline.defs import frames
from funreason_pipeline.defs.partitions import (
    DAY_TOOLSET_EXPR,
    OWNERS,
    day_toolset_partitions,
    per_toolset,
    split_key,
)
from funreason_pipeline.defs.resources import Store
from funreason_pipeline.environments.toolsets import World, toolset_by_name, toolset_unusable_tools
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import dialogue_to_samples, write_exports
from funreason_pipeline.filtering.filters import (
    decontaminate,
    exact_dedup,
    length_filter,
    near_dup_queries,
    near_duplicate_rate,
)
from funreason_pipeline.models import dependent_turn_counts, edge_coverage

SFT_SCHEMA = {"day": pl.Date, "toolset": pl.String, "sample_id": pl.String, "dialogue_id": pl.String,
              "trajectory_id": pl.String, "turn_index": pl.Int64, "messages": pl.String, "tools": pl.String,
              "train_from": pl.Int64}


def replay_sample(world: World, sample: dict) -> list[str]:
    """Re-execute a sample's calls from its scenario; every tool message must come back the same."""
    problems, pending = [], {}
    for m in sample["messages"]:
        if m["role"] == "assistant":
            for c in m.get("tool_calls", []):
                pending[c["id"]] = c
        elif m["role"] == "tool":
            c = pending.pop(m["tool_call_id"], None)
            if c is None:
                problems.append(f"tool message without a call: {m['tool_call_id']}")
                continue
            res = world.call(c["function"]["name"], json.loads(c["function"]["arguments"]))
            got = res.value if res.ok else {"error": res.error}
            if json.loads(m["content"]) != got and "error" not in json.loads(m["content"]):
                problems.append(f"{c['function']['name']}: result differs on replay")
    return problems


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset),
         "api_graph": dg.AssetIn(partition_mapping=per_toolset)},
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "polars", "parquet"}, code_version="sft-v1",
    check_specs=[
        dg.AssetCheckSpec("every_sample_replays", asset="sft_samples", blocking=True,
                          description="Re-executing each sample's calls from its scenario reproduces its tool messages."),
        dg.AssetCheckSpec("yield_above_floor", asset="sft_samples",
                          description="At least half of the trajectories' turns end as samples (warning)."),
    ],
    description="Verified, deduplicated, decontaminated SFT samples (one per user turn; earlier turns as "
    "context) and their exports under data/exports/<day>/<toolset>/ (OpenAI/TRL, ShareGPT + LLaMA-Factory "
    "dataset_info, BFCL prompting, Parquet, dataset card).",
)
def sft_samples(context: dg.AssetExecutionContext, store: Store, dialogues: pl.DataFrame,
                trajectories: pl.DataFrame, queries: pl.DataFrame, cot_traces: pl.DataFrame,
                tool_catalog: pl.DataFrame, api_graph: pl.DataFrame):  # no annotation: check_specs
    day, toolset = split_key(context)
    ts = toolset_by_name(toolset)
    tools = frames.tools_from_frame(tool_catalog)
    scenarios = {r["trajectory_id"]: json.loads(r["scenario"]) for r in trajectories.iter_rows(named=True)}
    items = [{"dialogue_id": r["dialogue_id"], "trajectory_id": r["trajectory_id"],
              "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"]),
              "scenario": scenarios.get(r["trajectory_id"])} for r in dialogues.iter_rows(named=True)]
    rejections: list[dict] = []
    items, rej = decontaminate(items)
    rejections += rej
    samples = [dict(s, trajectory_id=d["trajectory_id"]) for d in items for s in dialogue_to_samples(d)]
    current_query = {s["sample_id"]: s["messages"][s["train_from"] - 1]["content"] for s in samples}
    kept_ids, rej = near_dup_queries([(s["sample_id"], current_query[s["sample_id"]]) for s in samples])
    rejections += rej
    kept = {i for i, _ in kept_ids}
    samples = [s for s in samples if s["sample_id"] in kept]
    samples, rej = exact_dedup(samples)
    rejections += rej
    samples, rej = length_filter(samples)
    rejections += rej
    the_day = date.fromisoformat(day)
    from funreason_pipeline.models import Rejection

    store.replace_rejections("sft_samples", the_day, toolset,
                             [Rejection(item_id=r["item_id"], reason=r["reason"], detail=r.get("detail", ""))
                              for r in rejections])
    failures = []
    for s in samples:
        world = World.from_scenario(ts, scenarios[s["trajectory_id"]], tools)
        failures += [f"{s['sample_id']}: {p}" for p in replay_sample(world, s)]
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "sample_id": s["sample_id"],
                        "dialogue_id": s["dialogue_id"], "trajectory_id": s["trajectory_id"],
                        "turn_index": s["turn_index"], "messages": frames.dumps(s["messages"]),
                        "tools": frames.dumps(s["tools"]), "train_from": s["train_from"]} for s in samples],
                      schema=SFT_SCHEMA)
    stats = partition_stats(trajectories, queries, cot_traces, dialogues, df, api_graph, tools, rejections,
                            [current_query[s["sample_id"]] for s in samples],
                            set(toolset_unusable_tools(ts, tools)))
    out_dir = config.exports_dir(store.database) / day / toolset
    write_exports(samples, out_dir, dataset_name=f"funreason-{toolset}-{day}")
    models = sorted({m for r in dialogues.iter_rows(named=True) for m in json.loads(r["models"]) if m})
    backend = "offline" if models in ([], ["offline"]) else "openai-compatible"
    card = dataset_card(stats, backend, {"models": ", ".join(models) or "offline"}, day, [toolset])
    (out_dir / "README.md").write_text(card)
    turns_in = stats["turns_sampled"]
    return dg.MaterializeResult(
        value=df, data_version=dg.DataVersion(frames.content_version(df)),
        metadata={
            "samples": df.height,
            "dialogues": stats["dialogues"],
            "yield_turns_to_samples": stats["yield_turns_to_samples"],
            "mean_user_turns": stats["mean_user_turns"],
            "mean_calls": stats["mean_calls_per_dialogue"],
            "dependent_turn_share": stats["dependent_turn_share"],
            "data_dependent_turn_share": stats["data_dependent_turn_share"],
            "tool_coverage": stats["tool_coverage"],
            "edge_coverage": stats["edge_coverage"],
            "near_duplicate_rate": stats["near_duplicate_rate"],
            "rejections_by_reason": dg.MetadataValue.json(dict(Counter(r["reason"] for r in rejections))),
            "yield_per_stage": dg.MetadataValue.md(frames.markdown_table(pl.DataFrame(stats["yield_per_stage"]))),
            "exports": dg.MetadataValue.path(str(out_dir)),
            "preview": dg.MetadataValue.md(frames.markdown_table(df.select("sample_id", "turn_index", "messages"),
                                                                 max_chars=200)),
        },
        check_results=[
            dg.AssetCheckResult(check_name="every_sample_replays", passed=not failures,
                                metadata={"failures": len(failures), "first": "; ".join(failures[:3])}),
            dg.AssetCheckResult(check_name="yield_above_floor", severity=dg.AssetCheckSeverity.WARN,
                                passed=turns_in == 0 or df.height / turns_in >= 0.5,
                                metadata={"yield": stats["yield_turns_to_samples"]}),
        ],
    )


def partition_stats(trajectories, queries, cot_traces, dialogues, samples, api_graph, tools, rejections,
                    sample_queries, unusable: set[str] = frozenset()) -> dict:
    turns = [t for r in trajectories.iter_rows(named=True) for t in json.loads(r["turns"])]
    n_turns = len(turns)
    dependent, data_dependent = dependent_turn_counts(turns)
    targets = {t["target_tool"] for t in turns}
    # an edge is exercised when a call used its source's result or state (models.used_edges)
    exercised, n_edges = edge_coverage({(r["src_tool"], r["dst_tool"]) for r in api_graph.iter_rows(named=True)},
                                       [json.loads(r["turns"]) for r in trajectories.iter_rows(named=True)],
                                       unusable)
    return {
        "turns_sampled": n_turns,
        "dialogues": dialogues.height,
        "yield_per_stage": [
            {"stage": "trajectories (turns)", "items": n_turns},
            {"stage": "queries", "items": queries.height},
            {"stage": "cot_traces passed", "items": int(cot_traces["passed"].sum()) if cot_traces.height else 0},
            {"stage": "dialogue turns", "items": int(dialogues["n_turns"].sum()) if dialogues.height else 0},
            {"stage": "sft_samples", "items": samples.height},
        ],
        "yield_turns_to_samples": round(samples.height / n_turns, 3) if n_turns else 0.0,
        "mean_user_turns": round(float(dialogues["n_turns"].mean()), 2) if dialogues.height else 0.0,
        "mean_calls_per_dialogue": round(float(dialogues["n_calls"].mean()), 2) if dialogues.height else 0.0,
        "dependent_turn_share": round(dependent / n_turns, 3) if n_turns else 0.0,
        "data_dependent_turn_share": round(data_dependent / n_turns, 3) if n_turns else 0.0,
        "tool_coverage": round(len(targets) / len(tools), 3) if tools else 0.0,
        "edge_coverage": round(exercised / n_edges, 3) if n_edges else 0.0,
        "near_duplicate_rate": near_duplicate_rate(sample_queries),
        "rejections_by_reason": dict(Counter(r["reason"] for r in rejections)),
    }
