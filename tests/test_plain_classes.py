"""Plain classes: environments written the way app code is, without following the docs' advice
(tests/envs/plain_*.py; plain_shop.py is the lead's class verbatim). The generic machinery must
yield on them: credentials in unnamed mappings, dataclass and bare results, errors returned instead
of raised, ids that are ints. Each mechanism has a unit test that fails without it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import random
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest
from cli_helpers import clean_env
from graph_helpers import user_edges
from pydantic import BaseModel

from funreason_pipeline.environments.toolsets import generate_scenario, parse_toolsets, toolset_tools
from funreason_pipeline.environments.user import UserFactory
from funreason_pipeline.environments.user_results import plain_result, returned_error
from funreason_pipeline.graph.api_graph import ApiGraph
from funreason_pipeline.graph.build import (
    bare_result_candidates,
    build_edges,
    observed_response_schema,
    response_fields,
)
from funreason_pipeline.matching.arguments import ArgumentProvider, Proposal
from funreason_pipeline.matching.names import result_key
from funreason_pipeline.matching.values import harvest, harvest_rows
from funreason_pipeline.models import ToolSpec

ROOT = Path(__file__).resolve().parent.parent
PLAIN = ROOT / "tests" / "envs" / "plain_toolsets.yaml"
DAY = "2026-11-26"


@pytest.fixture(scope="module")
def plain():
    sys.path.insert(0, str(ROOT))
    return {ts.name: ts for ts in parse_toolsets(PLAIN.read_text(), source=str(PLAIN), base_dir=PLAIN.parent)}


def _edges(ts):
    """(tools, edges, report) as the graph stage probes them, once per session (graph_helpers)."""
    return user_edges(ts)


def _spec(name: str, props: dict, required: list[str] | None = None) -> ToolSpec:
    return ToolSpec(name=name, class_name="X", method=name, description="", parameters={
        "type": "object", "properties": props, "required": list(props) if required is None else required})


# the dependencies the plain classes really have, found without any help from the classes
EXPECTED = {
    "plain_shop": {("state", "login", "add_to_cart"), ("state", "add_to_cart", "checkout"),
                   ("data", "checkout", "order_status", "order_id"), ("data", "checkout", "cancel_order", "order_id"),
                   ("data", "search", "add_to_cart", "sku")},
    "plain_kanban": {("state", "login", "create"), ("state", "login", "move"), ("state", "login", "assign"),
                     ("state", "login", "comment"), ("state", "login", "delete"),
                     ("data", "create", "get", "id"), ("data", "create", "move", "id")},
    "plain_planner": {("data", "add_task", "complete_task", "task_id"), ("data", "schedule_event", "move_event", "event_id"),
                      ("data", "create_project", "add_task", "project")},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_plain_classes_have_their_dependencies_in_the_graph(plain, name):
    _, edges, report = _edges(plain[name])
    found = {(e.kind, e.src_tool, e.dst_tool) for e in edges} | \
        {(e.kind, e.src_tool, e.dst_tool, e.param) for e in edges if e.kind == "data"}
    assert not EXPECTED[name] - found, sorted(EXPECTED[name] - found)
    assert not report["errors"], report["errors"]  # every tool worked while probing


# ---- what a method returns -------------------------------------------------------------------------

class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Item:
    id: int
    color: Color
    when: dt.date
    tags: set[str]
    _secret: str = "hidden"


class Point(NamedTuple):
    x: int
    y: int


class Model(BaseModel):
    name: str


def test_app_types_in_results_become_json():
    got = plain_result({"item": Item(3, Color.RED, dt.date(2026, 1, 2), {"b", "a"}), "p": Point(1, 2),
                        "m": Model(name="n"), Color.RED: (1, 2)})
    assert got == {"item": {"id": 3, "color": "red", "when": "2026-01-02", "tags": ["a", "b"]},
                   "p": {"x": 1, "y": 2}, "m": {"name": "n"}, "red": [1, 2]}


@pytest.mark.parametrize("value, error", [
    ("Error: login required", "login required"), ("ERROR - no card 3", "no card 3"), ("Failed: nope", "nope"),
    ({"ok": False, "msg": "invalid login"}, "invalid login"), ({"success": False, "reason": "r"}, "r"),
    ({"status": "error", "message": "m"}, "m"),
    ("OK moved", None), ("Errors found: 0", None), ({"ok": True, "id": 1}, None), ({"status": "paid"}, None),
    ([{"ok": False}], None), (None, None)])
def test_failures_a_method_returns_are_recognised(value, error):
    assert returned_error(value) == error


def test_returned_failures_and_dataclasses_through_the_adapter(plain):
    kanban = UserFactory("tests.envs.plain_kanban:KanbanBoard").create()
    kanban.load_scenario(generate_scenario(plain["plain_kanban"], 1)["tests.envs.plain_kanban:KanbanBoard"])
    res = kanban.call("move", {"id": 1, "to": "done"})
    assert not res.ok and res.error == "login required" and res.value == "Error: login required"
    res = kanban.call("login", {"name": "nobody", "token": "x"})
    assert not res.ok and res.error == "invalid login"
    planner = UserFactory("tests.envs.plain_planner:Planner").create()
    res = planner.call("add_task", {"title": "water plants", "due": "2026-02-01"})
    assert res.ok and res.value == {"id": 1, "title": "water plants", "due": "2026-02-01", "priority": 2,
                                    "project": "Inbox", "done": False, "tags": []}


# ---- credentials without names ----------------------------------------------------------------------

LOGIN = _spec("login", {"email": {"type": "string"}, "password": {"type": "string"}})


def _accounts_state(seed: int) -> dict:
    rng = random.Random(seed)
    emails = [f"{n}@mail.com" for n in rng.sample(["ann", "bob", "cy", "dee"], 3)]
    return {"X": {"accounts": {e: f"pw{rng.randint(1000, 9999)}" for e in emails},
                  "nicknames": {e: e.split("@")[0].upper() for e in emails}, "current_user": None}}


def _logins(provider: ArgumentProvider, n: int, seed: int = 0) -> list[tuple[dict, bool, tuple | None]]:
    """n proposals for login on fresh states, each learned from whether it really logs in."""
    rng, out = random.Random(seed), []
    for i in range(n):
        state = _accounts_state(seed * 1000 + i)
        proposal = provider.propose(LOGIN, [], harvest(state), rng, rows=harvest_rows(state))
        args = proposal.args
        ok = state["X"]["accounts"].get(args.get("email")) == args.get("password")
        provider.learn(proposal, ok, joint_only=provider.explore)
        out.append((args, ok, proposal.row_label))
    return out


def test_credentials_in_an_unnamed_mapping_are_paired_while_probing_and_then_proven():
    """`accounts: {email: password}` names neither parameter: probing pairs a mapping's key and
    value for an identity and a secret; what worked is handed to the sampler as proven."""
    probing = _logins(ArgumentProvider(explore=True), 40)
    assert sum(ok for _, ok, _ in probing) >= 8
    worked = {label for _, ok, label in probing if ok}
    assert worked == {("row", "accounts", (("email", "@key"), ("password", "@value")))}
    # a wrong pairing is rejected: a nickname is no password, and the key and value always come
    # from one entry (the password of another account never goes with this email)
    tried = {label for _, _, label in probing if label}
    assert ("row", "nicknames", (("email", "@key"), ("password", "@value"))) in tried
    for args, ok, label in probing:
        if label and label[1] == "accounts":
            assert ok, args
    # the sampler offers no unnamed pairing it was not given...
    assert not any(ok for _, ok, _ in _logins(ArgumentProvider(), 10))
    # ...and pairs the proven one from its first call
    sampler = _logins(ArgumentProvider(proven_rows={"login": worked}), 20)
    assert sum(ok for _, ok, _ in sampler[:3]) >= 2 and sum(ok for _, ok, _ in sampler) >= 15


def test_unnamed_pairs_need_an_identity_and_a_secret():
    """Two free-text parameters that are not credentials (two cities, two file names) are not
    filled from a mapping's key and value: `doorStatus: {driver: locked}` is no city pair."""
    state = {"X": {"doorStatus": {"driver": "locked", "passenger": "unlocked"}, "user_map": {"Ann": "U1", "Bo": "U2"}}}
    spec = _spec("estimate_distance", {"cityA": {"type": "string"}, "cityB": {"type": "string"}})
    provider, rng = ArgumentProvider(explore=True), random.Random(0)
    for _ in range(30):
        proposal = provider.propose(spec, [], harvest(state), rng, rows=harvest_rows(state))
        assert proposal.row_label is None
        provider.learn(proposal, False, joint_only=True)


def test_a_record_filed_under_a_name_gives_the_name_with_its_token():
    """`team: {name: {"token": ...}}`: the token is named by a field, the name is the record's key."""
    spec = _spec("login", {"name": {"type": "string"}, "token": {"type": "string"}})
    state = {"X": {"team": {"maya": {"token": "t-1", "admin": True}, "tom": {"token": "t-2", "admin": False}},
                   "user": None}}
    provider, rng, ok = ArgumentProvider(explore=True), random.Random(1), 0
    for _ in range(30):
        proposal = provider.propose(spec, [], harvest(state), rng, rows=harvest_rows(state))
        args = proposal.args
        good = state["X"]["team"].get(args["name"], {}).get("token") == args["token"]
        provider.learn(proposal, good, joint_only=True)
        ok += good
    assert ok >= 8


def test_probed_credentials_reach_the_sampler_through_the_graph(plain):
    tools, edges, _ = _edges(plain["plain_shop"])
    proven = ApiGraph(tools, edges).proven_rows
    assert proven["login"] == {("row", "accounts", (("email", "@key"), ("password", "@value")))}
    evidence = [json.loads(e.evidence) for e in edges if e.src_tool == "login" and e.kind == "state"]
    assert any(ev.get("a_rows", {}).get("login", [""])[0] == "accounts" for ev in evidence)


# ---- bare and listed results ------------------------------------------------------------------------

def test_bare_results_are_known_by_the_tool_s_noun():
    assert result_key("create_project") == "project()" and result_key("order_status") == "order_status()"
    assert [(v.key, v.value) for v in harvest(17, producer="add_note")] == [("note()", 17)]
    assert [(v.key, v.value) for v in harvest(["Home", "Work"], producer="create_project")] == \
        [("project()", "Home"), ("project()", "Work")]
    assert [v.key for v in harvest([{"sku": "A1"}], producer="search")] == ["sku"]
    assert harvest(17) == []  # a state scalar without a name stays unnamed


def test_a_bare_result_feeds_only_what_its_name_fits():
    """"Welcome back ann" (login -> str) is no comment and no note: only a name that fits takes
    a bare result, even while probing tries any earlier output."""
    results = harvest("Welcome back ann", source=0, producer="login") + harvest(7, source=1, producer="add_note")
    rng, fed = random.Random(0), 0
    for explore in (True, False):
        provider = ArgumentProvider(explore=explore)
        for _ in range(20):
            got = provider.propose(_spec("post", {"comment": {"type": "string"}}), results, [], rng)
            assert got.args["comment"] != "Welcome back ann"
            got = provider.propose(_spec("read_note", {"note_id": {"type": "integer"}}), results, [], rng)
            fed += got.args["note_id"] == 7 and got.sources == {"note_id": 1}
    assert fed >= 30  # mostly the id add_note returned


def test_a_list_of_records_names_its_fields_and_null_typed_fields_count():
    assert response_fields({"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}}}}) \
        == [("id", "integer")]
    schema = observed_response_schema([[{"sku": "A1", "price": 3.5}], []])
    assert schema["type"] == "array" and ("sku", "string") in response_fields(schema)
    # genson says ["string", "null"] for a field that was sometimes None (it crashed the graph)
    assert response_fields(observed_response_schema([{"owner": None, "id": 1}, {"owner": "maya", "id": 2}])) == \
        [("owner", "string"), ("id", "integer")]


class Notes:
    """`add_note -> int` feeds `note_id`; `archive -> str` ("archived") fits `note_id` by name too."""

    def __init__(self) -> None:
        self.notes: dict[int, str] = {}
        self.count = 0

    def add_note(self, text: str) -> int:
        self.count += 1
        self.notes[self.count + 100] = text
        return self.count + 100

    def read_note(self, note_id: int) -> str:
        return self.notes[note_id]

    def archive_note(self, title: str) -> str:
        return "archived"

    def find_note(self, note: str) -> str:
        if note not in self.notes.values():
            raise KeyError(note)
        return note


def test_a_bare_result_becomes_an_edge_only_when_its_value_works(tmp_path):
    cfg = tmp_path / "notes.yaml"
    cfg.write_text(f"toolsets:\n  - name: notes\n    classes: [{__name__}:Notes]\n")
    ts = parse_toolsets(cfg.read_text(), source=str(cfg), base_dir=tmp_path)[0]
    tools = toolset_tools(ts)
    candidates = {c[:3] for c in bare_result_candidates(tools)}
    assert ("add_note", "read_note", "note_id") in candidates and ("archive_note", "find_note", "note") in candidates
    edges = build_edges(ts, tools, [{}, {}])
    by = {(e.src_tool, e.dst_tool, e.param): e for e in edges if e.kind == "data"}
    assert json.loads(by[("add_note", "read_note", "note_id")].evidence)["method"] == "result"
    assert ("archive_note", "find_note", "note") not in by  # "archived" is no note


# ---- values an error asks for ---------------------------------------------------------------------------

def _propose_until_ok(provider, spec, state, check, n=12, seed=0):
    rng = random.Random(seed)
    for i in range(n):
        proposal = provider.propose(spec, [], harvest(state), rng)
        err = check(proposal.args)
        provider.learn(proposal, err is None, error=err)
        if err is None:
            return i
    return None


def test_an_error_that_quotes_a_made_up_value_says_what_kind_it_wants():
    """move(id, to): "unknown column alpha report" -> the state's values filed as `column`."""
    spec = _spec("move", {"to": {"type": "string"}})
    state = {"X": {"cards": {"1": {"title": "fix bug", "column": "todo"}, "2": {"title": "ship it", "column": "done"}}}}

    def check(args):
        return None if args["to"] in ("todo", "doing", "done") else f"Error: unknown column {args['to']}"

    assert _propose_until_ok(ArgumentProvider(), spec, state, check) is not None
    blind = ArgumentProvider()
    blind._note_error = lambda *a: None  # without the mechanism nothing names a column
    assert _propose_until_ok(blind, spec, state, check) is None


def test_an_error_about_a_value_taken_from_the_world_is_no_hint():
    spec = _spec("check_in", {"appointment_id": {"type": "string"}})
    provider = ArgumentProvider()
    proposal = provider.propose(
        spec, [], harvest({"X": {"appointment_id": "A-1", "appointments": {"A-1": {"status": "x"}}}}), random.Random(0))
    assert proposal.args == {"appointment_id": "A-1"} and not proposal.made_up  # taken from the state
    provider.learn(proposal, False, error="appointment A-1 is cancelled")
    assert not provider._hints
    made_up = Proposal("check_in", {"appointment_id": "alpha"}, made_up={"appointment_id"})
    provider.learn(made_up, False, error="user 'alpha' already exists")
    assert not provider._hints  # an error that wants a new value points at no known one


def test_an_error_asking_for_one_word_gets_one_word():
    spec = _spec("tag_task", {"tag": {"type": "string"}})

    def check(args):
        return None if " " not in args["tag"] else "tag_task raised ValueError: tags are single words"

    assert _propose_until_ok(ArgumentProvider(), spec, {"X": {}}, check) == 1


def test_a_lookup_that_finds_nothing_tries_the_state_s_names():
    """search(keyword) returns [] for "alpha report": names in the state find something."""
    spec = _spec("search", {"keyword": {"type": "string"}})
    state = {"X": {"products": {"S1": {"sku": "S1", "name": "Red Mug"}, "S2": {"sku": "S2", "name": "Desk Lamp"}}}}
    names = {"Red Mug", "Desk Lamp"}

    def hits(provider, n=20):
        rng, found = random.Random(2), 0
        for _ in range(n):
            proposal = provider.propose(spec, [], harvest(state), rng)
            result = [{"sku": "x"}] if proposal.args["keyword"] in names else []
            provider.learn(proposal, True, value=result)
            found += bool(result)
        return found

    assert hits(ArgumentProvider()) >= 10
    blind = ArgumentProvider()
    blind.learn = lambda proposal, ok, **kw: ArgumentProvider.learn(blind, proposal, ok, error=kw.get("error"))
    assert hits(blind) == 0


# ---- through the real CLI ---------------------------------------------------------------------------------



@pytest.mark.heavy  # a whole `cli demo` of three toolsets
def test_cli_demo_yields_on_the_plain_classes(tmp_path):
    """The blocking phase1_yield check passes for each plain class, with >= 4 user turns per dialogue."""
    db = tmp_path / "db.duckdb"
    env = clean_env(FUNREASON_TOOLSETS_EXTRA=str(PLAIN), FUNREASON_DB=str(db), DAGSTER_HOME=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--day", DAY,
                           "--toolsets", "plain_shop,plain_planner,plain_kanban", "--workers", "2"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    con = duckdb.connect(str(db), read_only=True)
    stats = {ts: (n, turns) for ts, n, turns in con.execute(
        "SELECT toolset, count(*), avg(n_turns) FROM dialogues GROUP BY toolset").fetchall()}
    for name in ("plain_shop", "plain_planner", "plain_kanban"):
        n, turns = stats[name]
        assert n == 6 and turns >= 4, (name, n, turns)
    assert con.execute("SELECT count(*) FROM rejections WHERE reason = 'yield_below_minimum'").fetchone()[0] == 0
    edges = dict(con.execute("SELECT toolset, count(*) FROM api_graph GROUP BY toolset").fetchall())
    assert all(edges.get(n, 0) > 0 for n in ("plain_shop", "plain_planner", "plain_kanban")), edges
