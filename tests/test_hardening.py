"""Bad input, hostile model output and determinism (targets R4, R5, R7)."""

import filecmp
import json
from pathlib import Path

import dagster as dg
import pytest

from funreason_pipeline.environments.toolsets import World, parse_toolsets
from funreason_pipeline.export.formats import parse_pythonic_calls
from funreason_pipeline.verify.execution import ProposedCall, parse_tool_calls


@pytest.mark.heavy  # two whole demos of two toolsets
def test_two_offline_runs_of_one_partition_give_byte_identical_exports(tmp_path, monkeypatch):
    from funreason_pipeline.cli import run_demo

    outs = []
    for run in ("a", "b"):
        db = tmp_path / run / "funreason.duckdb"
        monkeypatch.setenv("FUNREASON_DB", str(db))
        monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / run / "exports"))
        with dg.instance_for_test() as inst:
            assert run_demo("2026-05-06", ["tickets", "messages"], instance=inst)
        outs.append(tmp_path / run / "exports" / "2026-05-06")
    files = sorted(p.relative_to(outs[0]) for p in outs[0].rglob("*.jsonl"))
    assert files and any("openai.jsonl" in str(f) for f in files)
    for f in files:
        assert filecmp.cmp(outs[0] / f, outs[1] / f, shallow=False), f


CANARY = "/tmp/funreason_canary_must_not_exist"


@pytest.mark.parametrize("payload", [
    f"__import__('os').system('touch {CANARY}')",
    f"open('{CANARY}', 'w').write('x')",
    "exec('import os')",
    "(lambda: 1)()",
])
def test_hostile_strings_are_never_evaluated(payload):
    Path(CANARY).unlink(missing_ok=True)
    # as pythonic call text: rejected by the parser
    with pytest.raises(ValueError):
        parse_pythonic_calls(f"[{payload}]")
    # as an argument value: it is only data, passed to the tool as a string
    ts = parse_toolsets("toolsets:\n  - {name: f, classes: [GorillaFileSystem]}")[0]
    world = World.from_scenario(ts, {"GorillaFileSystem": {}})
    res = world.call("echo", {"content": payload})
    assert res.ok and payload in json.dumps(res.value)
    # as a tool name from a model: not on the allow-list
    calls = parse_tool_calls([{"name": payload, "arguments": "{}"}])
    assert not world.call(calls[0].name, calls[0].arguments).ok
    assert not Path(CANARY).exists()


def test_model_calls_with_unknown_tools_and_wrong_types_are_errors_not_crashes():
    ts = parse_toolsets("toolsets:\n  - {name: m, classes: [MathAPI, TicketAPI]}")[0]
    world = World.from_scenario(ts, {"TicketAPI": {}})
    assert "unknown tool" in world.call("rm_rf", {}).error
    assert "must be number" in world.call("add", {"a": "1", "b": 2}).error
    assert "must be a JSON object" in world.call("add", ["a", "b"]).error
    with pytest.raises(ValueError):
        parse_tool_calls([{"name": "add", "arguments": "[1, 2]"}])
    with pytest.raises(ValueError):
        parse_tool_calls(["add(1, 2)"])
    assert parse_tool_calls([{"name": "add", "arguments": '{"a": 1, "b": 2}'}]) == [ProposedCall("add", {"a": 1, "b": 2})]
