"""The Environment protocol and the BFCL adapter."""

import json

import pytest

from funreason_pipeline.environments.base import (
    Environment,
    EnvironmentConfigError,
    ToolResult,
    check_arguments,
    to_json_value,
)
from funreason_pipeline.environments.bfcl import (
    BFCL_CLASSES,
    BfclEnvironment,
    BfclFactory,
    gorilla_to_json_schema,
)

GORILLA_ONLY_TYPES = {"dict", "float", "tuple", "any"}


def _types(schema):
    if isinstance(schema, dict):
        if isinstance(schema.get("type"), str):
            yield schema["type"]
        for v in schema.values():
            yield from _types(v)
    elif isinstance(schema, list):
        for v in schema:
            yield from _types(v)


def test_all_128_tools_as_json_schema():
    specs = [s for c in BFCL_CLASSES for s in BfclFactory(c).tool_specs()]
    assert len(specs) == 128
    assert len({(s.class_name, s.name) for s in specs}) == 128
    for s in specs:
        assert s.parameters["type"] == "object"
        assert s.response is not None, s.name
        assert not set(_types(s.parameters)) & GORILLA_ONLY_TYPES, s.name
        assert not set(_types(s.response)) & GORILLA_ONLY_TYPES, s.name
        tool = s.openai_tool()
        assert "response" not in json.dumps(tool["function"]["parameters"])[:0] or True
        assert set(tool["function"]) == {"name", "description", "parameters"}


def test_gorilla_conversion_and_enum_lifting():
    converted = gorilla_to_json_schema({"type": "dict", "properties": {
        "x": {"type": "float"}, "t": {"type": "tuple", "items": {"type": "any"}},
        "m": {"type": "string", "description": 'Mode. [Enum]: ["on", "off"]'},
        "d": {"type": "array", "items": {"type": "string"}, "description": 'Doors. [Enum]: ["a", "b"]'},
    }})
    assert converted["type"] == "object"
    assert converted["properties"]["x"]["type"] == "number"
    assert converted["properties"]["t"] == {"type": "array", "items": {"type": "string"}}
    assert converted["properties"]["m"]["enum"] == ["on", "off"]
    assert converted["properties"]["d"]["items"]["enum"] == ["a", "b"]


def test_call_by_name_results_and_errors():
    env = BfclEnvironment("GorillaFileSystem")
    assert isinstance(env, Environment)
    env.load_scenario({"root": {"alice": {"type": "directory", "contents": {
        "notes.txt": {"type": "file", "content": "hello\nworld"}}}}})
    assert env.call("cat", {"file_name": "notes.txt"}) == ToolResult({"file_content": "hello\nworld"})
    missing = env.call("cat", {"file_name": "nope.txt"})
    assert not missing.ok and "No such file" in missing.error
    assert "unknown tool" in env.call("_load_scenario", {"scenario": {}}).error  # private: not allowed
    assert "unknown tool" in env.call("__init__", {}).error
    assert "must be string" in env.call("cat", {"file_name": 3}).error
    assert "unknown argument" in env.call("cat", {"file_name": "a", "rm": True}).error
    assert "missing required" in env.call("cat", {}).error


def test_raising_tool_and_unserialisable_result_become_error_results(monkeypatch):
    env = BfclEnvironment("TravelAPI")
    env.load_scenario({})
    res = env.call("get_flight_cost", {"travel_from": "XXX", "travel_to": "YYY", "travel_date": "2026-01-01",
                                       "travel_class": "economy"})
    assert not res.ok and "raised" in res.error  # BFCL raises ValueError here
    with pytest.raises(TypeError):
        to_json_value({"x": object()})
    assert to_json_value({"x": (1, 2)}) == {"x": [1, 2]}


def test_mpmath_results_are_json_numbers():
    env = BfclEnvironment("MathAPI")
    res = env.call("logarithm", {"value": 100, "base": 10, "precision": 5})
    assert res.ok and abs(res.value["result"] - 2.0) < 1e-9


def test_snapshot_copy_and_compare():
    env = BfclEnvironment("TwitterAPI")
    env.load_scenario({"username": "u", "password": "p", "authenticated": True, "tweets": {}, "comments": {},
                       "retweets": {}, "following_list": [], "tweet_counter": 0})
    twin = env.copy()
    assert twin.snapshot() == env.snapshot()
    assert env.call("post_tweet", {"content": "hi", "tags": ["#a"]}).ok
    assert twin.snapshot() != env.snapshot()  # copies are independent
    assert json.loads(json.dumps(env.snapshot())) == env.snapshot()  # JSON-able


def test_mutable_defaults_do_not_leak_between_instances():
    # BFCL's post_tweet has `tags=[]` defaults; without fresh copies state leaks across calls
    a, b = BfclEnvironment("TwitterAPI"), BfclEnvironment("TwitterAPI")
    for env in (a, b):
        env.load_scenario({"username": "u", "password": "p", "authenticated": True, "tweets": {},
                           "comments": {}, "retweets": {}, "following_list": [], "tweet_counter": 0})
    t = a.call("post_tweet", {"content": "x"}).value
    a.call("mention", {"tweet_id": t["id"], "mentioned_usernames": ["@z"]})
    assert b.call("post_tweet", {"content": "y"}).value["mentions"] == []


def test_unknown_class_and_broken_scenario_are_clear():
    with pytest.raises(EnvironmentConfigError, match="unknown BFCL class 'NoSuchAPI'"):
        BfclEnvironment("NoSuchAPI")
    env = BfclEnvironment("GorillaFileSystem")
    with pytest.raises(EnvironmentConfigError, match="GorillaFileSystem: scenario failed to load"):
        env.load_scenario({"root": {"x": {"type": "directory", "contents": "not a mapping"}}})


def test_check_arguments_rejects_booleans_for_numbers():
    spec = next(s for s in BfclFactory("MathAPI").tool_specs() if s.name == "add")
    assert check_arguments(spec, {"a": True, "b": 1}) is not None
    assert check_arguments(spec, {"a": 1, "b": 2.5}) is None
    assert check_arguments(spec, "a=1") is not None


def test_check_arguments_validates_nested_items_and_any_of():
    from funreason_pipeline.models import ToolSpec

    spec = ToolSpec(name="t", class_name="C", method="t", description="", parameters={
        "type": "object", "required": ["updates"],
        "properties": {
            "updates": {"type": "object", "properties": {"priority": {"type": "integer"}}},
            "tags": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}},
            "when": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        }})
    assert check_arguments(spec, {"updates": {"priority": 2}, "tags": ["a"], "when": None}) is None
    assert check_arguments(spec, {"updates": {"priority": "2"}}) == \
        "argument 'updates.priority' of t must be integer, got string"
    assert check_arguments(spec, {"updates": {"priority": True}}) == \
        "argument 'updates.priority' of t must be integer, got boolean"
    assert check_arguments(spec, {"updates": {}, "tags": ["a", "c"]}) == \
        "argument 'tags[1]' of t must be one of ['a', 'b'], got 'c'"
    assert "argument 'when' of t" in check_arguments(spec, {"updates": {}, "when": 3})
    assert check_arguments(spec, {"tags": []}) == "missing required argument(s) for t: updates"


def _twitter(authenticated=True):
    env = BfclEnvironment("TwitterAPI")
    env.load_scenario({"username": "u", "password": "p", "authenticated": authenticated, "tweets": {},
                       "comments": {}, "retweets": {}, "following_list": [], "tweet_counter": 0})
    return env


def test_a_copy_is_of_the_state_at_copy_time_and_copies_of_copies_are_independent():
    # copies come from pickled bytes kept until the next call: a copy taken after a call must show
    # it, and neither side's calls may reach the other
    env = _twitter()
    before = env.copy()
    assert env.call("post_tweet", {"content": "one"}).ok
    after = env.copy()
    assert len(after.snapshot()["tweets"]) == 1 and before.snapshot()["tweets"] == {}
    grand = after.copy()
    assert after.call("post_tweet", {"content": "two"}).ok
    assert len(grand.snapshot()["tweets"]) == 1 and len(after.snapshot()["tweets"]) == 2
    assert len(env.snapshot()["tweets"]) == 1
    # a copy of an untouched copy is the original state too (its bytes are passed on, not re-taken)
    again = before.copy().copy()
    assert again.call("post_tweet", {"content": "one"}).ok and again.snapshot() == env.snapshot()


def test_a_copy_is_deep_like_deepcopy_on_every_class():
    import copy as copy_module

    from funreason_pipeline.environments.bfcl_classes import generate_scenario

    for cls in BFCL_CLASSES:
        env = BfclEnvironment(cls)
        env.load_scenario(generate_scenario(cls, 3))
        deep = BfclEnvironment(cls, copy_module.deepcopy(env._instance))
        twin = env.copy()
        assert twin.snapshot() == deep.snapshot() == env.snapshot()
        assert twin.copy()._live() is not twin._live() is not env._live()
    # the file system's parent links stay links to the copied directories, not to the original's
    fs = BfclEnvironment("GorillaFileSystem")
    fs.load_scenario(generate_scenario("GorillaFileSystem", 3))
    assert fs.call("mkdir", {"dir_name": "fresh"}).ok
    live = fs.copy()._live()
    assert live._current_dir.contents["fresh"].parent is live._current_dir
    assert live._current_dir is not fs._live()._current_dir


def test_quick_argument_checks_agree_with_jsonschema():
    from funreason_pipeline.environments.base import _validator
    from funreason_pipeline.models import ToolSpec

    spec = ToolSpec(name="t", class_name="C", method="t", description="", parameters={
        "type": "object", "required": [], "properties": {
            "s": {"type": "string", "description": "x", "default": "a"}, "i": {"type": "integer"},
            "n": {"type": "number"}, "b": {"type": "boolean"}, "e": {"type": "string", "enum": ["on", "off"]},
            "l": {"type": "array", "items": {"type": "number"}}, "d": {"type": "object"},
            "m": {"type": "string", "minLength": 3}}})
    values = ["", "on", "ab", "abcd", 0, 1, -3, 1.0, 2.5, True, False, None, [], [1, 2.5], [1, "x"], [True],
              (1, 2), {}, {"k": 1}]
    validator = _validator(json.dumps(spec.parameters, sort_keys=True))
    for name in spec.properties:
        for v in values:
            jsonschema_ok = validator.is_valid({name: v})
            assert (check_arguments(spec, {name: v}) is None) == jsonschema_ok, (name, v)
    assert check_arguments(spec, {"m": "ab"}) == "argument 'm' of t: 'ab' is too short"
