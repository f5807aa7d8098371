"""Stage rows instead of whole demos: one offline tickets partition through every stage function of
funreason_pipeline.stages, called without Dagster, over a real DuckDB file (the stages that measure
quality read it). Each output is stored as the IO manager and the Store would store its asset.

conftest.py's session fixture `stage_chain` builds it once per session; tests/test_stages.py checks each
stage's output and tests that only need one stage's rows (e.g. the lineage view) read them from there.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from funreason_pipeline import storage
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
    """What the IO manager and the Store do after an asset: the table and its rejections."""
    with duckdb.connect(str(db)) as con:
        con.register("frame", out.frame.to_arrow())
        con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM frame")
    for (day, toolset), rejections in out.rejections.items():
        storage.replace_rejections(name, day, toolset, [r.model_dump() for r in rejections], path=db)


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
    out["sft"] = sft_stage(DAY, TS, out["dialogues"].frame, out["trajectories"].frame, out["catalog"].frame, str(db),
                          db.parent / "exports")
    store(db, "sft_samples", out["sft"])
    out["rl"] = rl_stage(DAY, TS, out["sft"].frame, out["trajectories"].frame, out["catalog"].frame, db.parent / "exports")
    store(db, "rl_samples", out["rl"])
    out["day"] = day_export_stage(DAY, out["sft"].frame, out["rl"].frame, str(db), db.parent / "exports")
    return out
