"""Arguments that servers accept: absolute paths inside the filesystem server's allowed directory and
SQL text for mcp-server-sqlite (the real servers `make mcp-servers` installs), composed from what the
world shows (matching/paths.py, matching/sql.py), never made up from nothing; and the turn gates
those tools meet (an empty folder made is a change, a file written back as it was is not)."""

from __future__ import annotations

import random
import re

import pytest
from mcp_helpers import mcp_toolset

from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_tools
from funreason_pipeline.matching import paths as P
from funreason_pipeline.matching import sql as S
from funreason_pipeline.matching.arguments import ArgumentProvider
from funreason_pipeline.matching.values import harvest
from funreason_pipeline.models import ToolCall
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.sampling.sampler import server_places
from funreason_pipeline.sampling.task import TurnNotKept, shape_turn
from funreason_pipeline.verify.replay import replay_trajectory

ROOT = "/workspace/files"
WRITES = {"mcp_files": {"write_file", "edit_file", "create_directory", "move_file"},
          "mcp_sqlite": {"create_table", "write_query"}}


def _world(name: str, seed: int):
    ts = mcp_toolset(name)
    tools = toolset_tools(ts)
    scenario = generate_scenario(ts, seed)
    return ts, World.from_scenario(ts, scenario, tools), {t.name: t for t in tools}, scenario


def _files_book(world, scenario, calls=()):
    setup = [ToolCall(tool=c["tool"], arguments=c["arguments"]) for c in scenario["mcp:files"]["calls"]]
    return P.book_of([ROOT], world.snapshot()["mcp:files"]["state"], list(calls), setup)


def _sqlite_book(world, calls=()):
    return S.book_of(world.snapshot()["mcp:sqlite"]["state"], list(calls))


@pytest.fixture(scope="module")
def sampled():
    out = {}
    for name in WRITES:
        ts = mcp_toolset(name)
        tools = toolset_tools(ts)
        out[name] = (ts, tools, sample_partition(ts, tools, [], "2026-12-07", 6))
    return out


@pytest.mark.parametrize("name", sorted(WRITES))
def test_every_state_writing_tool_is_a_target_and_every_trajectory_replays(sampled, name):
    ts, tools, result = sampled[name]
    assert WRITES[name] <= set(result.targets_reached), (result.targets_reached, result.uncovered)
    assert not result.uncovered, result.uncovered
    for traj in result.trajectories:
        problems, _ = replay_trajectory(traj, ts, tools)
        assert problems == [], (traj.trajectory_id, problems)


@pytest.mark.parametrize("name", sorted(WRITES))
def test_a_trajectory_with_a_write_argument_changed_fails_replay(sampled, name):
    ts, tools, result = sampled[name]
    tampered = 0
    for traj in result.trajectories:
        bad = traj.model_copy(deep=True)
        call = next((c for t in bad.turns for c in t.calls if c.tool in WRITES[name] and c.changes_state), None)
        if call is None:
            continue
        key = "query" if "query" in call.arguments else "path" if "path" in call.arguments else "destination"
        value = call.arguments[key]
        # another file name, another value in the statement: the server does something else
        if key != "query":
            call.arguments[key] = value + "_x"
        elif "'" in value:
            call.arguments[key] = re.sub(r"'([^']*)'", r"'\1 x'", value, count=1)
        elif re.search(r"\d", value):  # the last number: another row, or another amount
            call.arguments[key] = re.sub(r"(\d+)(?!.*\d)", lambda m: str(int(m.group(1)) + 1000), value)
        else:
            call.arguments[key] = value.replace("INTEGER", "TEXT", 1)
        assert call.arguments[key] != value
        problems, _ = replay_trajectory(bad, ts, tools)
        assert problems, (call.tool, value, call.arguments[key])
        tampered += 1
    assert tampered >= 2


def test_paths_stay_inside_the_allowed_directory_and_keep_files_and_folders_apart():
    ts, world, specs, scenario = _world("mcp_files", 1)
    assert server_places(ts)[0] == {"mcp:files": [ROOT]}
    listing = world.copy().call("list_directory", {"path": f"{ROOT}/reports"})
    assert "[DIR] 2026" in listing.value["content"]  # a folder and a file beside it: summary.txt
    calls = [ToolCall(tool="list_directory", arguments={"path": f"{ROOT}/reports"}, result=listing.value)]
    book = _files_book(world, scenario, calls)
    assert {(e.path, e.kind, e.source) for e in book.seen} == {
        (f"{ROOT}/reports/2026", P.DIR, 0), (f"{ROOT}/reports/summary.txt", P.FILE, 0)}
    provider = ArgumentProvider()
    folders = {ROOT, f"{ROOT}/reports", f"{ROOT}/reports/2026"}
    for s in range(40):
        rng = random.Random(s)
        for tool in sorted(specs):
            args = provider.propose(specs[tool], [], [], rng, paths=book).args
            for key in ("path", "source", "destination"):
                if key in args:
                    assert args[key] == ROOT or args[key].startswith(ROOT + "/"), (tool, args)
            for p in args.get("paths", []):
                assert p.startswith(ROOT + "/"), (tool, args)
            if tool in ("read_text_file", "edit_file", "read_multiple_files"):
                assert not ({args.get("path"), *args.get("paths", [])} & folders), (tool, args)  # never a folder
            if tool in ("list_directory", "directory_tree", "search_files"):
                assert args["path"] in folders, (tool, args)  # never a file
            if tool in ("create_directory", "write_file") and args["path"] not in book.state:
                parent, name = args["path"].rsplit("/", 1)
                assert parent in folders and name not in book.children(parent), args
    # and each proposal runs
    for tool in ("write_file", "edit_file", "create_directory", "move_file", "read_text_file", "search_files"):
        args = provider.propose(specs[tool], [], [], random.Random(3), paths=book).args
        res = world.copy().call(tool, args)
        assert res.ok, (tool, args, res.error)


def test_a_read_from_a_listing_names_that_listing_as_its_source():
    _, world, specs, scenario = _world("mcp_files", 0)
    listing = world.copy().call("list_directory", {"path": ROOT})
    book = _files_book(world, scenario, [ToolCall(tool="list_directory", arguments={"path": ROOT}, result=listing.value)])
    got = [P.propose_path(specs["read_text_file"], "path", P.path_role(specs["read_text_file"], "path"), book, {},
                          random.Random(s), prefer="list_directory", made_by={0: "list_directory"}) for s in range(20)]
    from_listing = [g for g in got if g.source == 0]
    assert {g.value for g in from_listing} == {f"{ROOT}/readme.md"} and len(from_listing) >= 15  # its one file
    assert all(g.source is None for g in got if g not in from_listing)  # else a file the user names


def test_no_path_is_made_up_when_the_world_offers_none():
    _, world, specs, scenario = _world("mcp_files", 0)
    empty = P.book_of([ROOT], {}, [])
    provider = ArgumentProvider()
    for s in range(10):
        for tool in ("read_text_file", "edit_file", "move_file", "read_multiple_files"):
            args = provider.propose(specs[tool], [], [], random.Random(s), paths=empty).args
            assert not {"path", "paths", "source"} & set(args), (tool, args)  # left out: the call fails, honestly
    # an edit replaces a line the file holds now: after the file changed, its old text is no edit
    book = _files_book(world, scenario)
    assert book.texts[f"{ROOT}/notes/todo.txt"] == "buy milk\ncall the plumber\n"
    changed = world.copy()
    changed.call("write_file", {"path": f"{ROOT}/notes/todo.txt", "content": "other\n"})
    assert f"{ROOT}/notes/todo.txt" not in _files_book(changed, scenario).texts


def test_sql_is_written_from_the_tables_and_rows_the_database_holds():
    _, world, specs, _ = _world("mcp_sqlite", 0)
    book = _sqlite_book(world)
    snap = world.snapshot()["mcp:sqlite"]["state"]
    held = {repr(v) for t in snap["tables"].values() for row in t["rows"] for v in row}
    provider = ArgumentProvider()
    seen = set()
    for s in range(60):
        rng = random.Random(s)
        for tool in ("create_table", "write_query", "read_query"):
            q = provider.propose(specs[tool], [], [], rng, tables=book).args["query"]
            verb = q.split()[0]
            seen.add((tool, verb))
            table = re.search(r"(?:FROM|INTO|UPDATE|TABLE) (\w+)", q).group(1)
            if tool == "create_table":
                assert verb == "CREATE" and table not in snap["tables"], q
            else:
                assert table in snap["tables"], q  # a table the database holds, never a made-up one
                assert verb in (("SELECT",) if tool == "read_query" else ("INSERT", "UPDATE", "DELETE")), q
            where = re.search(r"WHERE \w+ = ('(?:[^']|'')*'|[\d.]+)$", q)
            if where:  # a row picked by a value some row holds: the statement changes or finds something
                lit = where.group(1)
                assert repr(float(lit) if "." in lit else int(lit)) in held if lit[0] != "'" else \
                    repr(lit[1:-1].replace("''", "'")) in held, q
            res = world.copy().call(tool, {"query": q})
            assert res.ok and "error" not in str(res.value).lower(), (q, res)
            if verb in ("UPDATE", "DELETE", "INSERT"):
                assert res.value == [{"affected_rows": 1}], (q, res.value)
    assert {v for _, v in seen} >= {"CREATE", "INSERT", "UPDATE", "DELETE", "SELECT"}


def test_no_sql_and_no_table_name_from_nowhere():
    _, world, specs, _ = _world("mcp_sqlite", 0)
    empty = S.book_of({"schema": [], "tables": {}}, [])
    provider = ArgumentProvider()
    for s in range(10):
        for tool in ("write_query", "read_query", "describe_table"):
            assert provider.propose(specs[tool], [], [], random.Random(s), tables=empty).args == {}, tool
    # a column's name that a describe_table result shows is no table's name
    described = world.copy().call("describe_table", {"table_name": "orders"})
    calls = [ToolCall(tool="describe_table", arguments={"table_name": "orders"}, result=described.value)]
    book = _sqlite_book(world, calls)
    results = harvest(described.value, source=0, producer="describe_table")
    for s in range(30):
        name = provider.propose(specs["describe_table"], results, [], random.Random(s), tables=book).args["table_name"]
        assert name in ("customers", "orders"), name
    # a table list_tables showed is that call's to give
    listed = world.copy().call("list_tables", {})
    book = _sqlite_book(world, [ToolCall(tool="list_tables", arguments={}, result=listed.value)])
    sources = {provider.propose(specs["read_query"], [], [], random.Random(s), tables=book).sources.get("query")
               for s in range(30)}
    assert sources == {None, 0}


def test_an_empty_folder_made_is_a_change_and_a_file_written_back_is_not():
    _, world, specs, _ = _world("mcp_files", 0)
    made = {"path": f"{ROOT}/ideas"}
    res = world.copy().call("create_directory", made)
    shaped = shape_turn(world, [ToolCall(tool="create_directory", arguments=made, result=res.value)], 0, 0, specs)
    assert shaped.calls[0].changes_state
    same = {"path": f"{ROOT}/notes/todo.txt", "content": "buy milk\ncall the plumber\n"}
    res = world.copy().call("write_file", same)
    assert res.ok
    with pytest.raises(TurnNotKept, match="changes_nothing: write_file"):
        shape_turn(world, [ToolCall(tool="write_file", arguments=same, result=res.value)], 0, 0, specs)


def test_listing_a_folder_the_same_turn_made_reads_its_own_write():
    _, world, specs, _ = _world("mcp_files", 0)
    w = world.copy()
    calls = []
    for tool, args in (("create_directory", {"path": f"{ROOT}/ideas"}), ("list_directory", {"path": f"{ROOT}/ideas"})):
        calls.append(ToolCall(tool=tool, arguments=args, result=w.call(tool, args).value))
    calls[1].after = [0]
    with pytest.raises(TurnNotKept, match="reads_own_write"):
        shape_turn(world, calls, 1, 0, specs)
