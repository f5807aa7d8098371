"""Toolset config: the committed file is valid; bad configs fail with clear messages."""

import pytest

from funreason_pipeline.environments.base import EnvironmentConfigError
from funreason_pipeline.environments.bfcl import BFCL_CLASSES
from funreason_pipeline.environments.toolsets import (
    World,
    generate_scenario,
    load_toolsets,
    parse_toolsets,
    toolset_tools,
)


def test_committed_config_has_every_class_alone_and_cross_class_combinations():
    toolsets = load_toolsets()
    singles = {ts.classes[0] for ts in toolsets if len(ts.classes) == 1}
    assert set(BFCL_CLASSES) <= singles
    combos = [ts for ts in toolsets if len(ts.classes) > 1]
    assert len(combos) >= 4
    assert all(1 <= len(ts.classes) <= 3 for ts in toolsets)


def test_tool_names_unique_within_every_toolset():
    for ts in load_toolsets():
        names = [t.name for t in toolset_tools(ts)]
        assert len(names) == len(set(names)), ts.name


@pytest.mark.parametrize("text,message", [
    ("toolsets: [", "not valid YAML"),
    ("toolsets: []", "invalid toolset config"),
    ("toolsets:\n  - {name: a, classes: [NoSuchAPI]}", "unknown environment class 'NoSuchAPI'"),
    ("toolsets:\n  - {name: Bad Name, classes: [MathAPI]}", "must match"),
    ("toolsets:\n  - {name: a, classes: [MathAPI]}\n  - {name: a, classes: [TicketAPI]}", "names repeat"),
    ("toolsets:\n  - {name: a, classes: [MathAPI, TicketAPI, TradingBot, TravelAPI]}", "at most 3"),
    ("toolsets:\n  - {name: a}", "classes"),
])
def test_bad_configs_fail_clearly(text, message):
    with pytest.raises(EnvironmentConfigError, match=message):
        parse_toolsets(text, source="test.yaml")


def test_world_routes_calls_across_classes():
    ts = parse_toolsets("toolsets:\n  - {name: fm, classes: [GorillaFileSystem, MathAPI]}")[0]
    world = World.from_scenario(ts, generate_scenario(ts, 3))
    assert world.call("add", {"a": 1, "b": 2}).value == {"result": 3}
    assert world.call("pwd", {}).ok
    assert "unknown tool" in world.call("post_tweet", {"content": "x"}).error
