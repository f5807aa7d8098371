"""Stage rows instead of whole demos: one offline tickets partition through every stage function of
funreason_pipeline.stages, called without Dagster. Each output is stored in a real DuckDB file and an
export root as the IO managers would store its assets (table, rejections, export files), and the
stages that measure quality get their upstream rows and rejections as arguments, as the assets do.

conftest.py's session fixture `stage_chain` builds it once per session; tests/test_stages.py checks each
stage's output and tests that only need one stage's rows (e.g. the lineage view) read them from there.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import polars as pl

from funreason_pipeline import storage
from funreason_pipeline.export.files import write_files
from funreason_pipeline.stages.day_export import day_export_stage
from funreason_pipeline.stages.dialogues import dialogues_stage
from funreason_pipeline.stages.graph import catalog_stage, graph_stage
from funreason_pipeline.stages.llm import llm_stages
from funreason_pipeline.stages.output import StageOutput
from funreason_pipeline.stages.phase1 import trajectories_stage
from funreason_pipeline.stages.rl import rl_stage
from funreason_pipeline.stages.sft import sft_stage

DAY, TS = "2026-05-01", "tickets"
PHASE1 = {"trajectories_per_partition": 3, "candidate_budget": None, "min_turns": 3, "max_turns": 6,
          "max_calls_per_turn": 6, "edge_goals": True, "edge_coverage_target": None, "seed": 0, "min_yield": 1.0,
          "min_tool_coverage": 0.0}


def store(db, name: str, out: StageOutput) -> None:
    """What the IO managers do after an asset: the table, its rejections and its export files."""
    with duckdb.connect(str(db)) as con:
        con.register("frame", out.frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
    for (day, toolset), rejections in out.rejections.items():
        storage.replace_rejections(name, day, toolset, [r.model_dump() for r in rejections], path=db)
    if out.exports is not None:
        write_files(db.parent / "exports", out.exports.files)


def rejections(out: dict, *stages: str) -> pl.DataFrame:
    """The rejections of earlier stages as the sft and day export assets get them (one frame)."""
    return pl.concat([out[s].rejections_frame(s) for s in stages])


def sft_inputs(out: dict) -> dict:
    """The sft stage's arguments besides the dialogues."""
    return {"trajectories": out["trajectories"].frame, "tool_catalog": out["catalog"].frame,
            "api_graph": out["graph"].frame, "queries": out["queries"].frame, "cot_traces": out["cot_traces"].frame,
            "rejections": rejections(out, "trajectories", "queries", "cot_traces", "dialogues")}


def build_chain(db: Path) -> dict:
    """The stages in order, each stored as its asset would be; exports go to exports/ beside `db`."""
    out = {"db": db, "catalog": catalog_stage(TS)}
    out["graph"] = graph_stage(TS, out["catalog"].frame)
    out["trajectories"] = trajectories_stage(DAY, TS, out["catalog"].frame, out["graph"].frame, **PHASE1)
    out.update(llm_stages([(DAY, TS)], out["trajectories"].frame, out["catalog"].frame))
    out["dialogues"] = dialogues_stage(DAY, TS, out["trajectories"].frame, out["queries"].frame,
                                       out["cot_traces"].frame, out["catalog"].frame)
    for name in ("trajectories", "queries", "cot_traces", "dialogues"):
        store(db, name, out[name])
    store(db, "tool_catalog", out["catalog"])
    store(db, "api_graph", out["graph"])
    out["sft"] = sft_stage(DAY, TS, out["dialogues"].frame, **sft_inputs(out))
    store(db, "sft_samples", out["sft"])
    out["rl"] = rl_stage(DAY, TS, out["sft"].frame, out["trajectories"].frame, out["catalog"].frame)
    store(db, "rl_samples", out["rl"])
    out["sft_samples"], out["rl_samples"] = out["sft"], out["rl"]
    out["day"] = day_export_stage(
        DAY, out["sft"].frame, out["rl"].frame, out["trajectories"].frame, out["dialogues"].frame,
        out["queries"].frame, out["cot_traces"].frame,
        [out[s].rejections_frame(s) for s in ("trajectories", "queries", "cot_traces", "dialogues", "sft_samples",
                                              "rl_samples")], out["catalog"].frame, out["graph"].frame)
    store(db, "day_export", out["day"])
    storage.create_lineage_view(db)  # what the day_export asset has the Store do
    return out


# Dagster runs of a day in tests that check something independent of the number of rows (staleness, checks,
# rejections, cards, secrets): 2 trajectories instead of 6; tool coverage then need not reach the default 0.75
SMALL_TRAJECTORIES = {"trajectories_per_partition": 2, "min_tool_coverage": 0.0}


def small_day(ops: dict | None = None) -> dict:
    """A run config with SMALL_TRAJECTORIES for the trajectories asset, plus other `ops` config."""
    return {"ops": {"trajectories": {"config": SMALL_TRAJECTORIES}, **(ops or {})}}
