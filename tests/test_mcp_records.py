"""Arguments that servers accept: records built from an MCP server's item schemas (the official
memory server, real, installed by `make mcp-servers`), and the gate against a delete that deletes
nothing, which that server answers as done."""

from __future__ import annotations

import random

import pytest
from mcp_helpers import mcp_toolset

from funreason_pipeline.environments.toolsets import World, generate_scenario, toolset_tools
from funreason_pipeline.matching.arguments import ArgumentProvider
from funreason_pipeline.matching.values import harvest, harvest_rows
from funreason_pipeline.models import ToolCall
from funreason_pipeline.sampling.task import TurnNotKept, shape_turn


def _memory(seed: int = 1):
    ts = mcp_toolset("mcp_memory")
    tools = toolset_tools(ts)
    return World.from_scenario(ts, generate_scenario(ts, seed), tools), {t.name: t for t in tools}


def test_records_have_every_required_field_and_point_at_what_exists():
    world, specs = _memory()
    snap = world.snapshot()
    state, rows = harvest(snap), harvest_rows(snap)
    names = {v.value for v in state if v.key == "name"}
    provider = ArgumentProvider()
    made = 0
    for s in range(12):
        rng = random.Random(s)
        for tool, param in (("create_entities", "entities"), ("create_relations", "relations"),
                            ("add_observations", "observations"), ("delete_relations", "relations")):
            spec = specs[tool]
            args = provider.propose(spec, [], state, rng, rows=rows).args
            required = set(spec.properties[param]["items"]["required"])
            assert args[param] and all(required <= set(item) for item in args[param]), (tool, args)
            for item in args[param]:
                # the ends of a relation and the entity observed are things the memory holds
                for ref in ("from", "to", "entityName"):
                    assert ref not in item or item[ref] in names, (tool, item)
                assert item.get("from") is None or item["from"] != item["to"], (tool, item)
            res = world.copy().call(tool, args)
            assert res.ok, (tool, args, res.error)
            made += 1
        # a new entity gets a new name, not one the memory already holds
        new = provider.propose(specs["create_entities"], [], state, rng, rows=rows).args["entities"]
        assert not {e["name"] for e in new} & names, new
    assert made == 48


def test_a_relation_to_delete_is_one_the_memory_holds():
    world, specs = _memory()
    snap = world.snapshot()
    held = [{k: r[k] for k in ("from", "to", "relationType")} for r in snap["mcp:memory"]["state"]
            if r["type"] == "relation"]
    provider = ArgumentProvider()
    for s in range(10):
        args = provider.propose(specs["delete_relations"], [], harvest(snap), random.Random(s),
                                rows=harvest_rows(snap)).args
        assert all(rel in held for rel in args["relations"]), args


def test_deleting_what_is_not_there_is_not_a_turn():
    world, specs = _memory()
    args = {"relations": [{"from": "Grace Hopper", "to": "Nobody", "relationType": "met"}]}
    res = world.copy().call("delete_relations", args)
    assert res.ok  # the server says it is done...
    calls = [ToolCall(tool="delete_relations", arguments=args, result=res.value)]
    with pytest.raises(TurnNotKept, match="removes_nothing: delete_relations"):  # ...but nothing changed
        shape_turn(world, calls, target_pos=0, offset=0, specs=specs)
    real = {"relations": [{"from": "Grace Hopper", "to": "COBOL", "relationType": "influenced"}]}
    res = world.copy().call("delete_relations", real)
    calls = [ToolCall(tool="delete_relations", arguments=real, result=res.value)]
    assert shape_turn(world, calls, target_pos=0, offset=0, specs=specs).calls[0].tool == "delete_relations"


def test_beside_another_class_a_relation_points_only_at_the_memorys_entities():
    """In a toolset of the memory server and the clinic class, a relation's ends are entities of the
    memory, never the clinic's patients or staff (whose records also have a `name`)."""
    ts = mcp_toolset("mcp_memory_clinic")
    tools = toolset_tools(ts)
    specs = {t.name: t for t in tools}
    world = World.from_scenario(ts, generate_scenario(ts, 2), tools)
    snap = world.snapshot()
    entities = {r["name"] for r in snap["mcp:memory"]["state"] if r["type"] == "entity"}
    others = {v.value for v in harvest({k: v for k, v in snap.items() if k != "mcp:memory"}) if v.key == "name"}
    assert others  # the clinic's names are there to be taken by mistake
    provider = ArgumentProvider()
    for s in range(15):
        args = provider.propose(specs["create_relations"], [], harvest(snap), random.Random(s),
                                rows=harvest_rows(snap)).args
        for rel in args["relations"]:
            assert {rel["from"], rel["to"]} <= entities, rel
