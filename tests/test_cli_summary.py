"""`cli summary`'s quality lines (targets.md Q3/Q4) over a small hand-made database."""

import json

import duckdb

from funreason_pipeline.cli import _quality_lines


def test_quality_lines_count_turns_coverage_and_unusable_tools_once(tmp_path):
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    con.execute("CREATE TABLE dialogues (n_turns INT, n_calls INT)")
    con.execute("INSERT INTO dialogues VALUES (4, 8), (6, 12)")
    con.execute("CREATE TABLE trajectories (toolset VARCHAR, turns VARCHAR)")
    turns = [
        {"target_tool": "a", "calls": [{"tool": "a", "sources": {}, "after": []}]},
        {"target_tool": "b", "calls": [{"tool": "a", "sources": {}, "after": []},
                                        {"tool": "b", "sources": {"x": 0}, "after": []}]},
    ]
    con.execute("INSERT INTO trajectories VALUES ('ts', ?), ('ts', ?)", [json.dumps(turns), json.dumps(turns[:1])])
    con.execute("CREATE TABLE tool_catalog (toolset VARCHAR, tool_name VARCHAR)")
    con.execute("INSERT INTO tool_catalog VALUES ('ts', 'a'), ('ts', 'b'), ('ts', 'c'), ('ts', 'd'), ('other', 'z')")
    con.execute("CREATE TABLE api_graph (toolset VARCHAR, src_tool VARCHAR, dst_tool VARCHAR, param VARCHAR)")
    # a -> b used (b took a's result); a -> c never; c -> d involves an unusable tool: not counted;
    # two rows of one pair (two parameters) are one edge
    con.execute("INSERT INTO api_graph VALUES ('ts', 'a', 'b', 'x'), ('ts', 'a', 'b', 'y'), ('ts', 'a', 'c', 'x'), "
                "('ts', 'c', 'd', 'x')")
    con.execute("CREATE TABLE rejections (item_id VARCHAR, reason VARCHAR)")
    # tool d declared unusable on two days: one tool, not two
    con.execute("INSERT INTO rejections VALUES ('ts-2026-11-25/d', 'target_unusable'), "
                "('ts-2026-11-26/d', 'target_unusable'), ('ts-2026-11-26/c', 'target_never_reached')")
    lines = _quality_lines(con)
    assert "dialogues 2, mean user turns 5.00, mean calls 10.00" in lines[1]
    assert "dependent call 0.333 (data only: 0.333) of 3" in lines[2]
    assert lines[3].strip() == "tools targeted 2 of 4; never: ts/c, ts/d (1 declared unusable)"
    assert lines[4].strip() == "graph edges exercised 1 of 2 (0.500)"
