"""Real MCP servers as toolsets (data/mcp_toolsets.yaml): the official memory and filesystem servers
from npm and mcp-server-sqlite from PyPI in its own venv, installed by `make mcp-servers`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from funreason_pipeline.environments.fingerprint import graph_fingerprint
from funreason_pipeline.environments.mcp_config import McpCall
from funreason_pipeline.environments.mcp_env import McpFactory
from funreason_pipeline.environments.mcp_server import McpServer
from funreason_pipeline.environments.mcp_state import canonical
from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_tools
from funreason_pipeline.models import ToolCall, Trajectory, Turn
from funreason_pipeline.verify.replay import reason_of, replay_trajectory, seal_trajectory
from tests.mcp_helpers import REAL, ROOT, mcp_toolset, our_server_pids

# per server: a write, then a read that shows it; the write's argument is what the tamper test changes
CALLS = {
    "mcp_memory": [
        ("create_entities", {"entities": [{"name": "Bob", "entityType": "person", "observations": ["likes tea"]}]}),
        ("add_observations", {"observations": [{"entityName": "Bob", "contents": ["owns a cat"]}]}),
        ("open_nodes", {"names": ["Bob"]}),
    ],
    "mcp_files": [
        ("write_file", {"path": "/workspace/files/notes/new.txt", "content": "hello\n"}),
        ("move_file", {"source": "/workspace/files/readme.md", "destination": "/workspace/files/notes/readme.md"}),
        ("list_directory", {"path": "/workspace/files/notes"}),
    ],
    "mcp_sqlite": [
        ("write_query", {"query": "INSERT INTO customers (id, name, city) VALUES (3, 'Cy Park', 'Rome')"}),
        ("write_query", {"query": "UPDATE orders SET amount = 40.0 WHERE id = 10"}),
        ("read_query", {"query": "SELECT name, city FROM customers ORDER BY id"}),
    ],
}
HOME_BEFORE = sorted(os.listdir(Path.home()))


def _run(name: str) -> tuple[World, list[ToolCall]]:
    ts = mcp_toolset(name)
    world = World.from_scenario(ts, generate_scenario(ts, 0))
    calls = []
    for tool, args in CALLS[name]:
        res = world.call(tool, args)
        assert res.ok, (tool, res.error)
        calls.append(ToolCall(tool=tool, arguments=args, result=res.value))
    return world, calls


@pytest.mark.parametrize("name", sorted(REAL))
def test_catalog_lists_every_tool_with_hints_and_server_version(name, monkeypatch):
    ts = mcp_toolset(name)
    cls, count = REAL[name]
    factory = ts.factory(cls)
    server = factory.server()
    raw = [t["name"] for t in server.proc.list_tools(10)]
    tools = toolset_tools(ts)
    assert len(raw) == count and [t.method for t in tools] == raw
    assert all(t.parameters["type"] == "object" and "$schema" not in t.parameters for t in tools)
    info = factory.server_info()
    assert info.get("name") and info.get("version")
    if name != "mcp_sqlite":  # the npm servers declare output schemas and annotations; sqlite neither
        assert all(t.response for t in tools)
        assert factory.tool_hints()[tools[0].method]
    before = graph_fingerprint(ts)
    monkeypatch.setattr(McpFactory, "server_info", lambda self: {**info, "version": info["version"] + "-other"})
    assert graph_fingerprint(ts) != before  # a new server version is a new graph


@pytest.mark.parametrize("name", sorted(REAL))
def test_calls_run_and_two_fresh_servers_give_equal_canonical_snapshots(name):
    ts = mcp_toolset(name)
    cls = REAL[name][0]
    opts = ts.server_options(cls)
    factory = ts.factory(cls)
    setup = [McpCall.model_validate(c) for c in generate_scenario(ts, 0)[cls]["calls"]]
    calls = setup + [McpCall(tool=t, arguments=a) for t, a in CALLS[name]]
    outcomes = []
    servers = [factory.server(), McpServer(cls, opts, setup)]  # the shared one and a second, new process
    try:
        assert servers[0].state_dir != servers[1].state_dir and servers[0].pid != servers[1].pid
        for server in servers:
            blob, results = None if opts.state.kind != "dir" else (), []
            for c in calls:
                res, blob = server.call(blob, c.tool, dict(c.arguments))
                assert res.ok, (c.tool, res.error)
                results.append(res.value)
            outcomes.append((results, canonical(opts.state.kind, blob, opts.mask, server.to_visible,
                                                opts.mask_patterns)))
    finally:
        servers[1].close()
    assert outcomes[0] == outcomes[1]
    assert server.state_dir not in repr(outcomes[0])  # the real folder never shows
    assert outcomes[0][1]  # something to compare


@pytest.mark.parametrize("name", sorted(REAL))
def test_tampered_trajectory_fails_replay(name):
    ts = mcp_toolset(name)
    _world, calls = _run(name)
    traj = Trajectory(trajectory_id=f"t-{name}", toolset=name, seed=0, scenario=generate_scenario(ts, 0),
                      turns=[Turn(target_tool=calls[1].tool, calls=calls[:2]), Turn(target_tool=calls[2].tool,
                                                                                   calls=calls[2:])])
    sealed, problems, _ = seal_trajectory(traj, ts)
    assert problems == []
    assert replay_trajectory(sealed, ts)[0] == []
    dropped = sealed.model_copy(update={"turns": [sealed.turns[0].model_copy(update={"calls": calls[1:2]}),
                                                  sealed.turns[1]]})
    found = replay_trajectory(dropped, ts)[0]
    assert found and {reason_of(p) for p in found} & {"state_mismatch", "result_mismatch", "replay_failed"}
    first = calls[0]
    changed_args = {k: (v.replace("hello", "bye").replace("Cy Park", "Cy Kim") if isinstance(v, str) else v)
                    for k, v in first.arguments.items()}
    if name == "mcp_memory":
        changed_args = {"entities": [{**first.arguments["entities"][0], "entityType": "robot"}]}
    assert changed_args != first.arguments
    changed = sealed.model_copy(update={"turns": [sealed.turns[0].model_copy(update={"calls": [
        first.model_copy(update={"arguments": changed_args}), calls[1]]}), sealed.turns[1]]})
    found = replay_trajectory(changed, ts)[0]
    assert any(reason_of(p) in ("state_mismatch", "result_mismatch") for p in found), found


@pytest.mark.parametrize("name", sorted(REAL))
def test_copies_and_instances_never_share_state(name):
    ts = mcp_toolset(name)
    world = World.from_scenario(ts, generate_scenario(ts, 0))
    start = world.snapshot()
    twin = world.copy()
    other = World.from_scenario(ts, generate_scenario(ts, 1))
    other_start = other.snapshot()
    for tool, args in CALLS[name][:2]:
        assert twin.call(tool, args).ok
    # the copy changed; the original and an instance of another scenario, on the same server, did not
    assert twin.snapshot() != start
    assert world.snapshot() == start and other.snapshot() == other_start
    read, args = CALLS[name][2]
    assert world.call(read, args).value != twin.copy().call(read, args).value


@pytest.mark.parametrize("name", sorted(REAL))
def test_servers_write_neither_home_nor_their_package_folders(name):
    _run(name)
    cls = REAL[name][0]
    server = mcp_toolset(name).factory(cls).server()
    env = dict(x.split("=", 1) for x in Path(f"/proc/{server.pid}/environ").read_text().split("\0") if "=" in x)
    assert env["HOME"].startswith(str(server.root)) and env["TMPDIR"].startswith(str(server.root))
    if name == "mcp_memory":
        assert env["MEMORY_FILE_PATH"] == f"{server.state_dir}/memory.jsonl"
    # nothing in the installed packages is newer than their install (make mcp-servers' stamp)
    install = ROOT / (".mcp/venvs/sqlite" if name == "mcp_sqlite" else ".mcp/npm")
    stamp = (install / ".installed").stat().st_mtime
    newer = [p for p in install.rglob("*") if p.name != ".installed" and p.lstat().st_mtime > stamp]
    assert newer == []
    assert sorted(os.listdir(Path.home())) == HOME_BEFORE
    assert set(our_server_pids()) >= {server.pid}


def test_a_toolset_crosses_from_an_mcp_server_to_a_python_class():
    ts = mcp_toolset("mcp_memory_clinic")
    tools = {t.name: t for t in toolset_tools(ts)}
    assert "read_graph" in tools and tools["read_graph"].class_name == "mcp:memory"
    assert any(t.class_name.endswith(":ClinicSystem") for t in tools.values())
    world = World.from_scenario(ts, generate_scenario(ts, 3))
    clinic_tool = next(n for n, t in tools.items() if t.class_name.endswith(":ClinicSystem") and not t.required)
    assert world.call("read_graph", {}).ok
    world.call(clinic_tool, {})  # routed to the Python class (its answer may be a refusal: not logged in)
    snap = world.snapshot()
    assert set(snap) == set(ts.classes) and snap["mcp:memory"]["state"]


def test_a_folder_state_is_patched_to_any_other_state_exactly(tmp_path):
    from funreason_pipeline.environments.mcp_state import capture, restore
    folder = tmp_path / "files"
    a = (("docs/", None), ("docs/a.txt", b"->not a link"), ("docs/deep/", None), ("docs/deep/x", b"1"),
         ("link", ("link", "docs/a.txt")), ("top.txt", b"top"))
    b = (("docs", b"now a file"), ("new/", None), ("top.txt", b"changed"))
    for start, goal in ((a, b), (b, a), ((), a), (a, ())):
        restore("dir", folder, start)
        restore("dir", folder, goal, current=capture("dir", folder))
        assert dict(capture("dir", folder)) == dict(goal)
