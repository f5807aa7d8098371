"""verl's tool agent loop on our environments, driven as verl drives it, and the reward loaded as verl
loads it. verl needs torch, so it is not imported here: the calls below follow verl 0.9.1's
`verl/experimental/agent_loop/tool_agent_loop.py` (`ToolAgentLoop._handle_processing_tools_state`
gathers one generation's calls; `_call_tool` runs create(create_kwargs=...) -> execute(instance_id,
arguments, agent_data=agent_data) -> release(instance_id) for each), and the reward loading follows
`verl/utils/import_utils.py` `load_module` (a file path is executed under a made-up module name that
is not registered in `sys.modules`)."""

from __future__ import annotations

import asyncio
import copy
import importlib
import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from funreason_pipeline import verl_tool
from funreason_pipeline.environments.base import to_json_value
from funreason_pipeline.reward import RowError
from funreason_pipeline.verl_tool import FunReasonTool, Worlds, create_kwargs

ROOT = Path(__file__).resolve().parents[1]


def _rows(stage_chain) -> list[dict]:
    return [json.loads(r) for r in stage_chain["rl"].frame["row"].to_list()]


def _info(row) -> dict:
    return row["extra_info"]


def _truth(row) -> dict:
    return json.loads(row["reward_model"]["ground_truth"])


def _tools(row, worlds: Worlds) -> dict[str, FunReasonTool]:
    """One tool object per tool, as verl's tool registry builds them from the tool config YAML."""
    out = {}
    for schema in json.loads(_info(row)["tools"]):
        tool = FunReasonTool(config={"type": "native"}, tool_schema=schema)
        tool.worlds = worlds
        out[tool.name] = tool
    return out


async def _call_tool(tools, name, arguments, tools_kwargs, agent_data):
    """verl 0.9.1's ToolAgentLoop._call_tool for a BaseTool: create, execute, release, every call."""
    tool, instance_id = tools[name], None
    try:
        kwargs = tools_kwargs.get(name, {})
        instance_id, _ = await tool.create(create_kwargs=kwargs.get("create_kwargs", {}))
        return await tool.execute(instance_id, json.loads(json.dumps(arguments)), agent_data=agent_data)
    except Exception as exc:  # noqa: BLE001 - verl turns any exception into the tool message's text
        return SimpleNamespace(text=f"Error executing tool '{name}': {exc}"), 0.0, {}
    finally:
        if instance_id:
            await tool.release(instance_id)


def _rollout(row, steps: list[list[dict]], worlds: Worlds, request_id: str) -> list[str]:
    """One rollout: each step's calls gathered concurrently, as verl runs one generation's calls."""
    tools = _tools(row, worlds)
    kwargs = _info(row)["tools_kwargs"]  # as exported: the row's start once, for every tool
    assert _info(row)["need_tools_kwargs"] and set(_info(row)["tool_selection"]) == set(tools)
    agent_data = SimpleNamespace(request_id=request_id, tools_kwargs=kwargs)

    async def run():
        texts = []
        for step in steps:
            answers = await asyncio.gather(*[_call_tool(tools, c["name"], c["arguments"], kwargs, agent_data)
                                             for c in step])
            texts += [a[0].text for a in answers]
        return texts
    return asyncio.run(run())


def _steps(calls: list[dict]) -> list[list[dict]]:
    by: dict[int, list[dict]] = {}
    for c in calls:
        by.setdefault(c.get("step", 0), []).append(c)
    return [by[k] for k in sorted(by)]


def _end_state(worlds: Worlds, request_id: str):
    return to_json_value(worlds._by_request[request_id].world.snapshot())


def _transcript(steps: list[list[dict]], texts: list[str]) -> str:
    """The decoded response of a hermes-format rollout: tool calls, then the tool responses."""
    out, i = [], 0
    for step in steps:
        out.append("\n".join(f"<tool_call>\n{json.dumps({'name': c['name'], 'arguments': c['arguments']})}\n</tool_call>"
                             for c in step))
        for _ in step:
            out.append(f"<tool_response>\n{texts[i]}\n</tool_response>")
            i += 1
    return "\n".join(out) + "\nDone."


def _richest(rows) -> dict:
    """The row with the most steps (several calls per step and a later step using an earlier result)."""
    return max(rows, key=lambda r: (len(_steps(_truth(r)["calls"])), len(_truth(r)["calls"]), _info(r)["sample_id"]))


def test_a_whole_turn_run_as_verl_runs_it_ends_in_the_ground_truths_state_and_scores_one(stage_chain):
    from funreason_pipeline.reward import compute_score

    rows = _rows(stage_chain)
    assert rows
    checked = 0
    for row in rows:
        worlds = Worlds()
        truth = _truth(row)
        steps = _steps(truth["calls"])
        texts = _rollout(row, steps, worlds, request_id=f"req-{checked}")
        # every call's answer is the recorded result, the state carried across calls by request id
        assert texts == [json.dumps(c["result"], ensure_ascii=False) for s in steps for c in s]
        assert _end_state(worlds, f"req-{checked}") == truth["end_state"]
        score = compute_score(row["data_source"], _transcript(steps, texts), row["reward_model"]["ground_truth"],
                              _info(row))
        assert score["score"] == 1.0 and score["valid"] == 1.0, score
        checked += 1
    assert checked == len(rows)
    assert max(len(_steps(_truth(r)["calls"])) for r in rows) >= 2  # some turn needs a multi-step loop


def _wrong_step(steps: list[list[dict]]) -> list[list[dict]]:
    """The same rollout with the last write's first string argument changed."""
    bad = copy.deepcopy(steps)
    for step in reversed(bad):
        for c in step:
            for k, v in c["arguments"].items():
                if isinstance(v, str):
                    c["arguments"][k] = v + " (changed)"
                    return bad
    raise AssertionError("no string argument to change")


def test_a_wrong_call_ends_in_another_state_and_scores_below_one(stage_chain):
    from funreason_pipeline.reward import compute_score

    rows = [r for r in _rows(stage_chain) if any(isinstance(v, str) for c in _truth(r)["calls"]
                                                 for v in c["arguments"].values())]
    row = _richest(rows)
    truth = _truth(row)
    bad = _wrong_step(_steps(truth["calls"]))
    worlds = Worlds()
    texts = _rollout(row, bad, worlds, request_id="wrong")
    score = compute_score(row["data_source"], _transcript(bad, texts), row["reward_model"]["ground_truth"], _info(row))
    assert score["score"] < 1.0 and score["valid"] == 0.0
    assert _end_state(worlds, "wrong") != truth["end_state"] or "response_mismatch" in score["reason"]


def test_rollouts_of_one_row_keep_separate_states_and_memory_stays_bounded(stage_chain):
    row = _richest(_rows(stage_chain))
    steps = _steps(_truth(row)["calls"])
    worlds = Worlds(max_worlds=2)
    _rollout(row, steps, worlds, request_id="a")
    _rollout(row, _wrong_step(steps), worlds, request_id="b")
    assert _end_state(worlds, "a") == _truth(row)["end_state"] != _end_state(worlds, "b")
    _rollout(row, steps[:1], worlds, request_id="c")
    assert set(worlds._by_request) == {"b", "c"}  # the oldest went first
    worlds.idle_seconds = 0.0
    _rollout(row, steps[:1], worlds, request_id="d")
    assert set(worlds._by_request) == {"d"}  # the idle ones were dropped on the next call


def test_a_name_outside_the_toolset_and_a_call_without_a_request_id_are_refused(stage_chain):
    row = _richest(_rows(stage_chain))
    worlds = Worlds()
    texts = _rollout(row, [[{"name": next(iter(_tools(row, worlds))), "arguments": {}}]], worlds, request_id="x")
    assert texts  # the tool answered (possibly with an error for missing arguments), never raised
    stranger = FunReasonTool(config={"type": "native"},
                             tool_schema={"type": "function", "function": {"name": "__class__", "parameters": {}}})
    stranger.worlds = worlds

    async def run(agent_data):
        iid, _ = await stranger.create(create_kwargs=create_kwargs(_info(row)))
        return await stranger.execute(iid, {}, agent_data=agent_data)
    response, _, metrics = asyncio.run(run(SimpleNamespace(request_id="x")))
    assert "unknown tool '__class__'" in response.text and metrics["ok"] is False
    with pytest.raises(RowError, match="no request id"):
        asyncio.run(run(None))
    with pytest.raises(RowError, match="lacks"):
        create_kwargs({"toolset": "tickets"})


def test_the_reward_loads_from_its_file_path_as_verl_loads_it_and_never_raises(stage_chain):
    path = ROOT / "funreason_pipeline" / "reward.py"
    spec = importlib.util.spec_from_file_location(f"custom_module_{hash(str(path))}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # before: dataclasses looked the module up in sys.modules and failed
    assert importlib.import_module("funreason_pipeline.reward").compute_score
    row = _richest(_rows(stage_chain))
    truth = _truth(row)
    steps = _steps(truth["calls"])
    good = "\n".join(f"<tool_call>{json.dumps({'name': c['name'], 'arguments': c['arguments']})}</tool_call>"
                     for s in steps for c in s)
    # verl merges reward_kwargs and passes more keywords (reward_router_address, ...)
    ok = module.compute_score(row["data_source"], good, row["reward_model"]["ground_truth"], _info(row),
                              reward_router_address="http://x", any_reward_kwarg=1)
    assert ok["score"] == 1.0
    for extra_info in (None, {}, "not a mapping", {"toolset": "tickets"}):
        out = module.compute_score(row["data_source"], good, row["reward_model"]["ground_truth"], extra_info)
        assert out["score"] == 0.0 and out["reason"], (extra_info, out)
    broken = module.compute_score(row["data_source"], good, json.dumps({"calls": "x"}), _info(row))
    assert broken["score"] == 0.0 and "ground_truth" in broken["reason"]


def test_the_process_store_is_shared_by_every_tool_object():
    a = FunReasonTool({"type": "native", "max_worlds": 7}, {"type": "function", "function": {"name": "a"}})
    b = FunReasonTool({"type": "native"}, {"type": "function", "function": {"name": "b"}})
    assert a.worlds is b.worlds is verl_tool.WORLDS and verl_tool.WORLDS.max_worlds == 7
    verl_tool.WORLDS.max_worlds = 4096


def _verl_accepts(entry: dict) -> list[str]:
    """verl 0.9.1's tool config rules (verl/tools/schemas.py OpenAIFunctionToolSchema and
    tool_registry.initialize_tools_from_config), restated: what it would reject, and keys it would drop."""
    problems = []
    if set(entry) != {"class_name", "config", "tool_schema"} or entry["config"].get("type") != "native":
        problems.append(f"entry keys {sorted(entry)}")
    fn = entry["tool_schema"]["function"]
    if not isinstance(fn.get("name"), str) or not isinstance(fn.get("description"), str):
        problems.append("function name/description")
    params = fn["parameters"]
    if params.get("type") != "object" or not isinstance(params.get("properties"), dict):
        problems.append("parameters")
    for name, prop in params["properties"].items():
        t = prop.get("type")
        if not (isinstance(t, str) or (isinstance(t, list) and all(isinstance(x, str) for x in t))):
            problems.append(f"{name}: type {t!r}")
        if set(prop) - {"type", "description", "enum"}:
            problems.append(f"{name}: keys verl drops {sorted(set(prop) - {'type', 'description', 'enum'})}")
    return problems


def test_the_tool_config_yaml_builds_every_tool_as_verls_registry_does(stage_chain):
    import yaml

    from funreason_pipeline.export.rl import tool_config_yaml, verl_tool_schema

    row = _richest(_rows(stage_chain))
    tools = json.loads(_info(row)["tools"])
    config = yaml.safe_load(tool_config_yaml(tools))
    assert [e["tool_schema"]["function"]["name"] for e in config["tools"]] == sorted(_info(row)["tool_selection"])
    for entry in config["tools"]:
        assert _verl_accepts(entry) == []
        module, cls = entry["class_name"].rsplit(".", 1)  # verl's get_tool_class
        tool = getattr(importlib.import_module(module), cls)(config=entry["config"], tool_schema=entry["tool_schema"])
        assert tool.name == entry["tool_schema"]["function"]["name"]
    # what verl's schema model would drop (nested items, defaults) moves into the description
    nested = {"type": "function", "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "required": ["xs"], "properties": {
            "xs": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}}}
    assert _verl_accepts({"class_name": "x", "config": {"type": "native"}, "tool_schema": nested})
    fixed = verl_tool_schema(nested)
    assert _verl_accepts({"class_name": "x", "config": {"type": "native"}, "tool_schema": fixed}) == []
    assert '"items"' in fixed["function"]["parameters"]["properties"]["xs"]["description"]
    assert fixed["function"]["parameters"]["properties"]["either"]["type"] == ["string", "integer"]
    clash = json.loads(json.dumps(nested))
    clash["function"]["description"] = "another"
    with pytest.raises(ValueError, match="two tools named 'f'"):
        tool_config_yaml([nested, clash])


def test_verl_settings_cover_every_row(stage_chain):
    from funreason_pipeline.export.rl import verl_settings

    rows = _rows(stage_chain)
    got = verl_settings(rows)
    assert got["rows"] == len(rows)
    assert got["max_prompt_length"] * 3 >= max(_info(r)["prompt_chars"] for r in rows)
    assert got["max_prompt_length"] & (got["max_prompt_length"] - 1) == 0  # a power of two
    assert got["max_parallel_calls"] == max(len(s) for r in rows for s in _steps(_truth(r)["calls"]))
    assert got["max_assistant_turns"] == 1 + max(len(_steps(_truth(r)["calls"])) for r in rows)
    longer = copy.deepcopy(_richest(rows))
    truth = _truth(longer)
    truth["calls"][0]["result"] = {"listing": "x" * 5000}
    longer["reward_model"]["ground_truth"] = json.dumps(truth)
    assert verl_settings([*rows, longer])["max_tool_response_length"] > 5000 > got["max_tool_response_length"]
    assert verl_settings([]) == {}


def test_the_day_export_holds_the_splits_the_tool_config_and_the_settings(stage_chain):
    import io

    import pyarrow.parquet as pq
    import yaml

    files = {Path(k).name: v for k, v in stage_chain["day"].exports.files.items()}
    read = lambda name: pq.read_table(io.BytesIO(files[name])).to_pylist()
    every, train, val = read("rl.parquet"), read("rl_train.parquet"), read("rl_validation.parquet")
    assert sorted(r["extra_info"]["sample_id"] for r in train + val) == sorted(r["extra_info"]["sample_id"] for r in every)
    assert {r["extra_info"]["split"] for r in train} <= {"train"} and {r["extra_info"]["split"] for r in val} <= {"validation"}
    names = {e["tool_schema"]["function"]["name"] for e in yaml.safe_load(files["verl_tools.yaml"])["tools"]}
    assert names == {n for r in every for n in r["extra_info"]["tool_selection"]}
    card = files["README.md"].decode()
    assert "verl settings these" in card and "max_parallel_calls" in card and "rl_train.parquet" in card
