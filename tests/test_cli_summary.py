"""The quality statistics (quality.py) that `cli summary`, the cards and the assets share, over a small
hand-made database."""

import json

import duckdb

from funreason_pipeline import quality
from funreason_pipeline.cli import summary


def _db(path):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE dialogues (day DATE, toolset VARCHAR, n_turns INT, n_calls INT, "
                "error_tool_response BOOLEAN)")
    con.execute("INSERT INTO dialogues VALUES ('2026-11-26', 'ts', 4, 8, false), ('2026-11-26', 'ts', 6, 12, true)")
    con.execute("CREATE TABLE trajectories (day DATE, toolset VARCHAR, turns VARCHAR)")
    turns = [
        {"target_tool": "a", "calls": [{"tool": "a", "sources": {}, "after": []}]},
        {"target_tool": "b", "calls": [{"tool": "a", "sources": {}, "after": []},
                                        {"tool": "b", "sources": {"x": 0}, "after": []}]},
    ]
    con.execute("INSERT INTO trajectories VALUES ('2026-11-26', 'ts', ?), ('2026-11-26', 'ts', ?)",
                [json.dumps(turns), json.dumps(turns[:1])])
    con.execute("CREATE TABLE tool_catalog (toolset VARCHAR, tool_name VARCHAR)")
    con.execute("INSERT INTO tool_catalog VALUES ('ts', 'a'), ('ts', 'b'), ('ts', 'c'), ('ts', 'd'), ('other', 'z')")
    con.execute("CREATE TABLE api_graph (toolset VARCHAR, src_tool VARCHAR, dst_tool VARCHAR, param VARCHAR)")
    # a -> b used (b took a's result); a -> c never; c -> d involves an unusable tool: not counted;
    # two rows of one pair (two parameters) are one edge
    con.execute("INSERT INTO api_graph VALUES ('ts', 'a', 'b', 'x'), ('ts', 'a', 'b', 'y'), ('ts', 'a', 'c', 'x'), "
                "('ts', 'c', 'd', 'x')")
    con.execute("CREATE TABLE rejections (day DATE, toolset VARCHAR, stage VARCHAR, item_id VARCHAR, reason VARCHAR)")
    # tool d declared unusable on two days: one tool, not two
    con.execute("INSERT INTO rejections VALUES "
                "('2026-11-25', 'ts', 'trajectories', 'ts-2026-11-25/d', 'target_unusable'), "
                "('2026-11-26', 'ts', 'trajectories', 'ts-2026-11-26/d', 'target_unusable'), "
                "('2026-11-26', 'ts', 'trajectories', 'ts-2026-11-26/c', 'target_never_reached'), "
                "('2026-11-26', 'ts', 'sft_samples', 's1', 'near_duplicate_query')")
    con.execute("CREATE TABLE sft_samples (day DATE, toolset VARCHAR, role_models VARCHAR)")
    model = {"tooling": "m", "querying": "m", "reasoning": "m", "critic": "m"}
    con.execute("INSERT INTO sft_samples VALUES ('2026-11-26', 'ts', ?), ('2026-11-26', 'ts', ?), "
                "('2026-11-26', 'ts', ?)",
                [json.dumps(model), json.dumps({**model, "reasoning": "offline", "critic": "offline"}),
                 json.dumps(dict.fromkeys(model, "offline"))])
    return con


def test_quality_lines_count_turns_coverage_and_unusable_tools_once(tmp_path):
    con = _db(tmp_path / "s.duckdb")
    stats = quality.quality_stats(quality.from_database(con))
    lines = quality.summary_lines(stats)
    assert "dialogues 2, mean user turns 5.00, mean calls 10.00" in lines[1]
    assert "dependent call 0.333 (data only: 0.333) of 3" in lines[2]
    assert lines[3].strip() == "tools targeted 2 of 4; never: ts/c, ts/d (1 declared unusable)"
    assert lines[4].strip() == "graph edges exercised 1 of 2 (0.500)"
    assert lines[5].strip() == "samples 3 (yield 1.000 of sampled turns); model 1, partly_offline 1, offline 1"
    assert stats["dialogues_with_injected_error"] == 1
    assert stats["rejections_by_stage_and_reason"] == [
        {"stage": "sft_samples", "reason": "near_duplicate_query", "count": 1},
        {"stage": "trajectories", "reason": "target_unusable", "count": 2},
        {"stage": "trajectories", "reason": "target_never_reached", "count": 1}]
    # one day: the other day's rejection is not counted, the unusable tool is still known
    day = quality.quality_stats(quality.from_database(con, "2026-11-26", "ts"))
    assert sum(r["count"] for r in day["rejections_by_stage_and_reason"]) == 3
    assert day["tools"]["declared_unusable"] == ["ts/d"]
    assert quality.quality_stats(quality.from_database(con, "2026-11-27"))["turns_sampled"] == 0


def test_cli_summary_prints_the_shared_figures(tmp_path, monkeypatch):
    db = tmp_path / "s.duckdb"
    _db(db).close()
    monkeypatch.setenv("FUNREASON_DB", str(db))
    text = summary()
    assert "graph edges exercised 1 of 2 (0.500)" in text
    assert "sft_samples    near_duplicate_query" in text
