"""The day's combined export across toolsets, its statistics and the lineage view."""

import hashlib
import json
from collections import Counter
from datetime import date

import dagster as dg
import polars as pl

from funreason_pipeline import config, storage
from funreason_pipeline.defs import frames
from funreason_pipeline.defs.partitions import OWNERS, day_partitions
from funreason_pipeline.defs.resources import Store, create_lineage_view
from funreason_pipeline.export.card import dataset_card
from funreason_pipeline.export.formats import write_exports
from funreason_pipeline.models import dependent_turn_counts, edge_coverage_per_toolset, toolset_tool_of

per_day = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day")
MANIFEST_SCHEMA = {"day": pl.Date, "file": pl.String, "bytes": pl.Int64, "sha256": pl.String}


def day_stats(database: str, day: str) -> dict:
    """Cross-stage statistics for one day (read-only queries over the stage tables)."""
    with storage.connect(database) as con:
        def q(sql: str):
            return con.execute(sql, [day]).fetchall()

        per_stage = q("SELECT stage, reason, count(*) FROM rejections WHERE day = ? GROUP BY ALL ORDER BY 1, 3 DESC")
        dlg = q("SELECT count(*), avg(n_turns), avg(n_calls) FROM dialogues WHERE day = ?")[0]
        counts = {t: q(f"SELECT count(*) FROM {t} WHERE day = ?")[0][0]
                  for t in ("trajectories", "queries", "cot_traces", "dialogues", "sft_samples")}
        tools = con.execute("SELECT toolset, count(*) FROM tool_catalog GROUP BY 1").fetchall()
        targets = q("SELECT toolset, count(DISTINCT t.target_tool) FROM trajectories, "
                    "unnest(from_json(turns, '[{\"target_tool\": \"VARCHAR\"}]')) AS u(t) WHERE day = ? GROUP BY 1")
        by_toolset = q("SELECT toolset, turns FROM trajectories WHERE day = ?")
        turn_lists = [json.loads(js) for _, js in by_toolset]
        present = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        graph_edges = con.execute("SELECT DISTINCT toolset, src_tool, dst_tool FROM api_graph").fetchall() \
            if "api_graph" in present else []
        unusable = [i for (i,) in q("SELECT DISTINCT item_id FROM rejections WHERE day = ? "
                                    "AND reason = 'target_unusable'")]
        tokens = (con.execute("SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
                              "FROM llm_calls").fetchone() if "llm_calls" in present else (0, 0))
    turns = [t for ts in turn_lists for t in ts]
    dependent, data_dependent = dependent_turn_counts(turns)
    n_tools = dict(tools)
    coverage = {ts: round(n / n_tools[ts], 3) for ts, n in targets if n_tools.get(ts)}
    declared: dict[str, set[str]] = {}
    for ts, tool in map(toolset_tool_of, unusable):
        declared.setdefault(ts, set()).add(tool)
    edge_cov = {ts: round(done / total, 3)
                for ts, (done, total) in edge_coverage_per_toolset(graph_edges, by_toolset, declared).items() if total}
    return {
        "rows_per_stage": counts,
        "rejections_by_stage_and_reason": [{"stage": s, "reason": r, "count": n} for s, r, n in per_stage],
        "dialogues": dlg[0],
        "mean_user_turns": round(dlg[1] or 0.0, 2),
        "mean_calls_per_dialogue": round(dlg[2] or 0.0, 2),
        "tool_coverage_per_toolset": coverage,
        # Q3: share of graph edges a call used (an earlier call's result or state), per toolset
        "edge_coverage_per_toolset": edge_cov,
        # Q4: a turn is dependent when a call uses an earlier result or needs an earlier call's state
        "dependent_turn_share": round(dependent / len(turns), 3) if turns else 0.0,
        "data_dependent_turn_share": round(data_dependent / len(turns), 3) if turns else 0.0,
        "llm_tokens": {"input": int(tokens[0]), "output": int(tokens[1])},
    }


@dg.asset(
    partitions_def=day_partitions, metadata={"partition_expr": "day"},
    ins={"sft_samples": dg.AssetIn(partition_mapping=per_day)},
    group_name="sft", owners=OWNERS, kinds={"python", "duckdb", "parquet"}, code_version="day-export-v1",
    description="The day's SFT set across all toolsets, exported under data/exports/<day>/ (OpenAI/TRL, "
    "ShareGPT + LLaMA-Factory dataset_info, BFCL prompting, Parquet) with a dataset card; also refreshes "
    "the `sample_lineage` view.",
)
def day_export(context: dg.AssetExecutionContext, store: Store, sft_samples: pl.DataFrame) -> dg.MaterializeResult[pl.DataFrame]:
    day = context.partition_key
    samples = [{"sample_id": r["sample_id"], "dialogue_id": r["dialogue_id"], "turn_index": r["turn_index"],
                "messages": json.loads(r["messages"]), "tools": json.loads(r["tools"]),
                "train_from": r["train_from"]} for r in sft_samples.iter_rows(named=True)]
    out_dir = config.exports_dir(store.database) / day
    paths = write_exports(samples, out_dir, dataset_name=f"funreason-{day}")
    stats = day_stats(store.database, day)
    with storage.connect(store.database) as con:
        models = sorted({m for (ms,) in con.execute("SELECT DISTINCT models FROM dialogues WHERE day = ?", [day]).fetchall()
                         for m in json.loads(ms) if m})
    backend = "offline" if models in ([], ["offline"]) else "openai-compatible"
    toolsets = sorted(set(sft_samples["toolset"].to_list())) if sft_samples.height else []
    card = dataset_card(stats, backend, {"models": ", ".join(models) or "offline"}, day, toolsets,
                        num_samples=len(samples))
    (out_dir / "README.md").write_text(card)
    create_lineage_view(store.database)
    rows = []
    for p in sorted([*paths.values(), out_dir / "README.md"]):
        data = p.read_bytes()
        rows.append({"day": date.fromisoformat(day), "file": p.name, "bytes": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()})
    df = pl.DataFrame(rows, schema=MANIFEST_SCHEMA)
    return dg.MaterializeResult(
value=df, data_version=dg.DataVersion(frames.content_version(df)), metadata={
        "samples": len(samples),
        "toolsets": len(toolsets),
        "dialogues": stats["dialogues"],
        "mean_user_turns": stats["mean_user_turns"],
        "mean_calls_per_dialogue": stats["mean_calls_per_dialogue"],
        "dependent_turn_share": stats["dependent_turn_share"],
        "data_dependent_turn_share": stats["data_dependent_turn_share"],
        "rows_per_stage": dg.MetadataValue.json(stats["rows_per_stage"]),
        "rejections": dg.MetadataValue.md(frames.markdown_table(
            pl.DataFrame(stats["rejections_by_stage_and_reason"]), max_rows=40)),
        "tool_coverage_per_toolset": dg.MetadataValue.json(stats["tool_coverage_per_toolset"]),
        "edge_coverage_per_toolset": dg.MetadataValue.json(stats["edge_coverage_per_toolset"]),
        "samples_per_toolset": dg.MetadataValue.json(dict(Counter(sft_samples["toolset"].to_list()))),
        "exports": dg.MetadataValue.path(str(out_dir)),
        "card": dg.MetadataValue.md(card[:20000]),
    })
