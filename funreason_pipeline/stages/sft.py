"""The sft_samples stage: dialogues -> filtered, replayed SFT samples (filtering/samples.py), their
export files and dataset card (as content, for the sft_exports asset), and their quality statistics."""

from __future__ import annotations

from collections import Counter
from datetime import date

import polars as pl

from funreason_pipeline import frames, provenance, quality
from funreason_pipeline.export.bfcl_docs import bfcl_functions
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import render_exports
from funreason_pipeline.filtering.samples import build_samples
from funreason_pipeline.stages.inputs import partition_inputs
from funreason_pipeline.stages.output import Check, ExportFiles, Markdown, StageOutput


def sft_stage(day: str, toolset: str, dialogues: pl.DataFrame, trajectories: pl.DataFrame,
              tool_catalog: pl.DataFrame, api_graph: pl.DataFrame, queries: pl.DataFrame,
              cot_traces: pl.DataFrame, rejections: pl.DataFrame) -> StageOutput:
    """The partition's upstream rows (`queries`, `cot_traces`, and the earlier stages' `rejections`)
    are for the statistics; the export files go to <day>/<toolset>/ under the export root."""
    inp = partition_inputs(toolset, tool_catalog, trajectories)
    result = build_samples(list(dialogues.iter_rows(named=True)), inp.trajectories, inp.toolset, inp.tools)
    samples = result.samples
    the_day = date.fromisoformat(day)
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "sample_id": s["sample_id"],
                        "dialogue_id": s["dialogue_id"], "trajectory_id": s["trajectory_id"],
                        "turn_index": s["turn_index"], "messages": frames.dumps(s["messages"]),
                        "tools": frames.dumps(s["tools"]), "train_from": s["train_from"],
                        "role_models": frames.dumps(s["role_models"]), "provenance": s["provenance"]}
                       for s in samples], schema=frames.SFT_SCHEMA)
    q = quality.from_frames(trajectories=trajectories, tool_catalog=tool_catalog, api_graph=api_graph,
                            rejections=rejections, dialogues=dialogues, queries=queries, cot_traces=cot_traces)
    stats = quality.quality_stats(q.with_samples(samples, result.current_queries())
                                  .with_rejections("sft_samples", [r.reason for r in result.rejections]))
    prov = provenance.summary([s["role_models"] for s in samples])
    files = render_exports(samples, dataset_name=f"funreason-{toolset}-{day}", bfcl_functions=bfcl_functions(inp.tools))
    files["README.md"] = dataset_card(stats, prov, day, [toolset]).encode("utf-8")
    failures = result.replay_failures
    turns_in = stats["turns_sampled"]
    metrics = {
        "samples": df.height,
        "dialogues": stats["dialogues"],
        "yield_turns_to_samples": stats["yield_turns_to_samples"],
        "mean_user_turns": stats["mean_user_turns"],
        "mean_calls": stats["mean_calls_per_dialogue"],
        "dependent_turn_share": stats["dependent_turn_share"],
        "data_dependent_turn_share": stats["data_dependent_turn_share"],
        "tool_coverage": stats["tool_coverage"],
        "edge_coverage": stats["edge_coverage"],
        # steps: the calls a model emits at once (a call uses results of earlier steps only)
        "mean_steps_per_turn": stats["steps"]["mean_steps_per_turn"],
        "mean_calls_per_step": stats["steps"]["mean_calls_per_step"],
        "multi_step_turn_share": stats["steps"]["multi_step_turn_share"],
        "near_duplicate_rate": stats["near_duplicate_rate"],
        "samples_by_provenance": stats["samples_by_provenance"],
        "real_model_share_by_role": {r: v["real_model_share"] for r, v in prov["by_role"].items()},
        "rejections_by_reason": dict(Counter(r.reason for r in result.rejections)),
        "yield_per_stage": Markdown(frames.markdown_table(pl.DataFrame(stats["yield_per_stage"]))),
        "preview": Markdown(frames.markdown_table(df.select("sample_id", "turn_index", "messages"), max_chars=200)),
    }
    checks = [
        Check("every_sample_replays", not failures, {
            "failures": len(failures), "first": "; ".join(failures[:3]),
            "by_reason": dict(Counter(f.split(": ", 2)[1] for f in failures))}),
        Check("yield_above_floor", turns_in == 0 or df.height / turns_in >= 0.5,
              {"yield": stats["yield_turns_to_samples"]}, warn=True),
    ]
    return StageOutput(df, {(day, toolset): result.rejections}, metrics, checks,
                       exports=ExportFiles.under(f"{day}/{toolset}", files))
