"""User environments (issue #7): any Python class by import path, schemas from hints and docstrings,
clear config errors, and the example clinic through the whole pipeline to dialogues that replay."""

import json
import re
import sys
import textwrap
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal, Optional, TypedDict

import duckdb
import pytest
from flow_helpers import run_llm
from pydantic import BaseModel, Field

from funreason_pipeline.agents.dialogue import build_dialogue
from funreason_pipeline.environments.base import EnvironmentConfigError
from funreason_pipeline.environments.toolsets import (
    ToolsetConfig,
    World,
    generate_scenario,
    parse_toolsets,
    toolset_by_name,
    toolset_tools,
)
from funreason_pipeline.environments.user import (
    DocEntry,
    EnvironmentOptions,
    UserFactory,
    derive_tools,
    hint_schema,
    parse_docstring,
)
from funreason_pipeline.examples.clinic import ClinicSystem
from funreason_pipeline.export.formats import dialogue_to_samples, write_exports
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed
from funreason_pipeline.verify.replay import replay_trajectory

ROOT = Path(__file__).resolve().parent.parent
CLINIC = "funreason_pipeline.examples.clinic:ClinicSystem"


# ---- schema derivation ------------------------------------------------------------------------


class Address(BaseModel):
    street: str
    city: str = Field(description="City name")


class Contact(BaseModel):
    name: str
    address: Address


class Hold(TypedDict):
    hold_id: str
    position: int


class HoldList(TypedDict):
    holds: list[Hold]


@dataclass
class Window:
    start: str
    days: int = 7


class Catalog:
    def __init__(self) -> None:
        self.holds: list[dict] = []

    def place_hold(self, book_id: str, branch: Literal["north", "south"], copies: int = 1,
                   tags: list[str] | None = None, note: Optional[str] = None,  # noqa: UP045 - both spellings
                   limits: dict[str, int] | None = None, contact: Contact | None = None) -> HoldList:
        """Place a hold on a book.

        Holds are served first come, first served.

        Args:
            book_id: The book's id, as returned by search.
            branch (str): Branch that will keep the book
                for the member.
            copies: How many copies, between 1 and 3.
            tags: Labels for the hold.
            note: Free text for the librarian.
            limits: Per-format limits.
            contact: Who to notify.

        Returns:
            All holds of the member.
        """
        return {"holds": []}

    def renew(self, loan_id: str, window: Window, rush: bool = False) -> dict:
        """Renew a loan.

        Parameters
        ----------
        loan_id : str
            The loan to renew.
        window : Window
            The new loan window.
        rush : bool, optional
            Renew even if someone holds the book.

        Returns
        -------
        loan_id : str
            The renewed loan.
        due : str
            The new due date.
        """
        return {}

    def count(self) -> int:
        return 0

    def _helper(self, x):  # private: not a tool, so it needs no hints
        return x

    def load_scenario(self, scenario: dict) -> None:
        self.holds = list(scenario.get("holds", []))

    def snapshot(self) -> dict:
        return {"holds": self.holds}


@cache
def catalog_tools():
    return {t.spec.name: t.spec for t in derive_tools(Catalog, "tests:Catalog", {})}


def test_public_methods_are_tools_except_loader_snapshot_and_private():
    assert list(catalog_tools()) == ["place_hold", "renew", "count"]


def test_google_docstring_and_hints_give_required_optional_enum_list_nested_schema():
    spec = catalog_tools()["place_hold"]
    props = spec.parameters["properties"]
    assert spec.description == "Place a hold on a book."
    assert spec.required == ["book_id", "branch"]
    assert props["book_id"] == {"type": "string", "description": "The book's id, as returned by search."}
    assert props["branch"]["enum"] == ["north", "south"] and props["branch"]["type"] == "string"
    assert props["branch"]["description"] == "Branch that will keep the book for the member."
    assert props["copies"] == {"type": "integer", "description": "How many copies, between 1 and 3.", "default": 1}
    assert props["tags"]["type"] == "array" and props["tags"]["items"] == {"type": "string"}
    assert props["note"]["type"] == "string"  # Optional[X] is X, and not required
    assert props["limits"] == {"type": "object", "additionalProperties": {"type": "integer"},
                               "description": "Per-format limits."}
    contact = props["contact"]
    assert contact["type"] == "object" and contact["required"] == ["name", "address"]
    address = contact["properties"]["address"]
    assert address["properties"]["city"] == {"type": "string", "description": "City name"}
    assert "$ref" not in json.dumps(spec.parameters) and '"title"' not in json.dumps(spec.parameters)
    # the response: the TypedDict's nested fields (what the API graph reads), the Returns text
    holds = spec.response["properties"]["holds"]
    assert holds["items"]["properties"] == {"hold_id": {"type": "string"}, "position": {"type": "integer"}}
    assert spec.response["description"] == "All holds of the member."


def test_numpy_docstring_gives_descriptions_dataclass_params_and_response_fields():
    spec = catalog_tools()["renew"]
    props = spec.parameters["properties"]
    assert spec.description == "Renew a loan."
    assert spec.required == ["loan_id", "window"]
    assert props["loan_id"]["description"] == "The loan to renew."
    assert props["rush"] == {"type": "boolean", "description": "Renew even if someone holds the book.",
                             "default": False}
    assert props["window"]["properties"] == {"start": {"type": "string"}, "days": {"type": "integer"}}
    assert props["window"]["required"] == ["start"]
    assert spec.response["properties"]["due"] == {"type": "string", "description": "The new due date."}


def test_method_without_docstring_gets_a_name_description_and_scalar_response():
    spec = catalog_tools()["count"]
    assert spec.description == "Count." and spec.parameters["properties"] == {}
    assert spec.response == {"type": "integer"}


def test_docstring_parser_reads_return_fields_and_ignores_other_sections():
    doc = parse_docstring("""Log in.

    Longer text that is not the summary.

    Args:
        username (str): Who logs in.
        password: Their password.

    Raises:
        ValueError: never described as a parameter.

    Returns:
        dict: The session, with
            username (str): Who is logged in.
    """)
    assert doc.summary == "Log in."
    assert set(doc.params) == {"username", "password"}
    assert doc.params["username"].type_text == "str"
    assert doc.returns.startswith("The session, with")


def test_docstring_parser_reads_rest_style_and_named_google_return_fields():
    doc = parse_docstring("""Find a patient
    by name.

    :param name: Part of the patient's name.
    :type name: str
    :returns: the matches.
    """)
    assert doc.summary == "Find a patient by name."
    assert doc.params["name"].description == "Part of the patient's name."
    assert doc.returns == "the matches."
    doc = parse_docstring("""Log in.

    Returns:
        username (str): The logged-in
            staff username.
        role (str): Their role.
    """)
    assert doc.return_fields == {"username": DocEntry("str", "The logged-in staff username."),
                                 "role": DocEntry("str", "Their role.")}
    assert doc.returns == ""


def test_hint_schema_enum_and_unusable_types():
    import enum

    class Color(enum.Enum):
        RED = "red"
        BLUE = "blue"

    assert hint_schema(Color) == {"enum": ["red", "blue"], "type": "string"}
    assert hint_schema(Literal[7, 14]) == {"enum": [7, 14], "type": "integer"}
    with pytest.raises(TypeError, match="no JSON Schema"):
        hint_schema(object)


# ---- calls ------------------------------------------------------------------------------------


class Quirky:
    def __init__(self) -> None:
        self.items: list[str] = []
        self._secret = "not state"

    def boom(self, n: int) -> dict:
        """Always raises."""
        self.items.append("before boom")
        raise RuntimeError(f"kaboom {n}")

    def weird(self) -> dict:
        """Returns something JSON cannot hold."""
        return {"when": object()}

    def refuse(self) -> dict:
        """Returns an error dict."""
        return {"error": "not today"}

    def keep(self, tags: list[str], extra: list[str] = []) -> dict:  # noqa: B006 - on purpose
        """Stores its input and mutates its default."""
        extra.append("x")
        self.items.extend(tags)
        self.items.append(str(len(extra)))
        return {"count": len(self.items)}

    def move(self, to: Window) -> dict:
        """Takes a dataclass: the adapter converts the JSON object."""
        return {"start": to.start, "days": to.days, "is_window": isinstance(to, Window)}


@pytest.fixture
def quirky():
    return UserFactory(f"{__name__}:Quirky").create()


def test_raised_exception_becomes_an_error_result(quirky):
    res = quirky.call("boom", {"n": 3})
    assert not res.ok and "RuntimeError" in res.error and "kaboom 3" in res.error


def test_unserialisable_result_becomes_an_error_result(quirky):
    res = quirky.call("weird", {})
    assert not res.ok and "unserialisable" in res.error


def test_returned_error_dict_is_an_error_result(quirky):
    res = quirky.call("refuse", {})
    assert not res.ok and res.error == "not today" and res.value == {"error": "not today"}


def test_bad_arguments_and_unknown_tools_are_error_results(quirky):
    assert "must be integer" in quirky.call("boom", {"n": "3"}).error
    assert "unknown argument" in quirky.call("boom", {"n": 1, "m": 2}).error
    assert "unknown tool" in quirky.call("_secret", {}).error
    assert "unknown tool" in quirky.call("__init__", {}).error
    # nested: the schema check (jsonschema) names the field inside the object
    assert "argument 'to.days' of move must be integer" in quirky.call("move", {"to": {"start": "x", "days": "many"}}).error


def test_arguments_are_copied_and_mutable_defaults_are_fresh(quirky):
    tags = ["a"]
    assert quirky.call("keep", {"tags": tags}).value == {"count": 2}
    tags.append("mutated by the caller")
    assert quirky.call("keep", {"tags": ["b"]}).value == {"count": 4}
    assert quirky.snapshot() == {"items": ["a", "1", "b", "1"]}  # public attributes only; default stayed fresh


def test_dataclass_argument_is_converted(quirky):
    assert quirky.call("move", {"to": {"start": "2026-06-01"}}).value == {
        "start": "2026-06-01", "days": 7, "is_window": True}


class Stuck:
    def __init__(self) -> None:
        self.calls = 0

    def spin(self, seconds: float) -> dict:
        """Busy for `seconds`, swallowing every Exception on the way (as careless tools do)."""
        import time

        self.calls += 1
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                sum(range(1000))
            except Exception:  # noqa: BLE001, S110 - the point: the timeout must get through this
                pass
        return {"done": True}


def test_a_stuck_tool_times_out_as_an_error_and_the_environment_stays_usable():
    from funreason_pipeline.environments.user import EnvironmentOptions

    env = UserFactory(f"{__name__}:Stuck", EnvironmentOptions(call_timeout_s=0.3)).create()
    res = env.call("spin", {"seconds": 5.0})  # bounded, so a missing limit fails the test, not hangs it
    assert not res.ok and "spin timed out" in res.error and "0.3 s" in res.error
    assert env.call("spin", {"seconds": 0.01}).value == {"done": True}  # the timer was cleared
    assert env.snapshot() == {"calls": 2}
    assert env.copy().call("spin", {"seconds": 5.0}).error  # copies keep the limit
    with pytest.raises(ValueError):
        EnvironmentOptions(call_timeout_s=0)


def test_own_snapshot_is_the_state_and_copies_are_independent():
    env = UserFactory(f"{__name__}:Catalog").create()
    env.load_scenario({"holds": [{"hold_id": "h1"}]})
    twin = env.copy()
    twin._instance.holds.append({"hold_id": "h2"})
    assert env.snapshot() == {"holds": [{"hold_id": "h1"}]}
    assert twin.snapshot() != env.snapshot()


# ---- config errors ----------------------------------------------------------------------------


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a module to tmp_path under a unique name and put it on sys.path."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written = []

    def write(source: str) -> str:
        name = f"userenv_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


GOOD_CLASS = """
    import random

    class Counter:
        def __init__(self):
            self.value = 0

        def load_scenario(self, scenario: dict) -> None:
            self.value = scenario["start"]

        def add(self, amount: int) -> dict:
            '''Add to the counter.

            Args:
                amount: How much to add.
            '''
            self.value += amount
            return {"value": self.value}

    def scenarios(seed: int) -> dict:
        return {"start": random.Random(seed).randint(0, 9)}
"""


def _config(ref: str, options: str = "") -> str:
    env = f"\n    environments:\n      {ref}: {options}" if options else ""
    return f"toolsets:\n  - name: mine\n    classes: [{ref}]{env}\n"


@pytest.mark.parametrize("source,ref_suffix,options,message", [
    (None, "no_such_module_xyz:Thing", "", "module 'no_such_module_xyz' does not import"),
    (GOOD_CLASS, ":Missing", "", "has no 'Missing'"),
    ("def f(): pass\n", ":f", "", "is not a class"),
    ("class Untyped:\n    def greet(self, name):\n        return {}\n", ":Untyped", "",
     "method 'greet': parameter 'name' has no type annotation"),
    ("class Star:\n    def greet(self, **kw: str) -> dict:\n        return {}\n", ":Star", "",
     "parameter 'kw' cannot be passed by keyword"),
    ("class Vague:\n    def greet(self, x: object) -> dict:\n        return {}\n", ":Vague", "",
     "parameter 'x'.*no JSON Schema"),
    (GOOD_CLASS, ":Counter", "{scenarios: MODULE:nope}", "has no 'nope'"),
    (GOOD_CLASS, ":Counter", "{scenarios: MODULE:broken}", "scenario failed to load: KeyError"),
    (GOOD_CLASS, ":Counter", "{scenarios: MODULE:moody}", "not deterministic"),
    (GOOD_CLASS, ":Counter", "{scenarios: MODULE:crash}", "generator .* failed for seed 0: ZeroDivisionError"),
    (GOOD_CLASS, ":Counter", "{scenrios: MODULE:scenarios}", "scenrios: Extra inputs are not permitted"),
    (GOOD_CLASS, ":Counter", "{scenarios: no/such/file.jsonl}", "file not found"),
    (GOOD_CLASS, ":Counter", "{scenarios: starts.txt}", "must be a generator import path"),
    (GOOD_CLASS, ":Counter", "{scenarios: 42}", "scenarios: Input should be a valid string"),
    ("class Needy:\n    def __init__(self, x: int):\n        pass\n    def go(self) -> dict:\n        return {}\n",
     ":Needy", "", "cannot create an instance without arguments"),
])
def test_broken_user_config_fails_at_parse_time_naming_toolset_class_and_problem(
        user_module, tmp_path, source, ref_suffix, options, message):
    extra = """
    import itertools
    _n = itertools.count()
    def broken(seed: int) -> dict:
        return {"begin": seed}
    def moody(seed: int) -> dict:
        return {"start": next(_n)}
    def crash(seed: int) -> dict:
        return {"start": 1 // 0}
    """
    module = user_module(textwrap.dedent(source) + textwrap.dedent(extra)) if source else None
    ref = f"{module}{ref_suffix}" if module else ref_suffix
    text = _config(ref, options.replace("MODULE", module or ""))
    with pytest.raises(EnvironmentConfigError) as info:
        parse_toolsets(text, source="test.yaml", base_dir=tmp_path)
    msg = str(info.value)
    assert "test.yaml" in msg and "toolset 'mine'" in msg, msg
    assert ref.split(":")[0] in msg, msg  # the class (its import path)
    assert re.search(message, msg), msg


def test_options_must_name_a_class_of_the_toolset_and_bfcl_classes_take_none():
    text = _config("MathAPI", "{scenarios: a.b:c}")
    with pytest.raises(EnvironmentConfigError, match="MathAPI is a BFCL class; it takes no environment options"):
        parse_toolsets(text)
    text = "toolsets:\n  - name: mine\n    classes: [MathAPI]\n    environments:\n      x.y:Z: {}\n"
    with pytest.raises(EnvironmentConfigError, match=r"toolset 'mine'.*not among the toolset's classes"):
        parse_toolsets(text)


def test_scenarios_file_is_picked_by_seed_and_checked(user_module, tmp_path):
    module = user_module(GOOD_CLASS)
    (tmp_path / "starts.jsonl").write_text('{"start": 1}\n{"start": 2}\n')
    ts = parse_toolsets(_config(f"{module}:Counter", "{scenarios: starts.jsonl}"), base_dir=tmp_path)[0]
    seen = {generate_scenario(ts, s)[f"{module}:Counter"]["start"] for s in range(6)}
    assert seen == {1, 2}
    (tmp_path / "bad.json").write_text('[{"start": 1}, {"begin": 2}]')
    with pytest.raises(EnvironmentConfigError, match="scenario failed to load: KeyError"):
        parse_toolsets(_config(f"{module}:Counter", "{scenarios: bad.json}"), base_dir=tmp_path)


def test_schema_file_replaces_hints_and_must_fit_the_methods(user_module, tmp_path):
    module = user_module("""
        class Loose:
            def __init__(self):
                self.log = []

            def shout(self, text, times=1):
                self.log.append(text * times)
                return {"said": text * times}
    """)
    ref = f"{module}:Loose"
    tools = [{"type": "function", "function": {
        "name": "shout", "description": "Say it louder.",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "times": {"type": "integer"}},
                       "required": ["text"]},
        "response": {"type": "object", "properties": {"said": {"type": "string"}}}}}]
    (tmp_path / "loose.json").write_text(json.dumps(tools))
    ts = parse_toolsets(_config(ref, "{schema_file: loose.json}"), base_dir=tmp_path)[0]
    [spec] = toolset_tools(ts)
    assert spec.description == "Say it louder." and spec.response["properties"]["said"] == {"type": "string"}
    world = World.from_scenario(ts, {})
    assert world.call("shout", {"text": "hi", "times": 2}).value == {"said": "hihi"}
    assert "must be string" in world.call("shout", {"text": 3}).error

    tools[0]["function"]["parameters"]["required"] = []
    (tmp_path / "loose.json").write_text(json.dumps(tools))
    with pytest.raises(EnvironmentConfigError, match=r"method 'shout': schema file must list \['text'\] as required"):
        UserFactory(ref, EnvironmentOptions(schema_file=str(tmp_path / "loose.json")))
    tools[0]["function"]["name"] = "whisper"
    (tmp_path / "loose.json").write_text(json.dumps(tools))
    with pytest.raises(EnvironmentConfigError, match=r"describes \['whisper'\], which are not public methods"):
        UserFactory(ref, EnvironmentOptions(schema_file=str(tmp_path / "loose.json")))


def test_bfcl_toolsets_are_unchanged():
    ts = toolset_by_name("messages")
    assert ts.environments == {}
    assert {t.class_name for t in toolset_tools(ts)} == {"MessageAPI"}


# ---- the example clinic through the whole pipeline -------------------------------------------


def synthesize(ts: ToolsetConfig, n: int = 6):
    """What the assets do, without Dagster: graph -> Phase I -> Phases II/III offline -> dialogues."""
    tools = toolset_tools(ts)
    probes = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(4)]
    edges = build_edges(ts, tools, probes, seed=stable_seed("probe-args", ts.name))
    p1 = sample_partition(ts, tools, edges, "2026-05-05", n)
    trajs = [type(t).model_validate_json(t.model_dump_json()) for t in p1.trajectories]  # as stored
    out = run_llm(ts, tools, trajs)
    p2, p3 = out.queries, out.traces
    dialogues = []
    for t in trajs:
        q = {r.turn_index: r.query for r in p2.rows if r.trajectory_id == t.trajectory_id}
        tr = {r.turn_index: {"passed": r.passed, "reasoning": r.reasoning, "calls": r.calls, "reply": r.reply}
              for r in p3.rows if r.trajectory_id == t.trajectory_id}
        d, _ = build_dialogue(t, tools, q, tr)
        if d:
            dialogues.append((t, d))
    return ts, tools, edges, p1, trajs, p3, dialogues


@cache
def synthesize_clinic():
    return synthesize(toolset_by_name("clinic"))


def test_clinic_schemas_come_from_hints_and_docstrings():
    tools = {t.name: t for t in toolset_tools(toolset_by_name("clinic"))}
    assert len(tools) == 12 and {t.class_name for t in tools.values()} == {CLINIC}
    book = tools["book_appointment"]
    assert book.required == ["patient_id", "slot_id"]
    assert book.properties["reason"]["enum"] == ["checkup", "follow-up", "vaccination", "consultation"]
    assert "appointment_id" in book.response["properties"]
    assert tools["prescribe"].properties["dose_mg"]["description"] == "Dose in milligrams, between 50 and 1000."


def test_clinic_graph_has_data_and_state_edges():
    _, _, edges, *_ = synthesize_clinic()
    kinds = {(e.kind, e.src_tool, e.dst_tool) for e in edges}
    for edge in [("data", "search_patients", "get_patient"), ("data", "list_doctors", "find_slots"),
                 ("data", "find_slots", "book_appointment"), ("data", "book_appointment", "cancel_appointment"),
                 ("state", "login", "search_patients"), ("state", "login", "book_appointment")]:
        assert edge in kinds, edge
    assert ("state", "login", "list_doctors") not in kinds  # the doctor list is public: no false prerequisite


def test_clinic_trajectories_cover_tools_with_dependent_calls_and_replay():
    ts, tools, _, p1, trajs, _, _ = synthesize_clinic()
    assert len(trajs) >= 5 and not p1.uncovered
    assert sum(t.has_dependent_call for tr in trajs for t in tr.turns) >= 5
    for t in trajs:
        problems, _ = replay_trajectory(t, ts, tools)
        assert problems == [], (t.trajectory_id, problems)


def test_clinic_dialogues_are_verified_and_replay_on_fresh_instances_of_the_class():
    _, _, _, _, trajs, p3, dialogues = synthesize_clinic()
    assert p3.rows and all(r.passed for r in p3.rows)
    assert len(dialogues) == len(trajs)
    for t, d in dialogues:
        clinic = ClinicSystem()  # the user's class itself, no adapter in between
        clinic.load_scenario(t.scenario[CLINIC])
        pending = {}
        n_tool = 0
        for m in d["messages"]:
            if m["role"] == "assistant":
                pending.update({c["id"]: c for c in m.get("tool_calls", [])})
            elif m["role"] == "tool":
                c = pending.pop(m["tool_call_id"])
                args = c["function"]["arguments"]
                args = json.loads(args) if isinstance(args, str) else args
                result = getattr(clinic, c["function"]["name"])(**args)
                assert json.loads(m["content"]) == json.loads(json.dumps(result))
                n_tool += 1
        assert n_tool == sum(len(turn.calls) for turn in t.turns[:d["n_turns"]])


def test_clinic_with_a_bfcl_class_crosses_class_boundaries():
    ts = toolset_by_name("clinic_messages")
    tools = toolset_tools(ts)
    assert {t.class_name for t in tools} == {CLINIC, "MessageAPI"}
    world = World.from_scenario(ts, generate_scenario(ts, 5))
    assert world.call("list_doctors", {}).ok and world.call("list_users", {}).ok
    assert "not logged in" in world.call("search_patients", {"name": "a"}).error


# ---- the docs page ------------------------------------------------------------------------------

DOCS = ROOT / "docs" / "user_environments.md"


def _docs_files() -> dict[str, str]:
    """The code blocks the docs page marks with `<!-- file: path -->`."""
    return dict(re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", DOCS.read_text(), re.DOTALL))


def test_docs_page_example_has_the_promised_edges_and_reaches_every_tool(tmp_path, monkeypatch):
    files = _docs_files()
    assert set(files) == {"my_envs/library.py", "my_envs/toolsets.yaml"}
    for name, body in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        [ts] = parse_toolsets(files["my_envs/toolsets.yaml"], base_dir=tmp_path / "my_envs")
        tools = toolset_tools(ts)
        edges = build_edges(ts, tools, [generate_scenario(ts, s) for s in range(4)])
        kinds = {(e.kind, e.src_tool, e.dst_tool) for e in edges}
        # the edges the docs page promises
        assert {("data", "search_books", "borrow"), ("data", "borrow", "return_book"),
                ("state", "sign_in", "borrow")} <= kinds
        trajs = sample_partition(ts, tools, edges, "2026-05-05", 3).trajectories
        assert trajs and {c.tool for t in trajs for c in t.flat_calls()} == {t.name for t in tools}
    finally:
        for mod in [m for m in sys.modules if m == "my_envs" or m.startswith("my_envs.")]:
            sys.modules.pop(mod)


BANK_MODULE = '''
"""A toy bank desk, written the way docs/user_environments.md says."""
import random
from typing import Literal, TypedDict


class Account(TypedDict):
    account_id: str
    owner: str
    balance: int


class AccountList(TypedDict):
    accounts: list[Account]


class Transfer(TypedDict):
    transfer_id: str
    from_account_id: str
    to_account_id: str
    amount: int


class BankDesk:
    def __init__(self) -> None:
        self.tellers: list[dict] = []
        self.accounts: dict[str, dict] = {}
        self.teller: str | None = None
        self.transfers = 0

    def load_scenario(self, scenario: dict) -> None:
        self.tellers = [dict(t) for t in scenario["tellers"]]
        self.accounts = {a["account_id"]: dict(a) for a in scenario["accounts"]}

    def open_session(self, teller_code: str) -> dict:
        """Open a teller session.

        Args:
            teller_code: The teller's code.
        """
        if teller_code not in [t["teller_code"] for t in self.tellers]:
            raise PermissionError("unknown teller")
        self.teller = teller_code
        return {"teller_code": teller_code}

    def list_accounts(self, owner: str) -> AccountList:
        """List the accounts of one customer.

        Args:
            owner: The customer's name.
        """
        found = [dict(a) for a in self.accounts.values() if a["owner"] == owner]
        if not found:
            return {"error": f"no accounts for {owner}"}
        return {"accounts": found}

    def transfer(self, from_account_id: str, to_account_id: str, amount: int,
                 speed: Literal["standard", "instant"] = "standard") -> Transfer:
        """Move money between two accounts.

        Args:
            from_account_id: Account to take the money from.
            to_account_id: Account to put the money in.
            amount: Amount in euros, between 1 and 50.
            speed: How fast the money moves.
        """
        if self.teller is None:
            raise PermissionError("open a session first")
        src, dst = self.accounts[from_account_id], self.accounts[to_account_id]
        if src is dst or src["balance"] < amount:
            raise ValueError("transfer refused")
        src["balance"] -= amount
        dst["balance"] += amount
        self.transfers += 1
        return {"transfer_id": f"T{self.transfers}", "from_account_id": from_account_id,
                "to_account_id": to_account_id, "amount": amount}


def generate_scenario(seed: int) -> dict:
    rng = random.Random(seed)
    owners = rng.sample(["Ines", "Jonas", "Kai", "Lia"], 2)
    accounts = [{"account_id": f"AC{rng.randint(100, 999)}{i}", "owner": owners[i % 2],
                 "balance": rng.randint(60, 500)} for i in range(4)]
    return {"tellers": [{"teller_code": f"T-{rng.randint(10, 99)}"}], "accounts": accounts}
'''


def test_following_the_docs_steps_with_a_new_class_gives_exported_data(tmp_path, monkeypatch):
    # step 1-2: a module with the class and its seeded generator, importable (on sys.path)
    module = f"bankdesk_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(BANK_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    # step 3: one config entry, in a file of our own that FUNREASON_TOOLSETS points at
    config = tmp_path / "toolsets.yaml"
    config.write_text(f"toolsets:\n  - name: bank\n    classes: [{module}:BankDesk]\n    environments:\n"
                      f"      {module}:BankDesk: {{scenarios: {module}:generate_scenario}}\n")
    monkeypatch.setenv("FUNREASON_TOOLSETS", str(config))
    try:
        # step 4: what the pipeline sees
        ts = toolset_by_name("bank")
        assert [t.name for t in toolset_tools(ts)] == ["open_session", "list_accounts", "transfer"]
        # step 5: the stages `cli demo` materializes (in-process: this interpreter's Dagster partitions
        # were fixed when the committed config was first loaded, so a new toolset cannot be a partition)
        _, tools, edges, _, trajs, p3, dialogues = synthesize(ts)
        kinds = {(e.kind, e.src_tool, e.dst_tool) for e in edges}
        assert {("data", "list_accounts", "transfer"), ("state", "open_session", "transfer")} <= kinds
        assert "transfer" in {c.tool for t in trajs for c in t.flat_calls()}
        assert dialogues and all(r.passed for r in p3.rows)
        # step 6: the exports
        samples = [s for _, d in dialogues for s in dialogue_to_samples(d)]
        paths = write_exports(samples, tmp_path / "exports" / "2026-05-05" / "bank", dataset_name="bank")
        records = [json.loads(line) for line in paths["openai"].read_text().splitlines()]
        assert len(records) == len(samples)
        assert {t["function"]["name"] for t in records[0]["tools"]} == {t.name for t in tools}
    finally:
        sys.modules.pop(module, None)


def test_clinic_partition_materializes_through_dagster_to_exports(tmp_db, monkeypatch):
    """What `make demo` runs for the clinic toolset: real assets, a real DuckDB file, export files."""
    import dagster as dg

    from funreason_pipeline.defs.phase1_assets import api_graph, tool_catalog, trajectories
    from funreason_pipeline.defs.resources import build_resources
    from funreason_pipeline.defs.sft_assets import sft_samples
    from funreason_pipeline.defs.synthesis_assets import dialogues, llm_stages

    res = build_resources(str(tmp_db))
    day_assets = [trajectories, llm_stages, dialogues, sft_samples]
    with dg.instance_for_test() as instance:
        r1 = dg.materialize([tool_catalog, api_graph], partition_key="clinic", resources=res, instance=instance)
        key = str(dg.MultiPartitionKey({"day": "2026-05-05", "toolset": "clinic"}))
        r2 = dg.materialize([tool_catalog, api_graph, *day_assets], selection=[k for a in day_assets for k in a.keys],
                            partition_key=key, resources=res, instance=instance)
        assert r1.success and r2.success
        checks = {e.check_name: e.passed for e in r2.get_asset_check_evaluations()}
        assert checks["every_trajectory_replays"] and checks["every_sample_replays"], checks
    with duckdb.connect(str(tmp_db), read_only=True) as con:
        assert con.execute("SELECT DISTINCT class_name FROM tool_catalog").fetchall() == [(CLINIC,)]
        kinds = {r[0] for r in con.execute("SELECT DISTINCT kind FROM api_graph").fetchall()}
        assert kinds == {"data", "state"}
        assert con.execute("SELECT count(*) FROM dialogues WHERE toolset = 'clinic'").fetchone()[0] >= 3
    exported = tmp_db.parent / "exports" / "2026-05-05" / "clinic" / "openai.jsonl"
    assert exported.read_text().count("book_appointment") > 0


def test_argument_examples_feed_the_sampler_and_bad_ones_fail_at_parse_time(user_module, tmp_path):
    from funreason_pipeline.environments.toolsets import toolset_argument_examples, toolset_tools

    module = user_module(GOOD_CLASS.replace("class Counter:", "class Counter:\n        ARGUMENT_EXAMPLES = {'add': [{'amount': 7}]}"))
    ts = parse_toolsets(_config(f"{module}:Counter", f"{{scenarios: {module}:scenarios}}"), base_dir=tmp_path)[0]
    tools = toolset_tools(ts)
    assert toolset_argument_examples(ts, tools) == {tools[0].name: [{"amount": 7}]}
    bad = user_module(GOOD_CLASS.replace("class Counter:", "class Counter:\n        ARGUMENT_EXAMPLES = {'sub': [{'amount': 7}]}"))
    with pytest.raises(EnvironmentConfigError, match="ARGUMENT_EXAMPLES names unknown tools: \\['sub'\\]"):
        parse_toolsets(_config(f"{bad}:Counter", f"{{scenarios: {bad}:scenarios}}"), base_dir=tmp_path)


STUB_CLASS = GOOD_CLASS.replace("class Counter:", "class Counter:\n        UNUSABLE_TOOLS = {'broken': 'always fails'}").replace(
    "    def scenarios(", "        def broken(self) -> dict:\n            \"\"\"A stub.\"\"\"\n"
    "            return {\"error\": \"not implemented\"}\n\n    def scenarios(")


def test_unusable_tools_are_not_targets(user_module, tmp_path):
    from funreason_pipeline.environments.toolsets import toolset_tools, toolset_unusable_tools
    from funreason_pipeline.graph.build import build_edges
    from funreason_pipeline.sampling.phase1 import sample_partition

    module = user_module(STUB_CLASS)
    ts = parse_toolsets(_config(f"{module}:Counter", f"{{scenarios: {module}:scenarios}}"), base_dir=tmp_path)[0]
    tools = toolset_tools(ts)
    broken = next(t.name for t in tools if t.method == "broken")
    assert toolset_unusable_tools(ts, tools) == {broken: "always fails"}
    edges = build_edges(ts, tools, [generate_scenario(ts, 1)], seed=1)
    res = sample_partition(ts, tools, edges, "2026-11-25", 2)
    assert broken not in {turn.target_tool for t in res.trajectories for turn in t.turns}
    assert res.uncovered == [] and res.unusable == {broken: "always fails"}
    assert [r.detail for r in res.rejections if r.reason == "target_unusable"] == ["always fails"]
    bad = user_module(GOOD_CLASS.replace("class Counter:", "class Counter:\n        UNUSABLE_TOOLS = {'nope': 'x'}"))
    with pytest.raises(EnvironmentConfigError, match="UNUSABLE_TOOLS names unknown tools"):
        parse_toolsets(_config(f"{bad}:Counter", f"{{scenarios: {bad}:scenarios}}"), base_dir=tmp_path)
