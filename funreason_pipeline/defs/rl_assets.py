"""The RL export per day x toolset (thin: rows are export/rl.py, scoring is reward.py).

Its own asset rather than more code in `sft_samples`: it needs the trajectories' scenarios and
re-executes every sample, its rows are a table of their own (`rl_samples`) that the day export
combines, and its check runs the reward module on every row.
"""

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
from funreason_pipeline.environments.toolsets import toolset_by_name
from funreason_pipeline.export.rl import RL_FILE, rl_rows, write_rl_parquet
from funreason_pipeline.models import Rejection
from funreason_pipeline.reward import score_calls

RL_SCHEMA = {"day": pl.Date, "toolset": pl.String, "sample_id": pl.String, "dialogue_id": pl.String,
             "turn_index": pl.Int64, "row": pl.String}


def ground_truth_failures(rows: list[dict]) -> list[str]:
    """Rows whose own ground-truth calls do not score 1.0 with the reward module (must be none)."""
    failures = []
    for r in rows:
        truth = json.loads(r["reward_model"]["ground_truth"])
        verdict = score_calls(r, [{"name": c["name"], "arguments": c["arguments"]} for c in truth["calls"]])
        if verdict.score != 1.0:
            failures.append(f"{r['extra_info']['sample_id']}: {'; '.join(verdict.problems)}")
    return failures


@dg.asset(
    partitions_def=day_toolset_partitions, metadata={"partition_expr": DAY_TOOLSET_EXPR},
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "parquet"}, code_version="rl-v1",
    check_specs=[dg.AssetCheckSpec(
        "ground_truth_scores_one", asset="rl_samples", blocking=True,
        description="Every row's ground-truth calls score 1.0 with funreason_pipeline.reward.")],
    description="RL rows (verl layout: data_source, prompt, ability, reward_model, extra_info): per user turn "
    "the prompt, tools, initial state, prior calls and the turn's ground truth (calls + end state), under "
    "data/exports/<day>/<toolset>/rl.parquet.",
)
def rl_samples(context: dg.AssetExecutionContext, store: Store, sft_samples: pl.DataFrame,
               trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):  # no annotation: check_specs
    day, toolset = split_key(context)
    ts = toolset_by_name(toolset)
    scenarios = {r["trajectory_id"]: json.loads(r["scenario"]) for r in trajectories.iter_rows(named=True)}
    samples = [{**r, "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"])}
               for r in sft_samples.iter_rows(named=True)]
    rows, rejections = rl_rows(samples, scenarios, ts, frames.tools_from_frame(tool_catalog))
    the_day = date.fromisoformat(day)
    store.replace_rejections("rl_samples", the_day, toolset, [Rejection(**r) for r in rejections])
    out = write_rl_parquet(rows, config.exports_dir(store.database) / day / toolset / RL_FILE)
    failures = ground_truth_failures(rows)
    df = pl.DataFrame([{"day": the_day, "toolset": toolset, "sample_id": r["extra_info"]["sample_id"],
                        "dialogue_id": r["extra_info"]["dialogue_id"], "turn_index": r["extra_info"]["turn_index"],
                        "row": json.dumps(r, ensure_ascii=False)} for r in rows], schema=RL_SCHEMA)
    return dg.MaterializeResult(
        value=df, data_version=dg.DataVersion(frames.content_version(df)),
        metadata={"rows": df.height, "rejections_by_reason": dg.MetadataValue.json(
            dict(Counter(r["reason"] for r in rejections))), "export": dg.MetadataValue.path(str(out))},
        check_results=[dg.AssetCheckResult(check_name="ground_truth_scores_one", passed=not failures,
                                           metadata={"failures": len(failures), "first": "; ".join(failures[:3])})],
    )
