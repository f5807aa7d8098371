"""Issue 12: the environments people actually write, and no silent success.

Two example environments of different shapes (tests/envs/): `bank` keeps per-seed credentials in a
`{username: pin}` mapping and returns plain dicts; `depot` returns bare `id`s whose meaning is said
only in parameter descriptions, and its session expires mid-trajectory. A deliberately broken one
(`broken`: no tool ever succeeds) must make `cli demo` exit non-zero with a clear message.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal, NotRequired, Optional, TypedDict

import duckdb
import pytest
from cli_helpers import clean_env, run_docs_verbatim
from graph_helpers import user_edges
from pydantic import BaseModel, Field

from funreason_pipeline import config
from funreason_pipeline.environments.base import EnvironmentConfigError
from funreason_pipeline.environments.toolsets import (
    generate_scenario,
    load_toolsets,
    parse_toolsets,
)
from funreason_pipeline.environments.user import UnusableType, UserFactory, derive_tools, hint_schema
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import (
    build_edges,
    described_producers,
    edgeless_hint,
    observed_response_schema,
)
from funreason_pipeline.matching.arguments import ArgumentProvider
from funreason_pipeline.matching.values import KEY, VALUE, harvest, harvest_rows
from funreason_pipeline.models import Edge, Rejection, ToolSpec, Trajectory
from funreason_pipeline.sampling.sampler import DirectedSampler, TargetPlanner
from funreason_pipeline.sampling.yield_check import phase1_yield
from funreason_pipeline.seeds import stable_seed
from funreason_pipeline.verify.replay import replay_trajectory

ROOT = Path(__file__).resolve().parent.parent
ENVS = ROOT / "tests" / "envs" / "toolsets.yaml"
DAY = "2026-11-26"

# the dependencies each example really has: (kind, producer, consumer[, parameter])
EXPECTED = {
    "bank": {
        ("state", "login", "list_accounts"), ("state", "login", "get_account"), ("state", "login", "open_account"),
        ("state", "login", "rename_account"), ("state", "login", "deposit"), ("state", "login", "transfer"),
        ("state", "login", "logout"),
        ("data", "list_accounts", "get_account", "account_id"), ("data", "list_accounts", "transfer", "from_account"),
        ("data", "list_accounts", "transfer", "to_account"), ("data", "open_account", "rename_account", "account_id"),
        ("data", "list_accounts", "deposit", "account_id"), ("data", "transfer", "get_transfer", "transfer_id"),
    },
    "depot": {
        ("state", "start_shift", "list_parcels"), ("state", "start_shift", "register"),
        ("state", "start_shift", "ship"), ("state", "start_shift", "end_shift"),
        ("data", "list_parcels", "inspect", "parcel"), ("data", "register", "inspect", "parcel"),
        ("data", "list_parcels", "ship", "parcel"), ("data", "ship", "track", "shipment"),
        ("data", "ship", "recall", "shipment"),
    },
}


@pytest.fixture(scope="module")
def envs():
    sys.path.insert(0, str(ROOT))  # `tests.envs.bank` imports from the project root, as in the docs
    return {ts.name: ts for ts in parse_toolsets(ENVS.read_text(), source=str(ENVS), base_dir=ENVS.parent)}


def _edges(ts):
    """(tools, edges, report) as the graph stage probes them, once per session (graph_helpers)."""
    return user_edges(ts)


def _found(edges: list[Edge]) -> set[tuple]:
    return {(e.kind, e.src_tool, e.dst_tool) for e in edges} | \
        {(e.kind, e.src_tool, e.dst_tool, e.param) for e in edges if e.kind == "data"}


@pytest.mark.parametrize("name", ["bank", "depot"])
def test_examples_have_the_expected_edges(envs, name):
    _, edges, _ = _edges(envs[name])
    missing = EXPECTED[name] - _found(edges)
    assert not missing, f"{name}: edges not found: {sorted(missing)}"


def test_depot_edges_come_from_descriptions_confirmed_by_execution(envs):
    """`ship` returns `{"id": ...}`; only "The id returned by ship" links it to track's `shipment`."""
    tools, edges, _ = _edges(envs["depot"])
    by = {(e.src_tool, e.dst_tool, e.param): e for e in edges if e.kind == "data"}
    evidence = json.loads(by[("ship", "track", "shipment")].evidence)
    assert evidence["method"] == "description" and by[("ship", "track", "shipment")].src_field == "id"
    # a description naming a tool is only a candidate: end_shift's result never feeds a parcel
    candidates = described_producers(tools)
    assert ("ship", "track", "shipment") in candidates
    assert not any(e.src_tool == "end_shift" for e in edges if e.kind == "data")


def test_a_named_producer_whose_values_do_not_work_is_not_an_edge(envs):
    """A wrong description ("as listed by list_parcels" on track) is rejected by execution."""
    tools, _, _ = _edges(envs["depot"])
    spec = {t.name: t for t in tools}["track"]
    props = {"shipment": {"type": "string", "description": "A parcel id as listed by list_parcels."}}
    lying = spec.model_copy(update={"parameters": {**spec.parameters, "properties": props}})
    tools = [lying if t.name == "track" else t for t in tools]
    assert ("list_parcels", "track", "shipment") in described_producers(tools)
    ts = envs["depot"]
    scenarios = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(2)]
    edges = build_edges(ts, tools, scenarios)
    assert not [e for e in edges if (e.src_tool, e.dst_tool, e.param) == ("list_parcels", "track", "shipment")]


@pytest.mark.parametrize("name", ["bank", "depot"])
def test_examples_reach_every_tool_replay_and_have_long_dialogues(envs, name):
    from funreason_pipeline.sampling.phase1 import sample_partition

    ts = envs[name]
    tools, edges, _ = _edges(ts)
    result = sample_partition(ts, tools, edges, DAY, 6)
    assert len(result.trajectories) == 6
    assert not result.uncovered, f"never targeted: {result.uncovered}"
    called = {c.tool for t in result.trajectories for c in t.flat_calls()}
    assert called == {t.name for t in tools}
    for traj in result.trajectories:  # on fresh instances, from the stored JSON
        problems, _ = replay_trajectory(Trajectory.model_validate_json(traj.model_dump_json()), ts, tools)
        assert not problems, problems
    assert sum(len(t.turns) for t in result.trajectories) / 6 >= 4
    # the calls really are dependent: logins before account calls, ids from earlier results
    assert any(c.after for t in result.trajectories for c in t.flat_calls())
    assert any(c.sources for t in result.trajectories for c in t.flat_calls())


def test_a_username_and_its_pin_are_proposed_together_and_learned():
    """Per-seed credentials in a `{username: pin}` mapping: drawn one by one they rarely match."""
    login = ToolSpec(name="login", class_name="X", method="login", description="Log in.", parameters={
        "type": "object", "required": ["username", "pin"],
        "properties": {"username": {"type": "string"}, "pin": {"type": "string"}}})
    users = {f"user{i}": f"{1000 + i}" for i in range(6)}
    state = {"users": users, "session": None}
    rows = harvest_rows({"X": state})
    assert sum(1 for r in rows if r.where == "users" and [f for f, _ in r.fields] == [KEY, VALUE]) == 6

    def successes(with_rows: bool) -> int:
        provider, rng, ok = ArgumentProvider(), random.Random(3), 0
        for _ in range(60):
            proposal = provider.propose(login, [], harvest({"X": state}), rng, rows=rows if with_rows else None)
            good = users.get(proposal.args.get("username")) == proposal.args.get("pin")
            provider.learn(proposal, good)
            ok += good
        return ok

    assert successes(with_rows=False) <= 3
    assert successes(with_rows=True) >= 30


def test_response_schema_of_a_plain_dict_is_inferred_from_results():
    schema = observed_response_schema([{"accounts": [{"account_id": "A1", "balance": 3.0}]}, {"accounts": []}])
    assert schema["properties"]["accounts"]["items"]["properties"]["account_id"] == {"type": "string"}
    assert observed_response_schema(["a string", 3]) is None


def test_an_error_naming_a_state_finds_the_tool_that_cures_it(envs):
    """"not logged in" names no tool ("login" is too generic a word to match): the state edges'
    probe evidence does, and so do the state fields a call changed ("session expired")."""
    ts = envs["bank"]
    tools, edges, _ = _edges(ts)
    sampler = DirectedSampler(ts, tools, ApiGraph(tools, edges))
    assert max(sampler._named_by("not logged in", exclude=set()).items(), key=lambda kv: kv[1])[0] == "login"
    bare = [e for e in edges if e.kind == "data"]  # without the state edges, nothing points at login
    assert "login" not in DirectedSampler(ts, tools, ApiGraph(tools, bare))._named_by("not logged in", set())

    ts = envs["depot"]
    tools, edges, _ = _edges(ts)
    sampler = DirectedSampler(ts, tools, ApiGraph(tools, edges))
    assert "start_shift" not in sampler._named_by("session expired", set())
    rng = random.Random(0)
    sampler.sample("t", 1, generate_scenario(ts, 1), TargetPlanner(sampler.graph, rng))
    assert "start_shift" in sampler._named_by("session expired", set())


# ---- no silent success -----------------------------------------------------------------------------

def _verdict(accepted=6, targeted=("a", "b", "c", "d"), edges=5, rejections=()):
    return phase1_yield("ts", DAY, 6, accepted, ["a", "b", "c", "d"], set(targeted), edges, list(rejections))


def test_yield_gate_passes_a_full_partition_and_rejects_each_shortfall():
    assert _verdict().passed
    low = _verdict(accepted=5)
    assert not low.passed and "5 of 6 trajectories accepted" in low.message
    narrow = _verdict(targeted=("a", "b"))
    assert not narrow.passed and "2 of 4 tools reached" in narrow.message
    err = Rejection(item_id="x", reason="tool_error", detail=json.dumps({"tool": "login", "error": "invalid credentials"}))
    empty = _verdict(accepted=0, targeted=(), edges=0, rejections=[err] * 3)
    assert not empty.passed
    assert "login: 'invalid credentials' x3" in empty.message and "no edges" in empty.message
    assert "try:" in empty.message


def test_edgeless_hint_names_the_likely_cause():
    tool = ToolSpec(name="t", class_name="X", method="t", description="", parameters={"type": "object"})
    assert "no call of any" in edgeless_hint([tool], {"worked": [], "errors": {"t": "not logged in"}, "scenarios": 4})
    assert "none returns named fields" in edgeless_hint([tool], {"worked": ["t"], "errors": {}})


def test_toolsets_extra_adds_to_the_built_in_ones_and_names_clashes(monkeypatch, tmp_path, envs):
    built_in = {t.name for t in load_toolsets()}
    monkeypatch.setenv("FUNREASON_TOOLSETS_EXTRA", str(ENVS))
    names = {t.name for t in load_toolsets()}
    assert names == built_in | {"bank", "depot", "broken"}
    clash = tmp_path / "clash.yaml"
    clash.write_text("toolsets:\n  - {name: vehicle, classes: [VehicleControlAPI]}\n")
    monkeypatch.setenv("FUNREASON_TOOLSETS_EXTRA", f"{ENVS}{os.pathsep}{clash}")
    with pytest.raises(Exception, match="'vehicle' is defined in both"):
        load_toolsets()


def test_cli_sets_a_default_dagster_home(monkeypatch, tmp_path):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setattr(config, "DATA_DIR", tmp_path / "data")
    home = config.ensure_dagster_home()
    assert home == tmp_path / "data" / "dagster_home" and os.environ["DAGSTER_HOME"] == str(home)
    assert (home / "dagster.yaml").read_text() == (ROOT / "dagster.yaml").read_text()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "mine"))
    assert config.ensure_dagster_home() == tmp_path / "mine"




@pytest.mark.heavy  # a whole `cli demo` of three toolsets
def test_cli_demo_on_the_examples_and_a_broken_environment(tmp_path):
    """Through the real CLI and Dagster: the examples pass their blocking checks with >= 4 user turns
    per dialogue; the broken toolset makes `cli demo` exit 1 with a message naming it and its error."""
    db = tmp_path / "db.duckdb"
    env = clean_env(FUNREASON_TOOLSETS_EXTRA=str(ENVS), FUNREASON_DB=str(db), DAGSTER_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--day", DAY,
                           "--toolsets", "bank,depot,broken", "--workers", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    failed = [line for line in proc.stderr.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "'broken'" in failed[0] and "0 of 6 trajectories accepted" in failed[0]
    assert "the vault is jammed" in proc.stderr and "try:" in proc.stderr
    con = duckdb.connect(str(db), read_only=True)
    stats = {ts: (n, turns) for ts, n, turns in con.execute(
        "SELECT toolset, count(*), avg(n_turns) FROM dialogues GROUP BY toolset").fetchall()}
    for name in ("bank", "depot"):
        n, turns = stats[name]
        assert n == 6 and turns >= 4, (name, n, turns)
    assert "broken" not in stats
    assert con.execute("SELECT count(*) FROM rejections WHERE reason = 'yield_below_minimum'").fetchone()[0] == 1


# ---- the docs page, verbatim --------------------------------------------------------------------------

DOCS = ROOT / "docs" / "user_environments.md"


@pytest.mark.heavy  # docs verbatim: every command of the docs page in a fresh copy, demos included
def test_docs_commands_run_verbatim_in_a_fresh_copy(tmp_path):
    """Every `<!-- run -->` block of docs/user_environments.md, as written, in a copy of the tracked
    files (a fresh clone plus this checkout's .venv), with no FUNREASON_* or DAGSTER_HOME set."""
    clone = tmp_path / "clone"
    outputs = run_docs_verbatim(DOCS, clone, ROOT)  # steps 1-3: the user writes the page's files
    assert len(outputs) >= 5
    assert "data search_books -> borrow book_id" in outputs[0] and "state sign_in -> borrow" in outputs[0]
    assert "graph edges exercised" in outputs[1]
    assert (clone / "data" / "dagster_home" / "dagster.yaml").exists()  # the default DAGSTER_HOME
    assert "openai.jsonl" in outputs[-1]


# ---- type hints to JSON Schema (pydantic's TypeAdapter, fitted to the tool dialect) ---------------------
# Module level: this file's annotations are strings (`from __future__ import annotations`), resolved here.


@dataclasses.dataclass
class Leg:
    stop: str
    minutes: int = 5
    tags: list[str] = dataclasses.field(default_factory=list)
    seen: bool = dataclasses.field(default=False, init=False)  # not an argument: never in the schema


@dataclasses.dataclass
class Route:
    legs: list[Leg]
    name: Annotated[str, "What the driver calls it."]
    via: Optional[Leg] = None  # noqa: UP045 - Optional[X] is X


class Parcel(TypedDict):
    parcel_id: str
    weight: NotRequired[int]  # a string annotation here: typing's __required_keys__ alone gets it wrong
    notes: NotRequired[list[Annotated[str, "One remark."]]]


class Filters(TypedDict, total=False):
    city: str


class Folder(TypedDict):
    name: str
    children: list[Folder]


class Pin(BaseModel):
    lat: float
    lon: float = Field(description="Degrees east.")


class Stop(BaseModel):
    label: str | None = None  # a model keeps pydantic's own schema: nullable, with its default
    pins: list[Pin]


class Speed(enum.Enum):
    SLOW = "slow"
    FAST = "fast"


def test_a_dataclass_in_a_list_is_its_init_fields_required_when_without_default():
    leg = {"type": "object", "properties": {"stop": {"type": "string"}, "minutes": {"type": "integer"},
                                            "tags": {"type": "array", "items": {"type": "string"}}},
           "required": ["stop"]}
    assert hint_schema(list[Leg]) == {"type": "array", "items": leg}
    assert hint_schema(Route) == {"type": "object", "properties": {
        "legs": {"type": "array", "items": leg},
        "name": {"type": "string", "description": "What the driver calls it."},
        "via": leg}, "required": ["legs", "name"]}


def test_typeddict_not_required_keys_and_nested_descriptions():
    assert hint_schema(Parcel) == {"type": "object", "properties": {
        "parcel_id": {"type": "string"}, "weight": {"type": "integer"},
        "notes": {"type": "array", "items": {"type": "string", "description": "One remark."}}},
        "required": ["parcel_id"]}
    assert hint_schema(Filters) == {"type": "object", "properties": {"city": {"type": "string"}}, "required": []}
    # a recursive structure is an object at the point where it repeats
    assert hint_schema(Folder)["properties"]["children"] == {"type": "array", "items": {"type": "object"}}


def test_a_pydantic_model_with_a_nested_model_is_inlined_without_titles():
    schema = hint_schema(dict[str, Stop])
    assert "$ref" not in json.dumps(schema) and '"title"' not in json.dumps(schema)
    stop = schema["additionalProperties"]
    assert stop["required"] == ["pins"]
    assert stop["properties"]["label"] == {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert stop["properties"]["pins"]["items"] == {"properties": {
        "lat": {"type": "number"}, "lon": {"description": "Degrees east.", "type": "number"}},
        "required": ["lat", "lon"], "type": "object"}


def test_dialect_optional_enum_tuple_set_and_library_types():
    assert hint_schema(Speed | None) == {"enum": ["slow", "fast"], "type": "string"}
    assert hint_schema(Literal[1, "a"]) == {"enum": [1, "a"]}  # mixed: no single type
    assert hint_schema(int | str | None) == {"anyOf": [{"type": "integer"}, {"type": "string"}]}
    assert hint_schema(tuple[int, int]) == {"type": "array", "items": {"type": "integer"}}
    assert hint_schema(tuple[int, str]) == {"type": "array"}
    assert hint_schema(frozenset[str]) == {"type": "array", "items": {"type": "string"}}
    assert hint_schema(dict[int, list]) == {"type": "object", "additionalProperties": {"type": "array"}}
    assert hint_schema(Annotated[int, Field(ge=1, le=3)]) == {"type": "integer", "maximum": 3, "minimum": 1}
    assert hint_schema(uuid.UUID) == {"type": "string", "format": "uuid"}  # pydantic knows it: usable now


class Dispatcher:
    def route(self, plan: Route, parcels: list[Parcel], ref: uuid.UUID) -> Parcel:
        """Plan a route.

        Args:
            plan: The route to drive.
            parcels: What to carry.
            ref: The booking reference.
        """
        return {"parcel_id": str(ref), "weight": len(plan.legs) + len(parcels)}


def test_hints_give_a_tool_spec_and_arguments_are_converted_by_the_same_types():
    [tool] = derive_tools(Dispatcher, "tests:Dispatcher", {})
    props = tool.spec.parameters["properties"]
    assert props["plan"]["properties"]["legs"]["items"]["required"] == ["stop"]
    assert props["parcels"]["items"]["required"] == ["parcel_id"]
    assert props["ref"] == {"type": "string", "format": "uuid", "description": "The booking reference."}
    assert tool.spec.response["required"] == ["parcel_id"]
    env = UserFactory(f"{__name__}:Dispatcher").create()
    ref = "12345678-1234-5678-1234-567812345678"
    res = env.call("route", {"plan": {"legs": [{"stop": "A"}, {"stop": "B", "minutes": 2}], "name": "loop"},
                             "parcels": [{"parcel_id": "P1"}], "ref": ref})
    assert res.ok and res.value == {"parcel_id": ref, "weight": 3}
    assert not env.call("route", {"plan": {"legs": [{"minutes": 2}], "name": "x"}, "parcels": [], "ref": ref}).ok


class Callback:
    pass


def test_hints_without_a_json_schema_are_unusable_with_a_clear_message():
    with pytest.raises(UnusableType, match=r"type 'object' has no JSON Schema"):
        hint_schema(list[object])  # pydantic would read it as Any: too vague to make arguments for
    with pytest.raises(UnusableType, match=r"'Callback' has no JSON Schema \(Unable to generate pydantic-core schema"):
        hint_schema(Callback)
    with pytest.raises(UnusableType, match=r"Callable.* has no JSON Schema \(Cannot generate a JsonSchema"):
        hint_schema(dict[str, Callable[[int], int]])

    class Hooks:
        def on(self, handler: Callable[[int], int]) -> dict:
            return {}

    with pytest.raises(EnvironmentConfigError, match=r"parameter 'handler'.*has no JSON Schema"):
        derive_tools(Hooks, "tests:Hooks", {})
