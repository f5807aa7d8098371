"""Bad servers and bad input: each is a clear error or an error result, and other toolsets go on."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from funreason_pipeline.environments.base import EnvironmentConfigError
from funreason_pipeline.environments.toolsets import World, generate_scenario, parse_toolsets, toolset_tools
from tests.mcp_helpers import ROOT, bad_toolset, mcp_toolset


def _memory_still_works():
    ts = mcp_toolset("mcp_memory")
    assert World.from_scenario(ts, generate_scenario(ts, 0)).call("read_graph", {}).ok


def test_the_bad_server_works_in_its_ok_mode():
    ts = bad_toolset("ok", name="bad_ok")
    world = World.from_scenario(ts, generate_scenario(ts, 0))
    assert world.call("put", {"key": "b", "value": "2"}).ok
    assert world.snapshot() == {"mcp:bad": {"state": {"a": "1", "b": "2"}}}


@pytest.mark.parametrize(("mode", "expected"), [
    ("exit", "exited with code 3; stderr: bad server: missing configuration"),
    ("junk", "non-protocol text on stdout: 'Starting server on stdio... welcome!'"),
    ("hang_start", "no answer to initialize within 1.5 s"),
    ("bad_schema", "tool 'put' has a inputSchema that is not a valid JSON Schema"),
    ("no_tools", "the server declares no tools"),
    ("caching", "a restored state is not seen by the server"),
])
def test_a_bad_server_is_a_clear_error_naming_it(mode, expected):
    ts = bad_toolset(mode, name=f"bad_{mode}", start_timeout_s="1.5")
    with pytest.raises(EnvironmentConfigError) as err:
        toolset_tools(ts)
    assert "mcp:bad" in str(err.value) and expected in str(err.value), str(err.value)
    _memory_still_works()


def test_a_command_that_does_not_exist():
    text = ("toolsets:\n  - name: nothing\n    classes: ['mcp:x']\n    servers:\n      x:\n"
            "        command: ./no/such/mcp-server\n        state: {kind: none}\n")
    ts = parse_toolsets(text, source="<test>", base_dir=ROOT)[0]  # loading the config starts nothing
    with pytest.raises(EnvironmentConfigError, match=r"command not found: '.*/no/such/mcp-server'.*make mcp-servers"):
        toolset_tools(ts)
    _memory_still_works()


def test_a_server_hanging_in_its_self_test_is_refused_at_start():
    ts = bad_toolset("hang_call", name="bad_hang", call_timeout_s="1")
    t0 = time.monotonic()
    with pytest.raises(EnvironmentConfigError, match="scenario call put.*no answer to tools/call within 1 s"):
        toolset_tools(ts)
    assert time.monotonic() - t0 < 5


def test_hang_and_crash_mid_call_are_error_results_then_the_server_restarts():
    for mode, expected in (("hang_call", "no answer to tools/call within 1 s"),
                           ("crash_call", "exited with code 9")):
        ts = bad_toolset(mode, name=f"bad_{mode}_mid", call_timeout_s="1")
        server = _server_without_self_test(ts)
        try:
            pid = server.pid
            t0 = time.monotonic()
            res, _ = server.call(None, "put", {"key": "k", "value": "v"})
            assert not res.ok and expected in res.error, res.error
            assert time.monotonic() - t0 < 3
            res, _ = server.call(None, "dump", {})  # a new process answers
            assert res.ok and server.pid != pid
        finally:
            server.close()
    _memory_still_works()


def _server_without_self_test(ts):
    from funreason_pipeline.environments.mcp_server import McpServer
    original = McpServer.self_test
    McpServer.self_test = lambda self, setup: None
    try:
        return McpServer("mcp:bad", ts.server_options("mcp:bad"), [])
    finally:
        McpServer.self_test = original


def test_a_state_leak_is_found_by_the_self_test(tmp_path):
    # two instances sharing one file: the server writes to a fixed path, not to its own state path
    shared = tmp_path / "shared.jsonl"
    text = (ROOT / "data/mcp_toolsets.yaml").read_text().replace(
        'env: {MEMORY_FILE_PATH: "{state_dir}/memory.jsonl"}', f'env: {{MEMORY_FILE_PATH: "{shared}"}}')
    mcp_toolset("mcp_memory")  # servers installed
    ts = {t.name: t for t in parse_toolsets(text, source="<leak>", base_dir=ROOT / "data")}["mcp_memory"]
    with pytest.raises(EnvironmentConfigError, match="writes did not reach the declared state path"):
        toolset_tools(ts)
    with pytest.raises(EnvironmentConfigError, match="did not reach"):
        toolset_tools(bad_toolset("ok", name="bad_shared", state_file=str(tmp_path / "one.json")))


@pytest.mark.parametrize(("entry", "message"), [
    ("state: {kind: jsonl, path: /tmp/memory.jsonl}", "must start with '{state_dir}/'"),
    ("state: {kind: none}\n        args: ['{home}']", "unknown placeholder {home}"),
    ("state: {kind: none}\n        scenarios: nowhere.json", "scenarios"),
    ("state: {kind: tape}", "kind"),
    ("state: {kind: none}\n        mask_patterns: ['(']", "not a regular expression"),
    ("state: {kind: none}\n        error_patterns: ['[']", "not a regular expression"),
])
def test_bad_entries_are_config_errors(entry, message):
    text = f"toolsets:\n  - name: e\n    classes: ['mcp:x']\n    servers:\n      x:\n        command: some-server\n        {entry}\n"
    with pytest.raises(EnvironmentConfigError, match=message.replace("{", r"\{").replace("(", r"\(")):
        parse_toolsets(text, source="<test>", base_dir=ROOT)


def test_server_names_are_checked():
    text = "toolsets:\n  - name: e\n    classes: ['mcp:My-Server']\n    servers:\n      My-Server: {command: x, state: {kind: none}}\n"
    with pytest.raises(EnvironmentConfigError, match="server names .'My-Server'. must match"):
        parse_toolsets(text, source="<test>", base_dir=ROOT)


def test_classes_and_servers_must_match():
    text = "toolsets:\n  - name: e\n    classes: ['mcp:x']\n    servers:\n      y: {command: some-server, state: {kind: none}}\n"
    with pytest.raises(EnvironmentConfigError, match="classes mcp:<name> and servers must match"):
        parse_toolsets(text, source="<test>", base_dir=ROOT)


def test_bad_arguments_and_excluded_tools_are_error_results():
    ts = mcp_toolset("mcp_sqlite")
    world = World.from_scenario(ts, generate_scenario(ts, 0))
    start = world.snapshot()
    assert "unknown argument" in world.call("read_query", {"sql": "SELECT 1"}).error
    assert "must be string" in world.call("read_query", {"query": 5}).error
    assert "not run here" in world.call("append_insight", {"insight": "sales up"}).error
    bad_sql = world.call("read_query", {"query": "SELECT * FROM nowhere"})
    assert not bad_sql.ok and "no such table" in bad_sql.error  # the server's "Error: ..." text
    assert world.snapshot() == start
    assert "append_insight" in ts.factory("mcp:sqlite").unusable_tools()


def test_a_server_keeping_state_in_memory_runs_with_a_process_per_instance():
    ts = bad_toolset("caching", name="bad_caching_process", isolation="process")
    tools = toolset_tools(ts)  # no self-test: nothing is shared
    world = World.from_scenario(ts, generate_scenario(ts, 0), tools)
    pid = world.envs["mcp:bad"]._own.pid
    twin = world.copy()  # a new process that replayed the scenario
    assert twin.envs["mcp:bad"]._own.pid != pid and twin.snapshot() == world.snapshot()
    assert twin.call("put", {"key": "b", "value": "2"}).ok
    assert world.call("dump", {}).value == {"a": "1"} and twin.call("dump", {}).value == {"a": "1", "b": "2"}
    assert world.snapshot() == {"mcp:bad": {"state": {"a": "1"}}}
    import gc
    import os
    del world, twin
    gc.collect()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.05)
    else:
        raise AssertionError(f"the instance's server {pid} outlived it")


def test_a_failure_reported_inside_a_text_result_is_a_failure_where_the_server_declares_it():
    """The filesystem server reads several files and reports the one it could not read in its text,
    without `isError`: its entry's `error_patterns` make that a failed call, not a read that worked."""
    ts = mcp_toolset("mcp_files")
    world = World.from_scenario(ts, generate_scenario(ts, 0))
    listing = world.call("list_directory", {"path": "/workspace/files"})
    assert listing.ok, listing.error
    text = listing.value["content"]  # the server's structured content: {"content": "[DIR] notes\n[FILE] ..."}
    name = next(line.split("] ", 1)[1] for line in text.splitlines() if line.startswith("[FILE]"))
    good = world.call("read_multiple_files", {"paths": [f"/workspace/files/{name}"]})
    assert good.ok, good.error
    partly = world.call("read_multiple_files", {"paths": [f"/workspace/files/{name}", "/workspace/files/nope.txt"]})
    assert not partly.ok and "nope.txt: Error - ENOENT" in partly.error
    # the same answer without the declared pattern would pass as a read that worked
    from funreason_pipeline.environments.mcp_catalog import call_result

    answer = {"content": [{"type": "text", "text": partly.value["content"]}], "structuredContent": partly.value}
    assert call_result("read_multiple_files", answer).ok
    assert not call_result("read_multiple_files", answer, ts.servers["files"].error_patterns).ok
