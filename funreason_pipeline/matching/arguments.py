"""Argument providers: propose arguments for a tool from what the world offers.

Sources, strongest first: values produced by earlier calls whose names fit the parameter (these make
the dependent calls the method wants), values in the current state, schema enums and defaults,
hints in the description (formats, quoted examples), then typed generation.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from funreason_pipeline.matching.formats import described_format, in_format
from funreason_pipeline.matching.meaning import (
    can_carry,
    fits_kind,
    fits_name,
    free_text,
    is_free_text,
    is_handle,
    is_message_text,
    looks_like_id,
    names_a_file,
    names_a_folder,
    names_a_person,
    person_name,
    zero_is_no_op,
)
from funreason_pipeline.matching.names import (
    BARE,
    affinity,
    error_words,
    is_secret,
    name_words,
    names_existing,
    referenced_noun,
    tokens,
)
from funreason_pipeline.matching.paths import (
    PathBook,
    is_glob,
    path_role,
    propose_edits,
    propose_glob,
    propose_path,
    propose_text,
    takes_edits,
    takes_text,
)
from funreason_pipeline.matching.sql import TableBook, names_a_table, propose_sql, propose_table, sql_kind
from funreason_pipeline.matching.values import KEY, VALUE, Row, Value, json_type
from funreason_pipeline.models import ToolSpec

_WORDS = ["report", "budget", "alpha", "meeting", "notes", "draft", "summary", "travel", "project", "final", "review", "data", "archive", "backup", "weekly", "plan", "ideas", "release", "budget", "invoice", "schedule", "update", "research", "launch", "photo", "music", "team"]
_QUOTED = re.compile(r"['\"]([^'\"]{1,40})['\"]")
# "between 0 (not pressed) and 1 (fully pressed)": a parenthesis may follow the lower bound
_RANGE = re.compile(r"(?:between|from)\s+(-?\d+(?:\.\d+)?)(?:\s*\([^)]*\))?\s+(?:and|to)\s+(-?\d+(?:\.\d+)?)", re.IGNORECASE)
_UP_TO = re.compile(r"\b(?:up to|at most|maximum of|no more than)\s+(\d+(?:\.\d+)?)", re.IGNORECASE)
NEW_STATE = "(new state)"  # producer tag of state values that were not in the scenario's initial state
_TEXT_SINKS = {"content", "message", "comment", "description", "text", "resolution", "title"}
_SHORT_TEXT = re.compile(r"[^\W\d_][\w'-]*(?: [\w'-]+){0,2}")  # a name or title: one to three words
_TAKEN = frozenset({"already", "exist", "duplicate", "taken"})  # errors that want a new value, not a known one
# an error asking for a single word ("tags are single words", "no spaces allowed")
_ONE_WORD = re.compile(r"\b(?:single|one)[ -]word|\bno (?:white)?spaces?\b|without (?:white)?spaces?|"
                       r"contains? (?:white)?spaces?", re.IGNORECASE)
_RAISED = re.compile(r"^\S+ raised \w+: ")  # the adapters' prefix of an exception's message


def is_text_sink(name: str, schema: dict[str, Any]) -> bool:
    """Free-text parameters can carry any earlier output (post a file's content, message a price)."""
    return schema.get("type") == "string" and bool(set(tokens(name)) & _TEXT_SINKS) and "enum" not in schema


def _fits(schema: dict[str, Any], value: Any) -> bool:
    want = schema.get("type")
    got = json_type(value)
    if "enum" in schema:
        return value in schema["enum"]
    if want == got or want is None:
        return True
    if want == "number" and got == "integer":
        return True
    return want == "integer" and got == "string" and isinstance(value, str) and value.isdigit() and len(value) < 10


def _fits_value(schema: dict[str, Any], v: Value) -> bool:
    want = schema.get("type")
    if "enum" in schema:
        return v.value in schema["enum"]
    if want is None or want == v.jtype or (want == "number" and v.jtype == "integer"):
        return True
    return want == "integer" and v.jtype == "string" and v.value.isdigit() and len(v.value) < 10


_OPTIONS = re.compile(r"\boptions(?: are)?:\s*([\w-]+(?:\s*,\s*[\w-]+)+)", re.IGNORECASE)  # "options: read, write"
_NO_VALUE = frozenset({"None", "none", "null", "NULL", ""})  # a default written as text means "not given"


@dataclass(frozen=True, slots=True)
class Meaning:
    """What a parameter takes beyond its type: a stated format, prose, or an amount where 0 does
    nothing (matching/formats.py, matching/meaning.py)."""

    fmt: str | None = None
    prose: bool = False
    zero_no_op: bool = False
    short: bool = False  # a title or subject: one line, not a file's whole content
    bounds: tuple[float, float] | None = None  # "between 0 and 1": a pedal position of 1000 is out of format
    name: str = ""  # the parameter's name: a person's name holds no id, a folder's no extension

    def accepts(self, value: Any) -> bool:
        if isinstance(value, bool):
            return True
        if is_message_text(value):  # "Ticket 9 has been closed successfully." is what a call said
            return False
        if self.prose and (looks_like_id(value) or is_handle(value)):  # ids, dates, logins, files: not prose
            return False
        if self.prose and not self.short and isinstance(value, str) and len(value.split()) < 2:
            return False  # a message that says "Sell" or "GOOG" is a label or a symbol passed on
        if self.short and isinstance(value, str) and (len(value) > 80 or "\n" in value):
            return False
        if self.name and not fits_name(self.name, value):
            return False
        if self.fmt is not None and not in_format(self.fmt, value):
            return False
        if self.bounds is not None and isinstance(value, (int, float)) and not (
                self.bounds[0] <= value <= self.bounds[1]):
            return False
        return not (self.zero_no_op and isinstance(value, (int, float)) and value == 0)


def meaning_of(tool: str, name: str, schema: dict[str, Any]) -> Meaning:
    return _meaning(tool, name, schema.get("type"), schema.get("description", ""), "enum" in schema)


@lru_cache(maxsize=4096)
def _meaning(tool: str, name: str, jtype: Any, desc: str, has_enum: bool) -> Meaning:
    schema = {"type": jtype, "description": desc, **({"enum": []} if has_enum else {})}
    prose = is_free_text(name, schema)
    numeric = jtype in ("integer", "number")
    found = _RANGE.search(desc) if numeric else None
    bounds = tuple(sorted((float(found.group(1)), float(found.group(2))))) if found else None
    return Meaning(described_format(name, schema), prose, numeric and zero_is_no_op(tool, name),
                   prose and bool(set(tokens(name)) & {"title", "subject", "caption"}), bounds, name)


def _coerce(schema: dict[str, Any], value: Any) -> Any:
    if schema.get("type") == "integer" and isinstance(value, str):
        return int(value)
    return value


@dataclass
class Choice:
    value: Any
    source: int | None = None
    weight: float = 1.0
    key: str = ""
    label: tuple = ()  # the source it was drawn from: ("result", key, producer), ("generated",), ...


@dataclass
class Proposal:
    """The arguments proposed for one call of `tool`, and where each came from. `learn` takes it
    back with the call's outcome and credits (or blames) those sources."""

    tool: str
    args: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)  # param -> index of the call it came from
    fields: dict[str, str] = field(default_factory=dict)  # param -> that call's result field
    labels: dict[str, tuple] = field(default_factory=dict)  # param (or "@row") -> source label
    made_up: set[str] = field(default_factory=set)  # params whose values were generated

    @property
    def row_label(self) -> tuple | None:
        """The row assignment used, if two or more arguments came from one row of the state."""
        return self.labels.get("@row")


@dataclass
class ArgumentProvider:
    """Proposes arguments; `data_sources[(tool, param)]` lists producers of graph data edges."""

    # (tool, param) -> {(producer tool, response field)} from the graph's data edges
    data_fields: dict[tuple[str, str], set[tuple[str, str]]] = field(default_factory=dict)
    optional_rate: float = 0.35
    explore: bool = False  # probing: also try any type-fitting earlier output, to discover edges
    # tool -> joint argument examples its environment documents (unit pairs, known zipcodes)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    example_rate: float = 0.5
    # tool -> row assignments ("row", where, ((param, field), ...)) that worked while probing: the
    # sampler offers them from the first call, and only these of the unnamed pairings below
    proven_rows: dict[str, set[tuple]] = field(default_factory=dict)
    # (tool, param) -> source label -> (successful calls, failed calls) with arguments from it
    _outcomes: dict[tuple[str, str], dict[tuple, tuple[int, int]]] = field(default_factory=dict, repr=False)
    _failures: dict[str, int] = field(default_factory=dict, repr=False)  # tool -> failed calls so far
    # (tool, param) -> words of an error that quoted the value proposed for it ("unknown column
    # x" -> {"unknown", "column"}): state values filed under such a word are what it wants
    _hints: dict[tuple[str, str], set[str]] = field(default_factory=dict, repr=False)
    _one_word: set[tuple[str, str]] = field(default_factory=set, repr=False)  # (tool, param): an error asked for one
    # (tool, param) whose made-up text found nothing (a search for "alpha report" -> []): the
    # state's names and titles are tried instead, and learned from what finds something
    _found_nothing: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def propose(
        self, spec: ToolSpec, results: list[Value], state: list[Value], rng: random.Random,
        prefer: str | None = None, rows: list[Row] | None = None, paths: PathBook | None = None,
        tables: TableBook | None = None, made_by: dict[int, str] | None = None,
    ) -> Proposal:
        """Arguments, and for values taken from earlier calls the call index and result field.
        `prefer`: a producer tool whose results should feed the arguments (an edge to exercise).
        `rows`: values of the state that belong together (a username and its PIN), offered jointly.
        `paths` / `tables`: what the world shows of a server's allowed directories or database, for
        parameters that take a path or SQL text (matching/paths.py, matching/sql.py); `made_by`:
        call index -> tool, for the sources those name."""
        proposal = Proposal(spec.name)
        args, sources, fields, made_up = proposal.args, proposal.sources, proposal.fields, proposal.made_up
        required = set(spec.required)
        examples = self.examples.get(spec.name)
        if examples and rng.random() < self.example_rate:
            example = rng.choice(examples)
            # what the preferred producer can feed comes from it (a zipcode just looked up), the rest
            # from the example (the unit pair of a conversion)
            args.update({k: v for k, v in example.items() if k in spec.properties and not (
                prefer and any(p == prefer for p, _ in self.data_fields.get((spec.name, k), ())))})
        if rows and len(args) < 2:
            joint, label = self._joint(spec, rows, rng, state)
            if label is not None:
                args.update(joint)
                proposal.labels["@row"] = label
        for name in [n for n, v in args.items() if n in spec.properties and not isinstance(v, (dict, list))]:
            if not meaning_of(spec.name, name, spec.properties[name]).accepts(args[name]):
                del args[name]  # a row's or example's value that reads as a message, or breaks a format
        made = {producer for _, producer in self._groups(results)} if results else set()
        for name, schema in spec.properties.items():
            # an optional parameter an earlier call can feed (retrieve_invoice's booking_id after
            # book_flight) is usually given: that is the dependent call the method wants
            producers = {p for p, _ in self.data_fields.get((spec.name, name), ())}
            fed = made and producers & made
            rate = 1.0 if fed and prefer in producers & made else 0.8 if fed else self.optional_rate
            if name in args or (name not in required and rng.random() > rate):
                continue
            if paths is not None or tables is not None:
                composed = _composed(spec, name, args, rng, paths, tables, prefer, made_by)
                if composed is not None:  # a path or a statement: composed from the world, or nothing
                    if composed is not _NOTHING:
                        args[name] = composed[0]
                        proposal.labels[name] = ("composed",)
                        if composed[1] is not None:
                            sources[name], fields[name] = composed[1], "content"
                    continue
            choice = self._unrepeated(spec, name, args, 4, lambda name=name, schema=schema: self._choose(
                spec, name, schema, results, state, rng, prefer, rows))
            if choice is None:
                if name in required:
                    args[name] = self._unrepeated_value(spec, name, args, lambda name=name, schema=schema: self._generate_learned(
                        spec, name, schema, rng))
                    made_up.add(name)
                continue
            if choice.label:
                proposal.labels[name] = choice.label
            if choice.label == ("generated",):
                made_up.add(name)
            args[name] = _coerce(schema, choice.value)
            if choice.source is not None:
                sources[name] = choice.source
                fields[name] = choice.key
        _order_bounds(args, sources, fields)
        return proposal

    def _unrepeated(self, spec: ToolSpec, name: str, args: dict[str, Any], tries: int,
                    draw: Callable[[], Choice | None]) -> Choice | None:
        """Up to `tries` draws for a choice that repeats no other argument, or None."""
        for _ in range(tries):
            choice = draw()
            if choice is None or not self._repeats(spec, name, choice, args):
                return choice
        return None

    def _unrepeated_value(self, spec: ToolSpec, name: str, args: dict[str, Any], make: Callable[[], Any]) -> Any:
        """A made-up value, made again (up to 5 times) while it repeats another argument."""
        value = make()
        for _ in range(5):
            if not self._repeats(spec, name, Choice(value), args):
                break
            value = make()
        return value

    def _repeats(self, spec: ToolSpec, name: str, choice: Choice, args: dict[str, Any]) -> bool:
        """Whether the choice repeats another argument's value, which no user asks for
        (`divide(a=399.49, b=399.49)`, `mv("config", "config")`, `message=receiver_id`). The
        graph's data edges cannot license a repeat: math's `a` and `b` are both fed by `result`,
        and that is exactly divide(x, x)."""
        value = choice.value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            return False
        return any(n != name and v == value and not isinstance(v, bool) for n, v in args.items())

    def _generate_learned(self, spec: ToolSpec, name: str, schema: dict[str, Any], rng: random.Random) -> Any:
        """A generated value for a parameter nothing else can fill; one word where an error asked
        for a single word ("tags are single words")."""
        value = self.generate(name, schema, rng, spec.description, tool=spec.name)
        if isinstance(value, str) and (spec.name, name) in self._one_word:
            return value.split()[0] if value.split() else value
        return value

    def _choose(self, spec: ToolSpec, name: str, schema: dict[str, Any], results: list[Value],
                state: list[Value], rng: random.Random, prefer: str | None = None,
                rows: list[Row] | None = None, nested: bool = False) -> Choice | None:
        """Pick one candidate: buckets of equally weighted values, chosen by total weight, then one
        value uniformly inside the bucket (no per-value objects: pools reach thousands of values)."""
        if schema.get("type") == "array":
            return self._choose_array(name, schema, results, state, rng, spec, prefer, rows=rows)
        if _structured(schema):
            return self._object(spec, schema, results, state, rng, prefer, rows=rows)
        desc = schema.get("description", "")
        meaning = meaning_of(spec.name, name, schema)
        # (weight per item, items, is_value, source label); the weight is scaled by how calls of this
        # tool fared with arguments from that source so far (see `learn`)
        buckets: list[tuple[float, list[Value] | list[Any], bool, tuple]] = []
        learned = self._outcomes.get((spec.name, name), {})

        def add(weight: float, items: list, is_value: bool, label: tuple) -> None:
            good, bad = learned.get(label, (0, 0))
            buckets.append((weight * min(4.0, max(0.25, (1 + good) / (1 + bad / 2))), items, is_value, label))

        kinds = self._kinds(state) if names_a_file(name) or names_a_folder(name) else None
        for weight, vals, text_only in self._matches(spec, name, schema, results, from_results=True):
            fitting = self._fitting(vals, schema, text_only, meaning)
            if kinds:  # a listing names files and folders alike: the state tells them apart
                fitting = [v for v in fitting if fits_kind(name, kinds.get(v.value, ""))]
            if fitting:  # the preferred producer's values win most draws: its edge is the point
                add(weight * (20.0 if vals[0].producer == prefer else 1.0), fitting, True,
                    ("result", vals[0].key, vals[0].producer))
        for weight, vals, _ in self._matches(spec, name, schema, state, from_results=False):
            fitting = self._fitting(vals, schema, meaning=meaning)
            if kinds:
                fitting = [v for v in fitting if fits_kind(name, v.kind)]
            if fitting:  # what earlier calls created (a new folder, a booking) is what users act on next
                add(weight, fitting, True, ("state", vals[0].key, vals[0].producer))
        hint = self._hints.get((spec.name, name))
        if hint:  # an error named what kind of value it wants: the state's values of that kind
            for (key, producer), vals in self._groups(state).items():
                fitting = self._fitting(vals, schema, meaning=meaning) if set(tokens(key)) & hint else None
                if fitting:
                    add(4.0, fitting, True, ("hinted", key, producer))
        if (spec.name, name) in self._found_nothing:
            for (key, producer), vals in self._groups(state).items():
                names = self._fitting(vals, schema, text_only=True, meaning=meaning)
                if names and _SHORT_TEXT.fullmatch(str(names[0].value)):
                    add(2.0, names, True, ("lookup", key, producer))
        plain = list(schema.get("enum", []))
        if plain:
            add(3.0, plain, False, ("enum",))
        if "default" in schema and _fits(schema, schema["default"]) and schema["default"] not in _NO_VALUE \
                and meaning.accepts(schema["default"]):
            add(1.0, [schema["default"]], False, ("default",))
        hints = [h for h in _QUOTED.findall(desc) if _fits(schema, h) and not h.isupper() and "YYYY" not in h
                 and meaning.accepts(h)]
        if hints:
            add(1.0, hints, False, ("hint",))
        if not buckets:
            return None
        if "enum" not in schema and not (nested and names_existing(desc)):  # a record's reference is never made up
            add(0.3, [None], False, ("generated",))
        total = sum(w * len(items) for w, items, _, _ in buckets)
        r = rng.random() * total
        for w, items, is_value, label in buckets:
            r -= w * len(items)
            if r <= 0 or label == buckets[-1][3]:
                if label == ("generated",):
                    return Choice(self._generate_learned(spec, name, schema, rng), None, w, label=label)
                pick = rng.choice(items)
                if is_value:
                    return Choice(pick.value, pick.source, w, pick.key, label)
                return Choice(pick, None, w, label=label)
        raise AssertionError("unreachable: the last bucket always returns")

    def _joint(self, spec: ToolSpec, rows: list[Row], rng: random.Random,
               state: list[Value] | None = None) -> tuple[dict[str, Any], tuple | None]:
        """Two or more parameters from one row of the state (a username with its PIN), and the row
        assignment's label (None: no row this time). Which
        parameters a row's fields go to is learned: assignments that worked are drawn more often,
        and a tool whose joint proposals keep failing gets them rarely (learned per tool). An
        assignment that worked while probing counts as successes from the start."""
        options = self._row_options(spec, rows, state or [])
        proven = self.proven_rows.get(spec.name, set())
        known = any(label in proven for _, label, _ in options)
        if not options or (self._failures.get(spec.name, 0) < 2 and not known):
            return {}, None  # only where single values keep failing, or probing showed a row works
        learned = self._outcomes.get((spec.name, "@row"), {})
        good = sum(g for g, _ in learned.values()) + (4 if known else 0)
        bad = sum(b for _, b in learned.values())
        if rng.random() >= min(0.9, max(0.1, (1 + 2 * good) / (2 + 2 * good + bad))):
            return {}, None
        weights = []
        for base, label, _ in options:
            g, b = learned.get(label, (0, 0))
            g += 2 if label in proven else 0
            weights.append(base * (1 + 3 * g) / (1 + b))
        _, label, fitting = rng.choices(options, weights=weights)[0]
        row = rng.choice(fitting)
        values = dict(row.fields)
        return {param: _coerce(spec.properties[param], values[f]) for param, f in label[2]}, label

    def _row_options(self, spec: ToolSpec, rows: list[Row],
                     state: list[Value] = ()) -> list[tuple[float, tuple, list[Row]]]:
        """(weight, label, rows that fit) per way of filling two or more parameters from rows of one
        shape: named fields by name (a card_number with its pin), a mapping's key and value in either
        order (weighted to the parameter named like the mapping: `users` -> `username`).

        Where names say nothing, credentials are paired: for a tool whose two required string
        parameters are an identity and a secret (login(email, password), login(name, token)), a
        str -> str mapping's key and value (`accounts: {email: password}`) when no state value
        matches either by name, or the key a record is filed under for the identity when a field
        names the secret (`team: {name: {"token": ...}}`). Probing tries them; the sampler offers
        only those that worked there (`proven_rows`).
        """
        cache = self.__dict__.setdefault("_row_cache", {})
        sig = (id(rows), id(state), spec.name)
        hit = cache.get(sig)
        if hit is not None and hit[0] is rows and hit[2] is state:
            return hit[1]
        if len(cache) > 256:
            cache.clear()
        # parameters an earlier call can feed (graph data edges) are left to it: that dependent call
        # is what the method wants; rows serve what only the state holds (credentials)
        params = [p for p, s in spec.properties.items()
                  if s.get("type") in ("string", "integer", "number") and "enum" not in s
                  and not self.data_fields.get((spec.name, p))]
        shapes: dict[tuple, list[Row]] = {}
        for r in rows:
            shapes.setdefault(r.shape, []).append(r)
        creds = self._credentials(spec, state)
        proven = self.proven_rows.get(spec.name, set())
        options: list[tuple[float, tuple, list[Row]]] = []
        for (where, names), group in shapes.items():
            if not where:  # the environment object's own fields: copying them changes nothing
                continue
            stem = tokens(where)[-1:]
            assignments: list[tuple[float, tuple[tuple[str, str], ...]]] = []
            guesses: list[tuple[tuple[str, str], ...]] = []  # unnamed pairings (docstring above)
            if names == (KEY, VALUE):
                for p in params:
                    for q in params:
                        # named like the mapping on one side (`users` -> username, `pins` -> pin)
                        if p != q and stem and (stem[0] in p.lower() or stem[0] in q.lower()):
                            assignments.append((4.0 if stem[0] in p.lower() else 1.0, ((p, KEY), (q, VALUE))))
                if not assignments and creds and creds[2] and creds[3]:
                    guesses.append(((creds[0], KEY), (creds[1], VALUE)))
            else:
                pairs = []
                for p in params:
                    desc = spec.properties[p].get("description", "")
                    scored = [(affinity(p, desc, f), f) for f in names if f not in (KEY, VALUE)]
                    best = max(scored, default=(0.0, ""))
                    if best[0] >= 0.6:
                        pairs.append((p, best[1]))
                    elif KEY in names and stem and stem[0] in p.lower():
                        pairs.append((p, KEY))
                if len(pairs) >= 2 and not self.explore:  # probing varies arguments: no copied records
                    assignments.append((2.0, tuple(pairs)))
                elif len(pairs) == 1 and creds and creds[2] and KEY in names and pairs[0][0] == creds[1]:
                    # a member's token in a record filed under the member's name
                    guesses.append((pairs[0], (creds[0], KEY)))
            for pairs in guesses:
                if self.explore or ("row", where, pairs) in proven:
                    assignments.append((2.0, pairs))
            for weight, pairs in assignments:
                fitting = [r for r in group if all(_fits(spec.properties[p], dict(r.fields)[f]) for p, f in pairs)]
                if fitting:
                    options.append((weight, ("row", where, pairs), fitting))
        cache[sig] = [rows, options, state]
        return options

    def _credentials(self, spec: ToolSpec, state: list[Value]) -> tuple[str, str, bool, bool] | None:
        """(identity, secret, identity unmatched, secret unmatched) when the tool's two required
        parameters are strings (no enum, no graph producer) and exactly one names a secret;
        "unmatched": no value of the state matches it by name."""
        req = [p for p in spec.required if p in spec.properties]
        if len(req) != 2:
            return None
        for p in req:
            s = spec.properties[p]
            if s.get("type") != "string" or "enum" in s or self.data_fields.get((spec.name, p)):
                return None
        secret = [p for p in req if is_secret(p)]
        if len(secret) != 1:
            return None
        ident = req[0] if secret[0] == req[1] else req[1]
        unmatched = [not (state and self._matches(spec, p, spec.properties[p], state, from_results=False))
                     for p in (ident, secret[0])]
        return ident, secret[0], unmatched[0], unmatched[1]

    def learn(self, proposal: Proposal, ok: bool, joint_only: bool = False, error: str | None = None,
              value: Any = None) -> None:
        """Credit (or blame) the sources of a proposal's arguments with its call's outcome: arguments drawn
        from sources that worked before are drawn more often, cutting failed attempts. `joint_only`
        (probing) learns only which rows fill which parameters; single sources stay exploratory.
        An `error` that quotes a proposed value says what kind of value that parameter wants; an
        empty list (`value`) after made-up text says a lookup wants a name the state holds."""
        tool, args, made_up = proposal.tool, proposal.args, proposal.made_up
        nothing = ok and value == []
        if nothing:
            self._found_nothing.update((tool, p) for p in made_up if isinstance(args.get(p), str))
        if not ok:
            self._failures[tool] = self._failures.get(tool, 0) + 1
            if error:
                self._note_error(tool, args, made_up, error)
        for name, label in proposal.labels.items():
            if joint_only and name != "@row":
                continue
            worked = ok and not (nothing and label[0] == "lookup")  # a name that finds nothing did not work
            good, bad = self._outcomes.setdefault((tool, name), {}).get(label, (0, 0))
            self._outcomes[(tool, name)][label] = (good + 1, bad) if worked else (good, bad + 1)

    def _note_error(self, tool: str, args: dict[str, Any], made_up: set[str], error: str) -> None:
        """Words of an error that quotes one argument's value, a made-up one, less the words of
        every argument and of the tool: what it says that value should have been ("unknown
        column", "not on the team"). The latest such error counts. (About a value taken from the
        world, an error complains about its condition, "appointment A-1 is cancelled", not its kind.)"""
        low = _RAISED.sub("", error).lower()  # "move raised KeyError: ..." -> what the tool said
        if _ONE_WORD.search(low):  # "tags are single words": the made-up phrases were the problem
            self._one_word.update((tool, name) for name in made_up
                                  if isinstance(args.get(name), str) and " " in args[name].strip())
        quoted = [(name, str(value).lower()) for name, value in args.items()
                  if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip()
                  and re.search(r"(?<!\w)" + re.escape(str(value).lower()) + r"(?!\w)", low)]
        if len(quoted) != 1:  # none, or several arguments quoted: not clear which one was wrong
            return
        name, text = quoted[0]
        if name not in made_up:
            return
        said = error_words(low.replace(text, " ")) - set(tokens(tool))
        for value in args.values():
            said -= set(tokens(str(value)))
        if said and not said & _TAKEN:
            self._hints[(tool, name)] = said

    def _object(self, spec: ToolSpec, schema: dict[str, Any], results: list[Value], state: list[Value],
                rng: random.Random, prefer: str | None = None, depth: int = 0,
                rows: list[Row] | None = None) -> Choice | None:
        """An object built from its schema (an MCP server's `{name, entityType, observations}`):
        every required field and an optional one now and then, each chosen as a parameter of its
        own (from results, the state, or made up), no value in two fields. Its source is a call only
        when every field came from that call. A record that a tool acts on but does not make (a
        relation to delete) is one the state holds, whole, when the state has one; a tool that makes
        records gives each a new `name`."""
        props, required = schema.get("properties") or {}, set(schema.get("required") or ())
        if depth > 3:
            return None
        makes = bool(_MAKES & set(name_words(spec.name)))
        if not makes and rows:
            existing = [r for r in rows if required <= {f for f, _ in r.fields}]
            if existing:
                fields = dict(rng.choice(existing).fields)
                return Choice({k: _coerce(props[k], v) for k, v in fields.items() if k in props}, label=("record",))
        out: dict[str, Any] = {}
        sources: list[Choice] = []
        for prop, ps in props.items():
            if prop not in required and rng.random() > self.optional_rate:
                continue
            def draw(prop=prop, ps=ps) -> Choice | None:
                if ps.get("type") == "array":
                    return self._choose_array(prop, ps, results, state, rng, spec, prefer, depth + 1, rows)
                if _structured(ps):
                    return self._object(spec, ps, results, state, rng, prefer, depth + 1, rows)
                return self._choose(spec, prop, ps, results, state, rng, prefer, nested=True)

            # a new record's own name is new: not drawn from the world
            choice = self._unrepeated(spec, prop, out, 0 if makes and prop == "name" else 3, draw)
            noun = referenced_noun(ps.get("description", ""))
            if choice is None and noun:
                # the other end of a relation: another name of that kind of thing the state holds
                # (a record with a `name` that says it is an entity), never a made-up one
                taken = {_same_key(v) for v in out.values()}
                pool = sorted({dict(r.fields)["name"] for r in rows or () if _is_a(r, noun)
                               and _same_key(dict(r.fields)["name"]) not in taken})
                if not pool:
                    return None  # a relation to a thing that is not there is no record to make
                choice = Choice(rng.choice(pool), label=("name",))
            if choice is None:
                value = self._unrepeated_value(spec, prop, out, lambda prop=prop, ps=ps: self.generate(
                    prop, ps, rng, tool=spec.name))
                choice = Choice(value, label=("generated",))
            out[prop] = _coerce(ps, choice.value)
            sources.append(choice)
        # one source for the record only when every field came from that one call's result: a record
        # partly made up or given is the user's to give, whole
        first = sources[0] if sources and sources[0].source is not None and all(
            c.source == sources[0].source for c in sources) else None
        return Choice(out, first.source if first else None, 1.0, first.key if first else "", ("object",))

    def _choose_array(self, name: str, schema: dict[str, Any], results: list[Value], state: list[Value],
                      rng: random.Random, spec: ToolSpec | None = None, prefer: str | None = None,
                      depth: int = 0, rows: list[Row] | None = None) -> Choice | None:
        items = schema.get("items", {"type": "string"})
        desc = schema.get("description", "")
        if spec is not None and _structured(items):  # a list of records: each built from the item schema
            built: dict[str, Choice] = {}
            for _ in range(rng.randint(1, 3)):
                one = self._object(spec, items, results, state, rng, prefer, depth + 1, rows)
                if one is not None:
                    built.setdefault(_same_key(one.value), one)
            if not built:
                return None
            one = {c.source for c in built.values()}
            src = next(iter(built.values())) if len(one) == 1 and None not in one else None
            return Choice([c.value for c in built.values()], src.source if src else None, 1.0,
                          src.key if src else "", ("objects",))
        if "enum" in items:  # all of them is a common request (lock every door)
            k = len(items["enum"]) if rng.random() < 0.3 else rng.randint(1, len(items["enum"]))
            return Choice(rng.sample(items["enum"], k))
        from_results = [v for (key, producer), vals in self._groups(results).items()
                        if affinity(name, desc, key, producer) > 0 for v in vals
                        if _fits_value(items, v) and not is_message_text(v.value)]
        from_state = [v for (key, _), vals in self._groups(state).items()
                      if affinity(name, desc, key) > 0 for v in vals if _fits_value(items, v) and not is_message_text(v.value)]
        # one source per list: items from a result the model has seen, or items the user gives, never
        # a mix (a state value beside result values would be one the model cannot know); each value once
        firsts = {}
        for v in from_results:
            firsts.setdefault(_same_key(v.value), v)
        rest = {}
        for v in from_state:
            if _same_key(v.value) not in firsts:
                rest.setdefault(_same_key(v.value), v)
        if firsts and (not rest or rng.random() < 0.7):
            # from one call's result: a list's single source is then the whole truth of where it came from
            one = rng.choice(sorted({v.source for v in firsts.values()}, key=str))
            pool = [v for v in firsts.values() if v.source == one]
        else:
            pool = list(rest.values())
        if not pool:
            return None
        k = rng.randint(1, min(4, len(pool)))
        picked = rng.sample(pool, k)
        src = next((v for v in picked if v.source is not None), None)
        return Choice([v.value for v in picked], src.source if src else None, 1.0, src.key if src else "")

    def _groups(self, values: list[Value]) -> dict[tuple[str, str], list[Value]]:
        """Grouped values, cached per list and extended in place as it grows: the sampler's result
        list only grows, state lists are replaced after each state change."""
        cache = self.__dict__.setdefault("_group_cache", {})
        hit = cache.get(id(values))
        if hit is None or hit[0] is not values or hit[1] > len(values):
            if len(cache) > 8:
                cache.clear()
                self.__dict__.get("_fit_cache", {}).clear()  # they hold groups of these lists
                self.__dict__.get("_match_cache", {}).clear()
            hit = cache[id(values)] = [values, 0, {}, []]  # list, values seen, groups, group keys in order
        if hit[1] < len(values):
            groups, order = hit[2], hit[3]
            for v in values[hit[1]:]:
                group = groups.get((v.key, v.producer))
                if group is None:
                    group = groups[(v.key, v.producer)] = []
                    order.append((v.key, v.producer))
                group.append(v)
            hit[1] = len(values)
        return hit[2]

    def _matches(self, spec: ToolSpec, name: str, schema: dict[str, Any], values: list[Value],
                 from_results: bool) -> list[tuple[float, list[Value], bool]]:
        """The value groups that can feed a parameter, with their weight per value: decided once per
        group (name affinity, graph data edges), cached per list and extended as new groups appear."""
        groups = self._groups(values)
        cache = self.__dict__.setdefault("_match_cache", {})
        sig = (id(values), spec.name, name)
        hit = cache.get(sig)
        if hit is None or hit[0] is not values:
            hit = cache[sig] = [values, 0, []]
        order = self._group_order(values)
        if hit[1] < len(order):
            desc = schema.get("description", "")
            fed_by = self.data_fields.get((spec.name, name), set())
            sink = is_text_sink(name, schema)
            prose = is_free_text(name, schema)
            for key, producer in order[hit[1]:]:
                vals = groups[(key, producer)]
                if not from_results:
                    a = affinity(name, desc, key)
                    if a > 0:
                        hit[2].append((4.0 * a * (4.0 if producer == NEW_STATE else 1.0), vals, False))
                    continue
                a = affinity(name, desc, key, producer)
                if a > 0:
                    hit[2].append((10.0 * a, vals, False))
                elif (producer, key) in fed_by:
                    hit[2].append((6.0, vals, False))
                elif key.endswith(BARE):
                    continue  # a bare result ("Welcome back", "cancelled") feeds only what its name fits
                elif self.explore:
                    hit[2].append((2.0, vals, False))
                elif sink and (not prose or can_carry(name, key)):
                    hit[2].append((0.5, vals, True))
            hit[1] = len(order)
        return hit[2]

    def _group_order(self, values: list[Value]) -> list[tuple[str, str]]:
        return self.__dict__["_group_cache"][id(values)][3]

    def _kinds(self, state: list[Value]) -> dict[str, str]:
        """Name -> what the state says it is (file, directory), for names of one kind only; kept
        for the last state list (the sampler hands a new list after each state change)."""
        last = self.__dict__.get("_kind_cache")
        if last is None or last[0] is not state:
            kinds: dict[str, str] = {}
            for v in state:
                if v.kind and isinstance(v.value, str):
                    kinds[v.value] = v.kind if kinds.get(v.value, v.kind) == v.kind else ""
            last = self.__dict__["_kind_cache"] = (state, kinds)
        return last[1]

    def _fitting(self, vals: list[Value], schema: dict[str, Any], text_only: bool = False,
                 meaning: Meaning = Meaning()) -> list[Value]:
        """The values of one group that fit a parameter's type (or enum) and meaning (no message
        text, no id in prose, its stated format), cached per group, type and meaning and extended
        as the group grows: the same groups are matched at every proposal."""
        cache = self.__dict__.setdefault("_fit_cache", {})
        enum = schema.get("enum")
        sig = (id(vals), schema.get("type"), tuple(map(str, enum)) if enum is not None else None, text_only, meaning)
        hit = cache.get(sig)
        if hit is None or hit[0] is not vals:
            if len(cache) > 20000:
                cache.clear()
            hit = cache[sig] = [vals, 0, []]
        if hit[1] < len(vals):
            hit[2].extend(v for v in vals[hit[1]:] if _fits_value(schema, v) and (not text_only or (
            v.jtype in ("string", "integer", "number") and len(str(v.value)) > 2)) and meaning.accepts(v.value))
            hit[1] = len(vals)
        return hit[2]

    def generate(self, name: str, schema: dict[str, Any], rng: random.Random, tool_desc: str = "",
                 tool: str = "") -> Any:
        """Typed generation: plausible values from the type, the name and the description's format
        (a range in the parameter's description, or an "up to N" in its own or the tool's; a stated
        format such as YYYY-MM-DD or MM/YYYY; prose for a note or a resolution; a person's name)."""
        t = schema.get("type")
        desc = schema.get("description", "")
        if "enum" in schema:
            return rng.choice(schema["enum"])
        if t == "boolean":
            return rng.random() < 0.5
        meaning = meaning_of(tool, name, schema)
        if meaning.fmt is not None:
            return _formatted(meaning.fmt, name, rng)
        bounds = _RANGE.search(desc)
        cap = _UP_TO.search(desc) or _UP_TO.search(tool_desc)
        if t in ("integer", "number") and bounds:
            lo, hi = sorted((float(bounds.group(1)), float(bounds.group(2))))
            if meaning.zero_no_op and lo == 0:  # pressing a pedal by 0 does nothing
                lo = min(hi, 0.1 if t == "number" else 1)
            if rng.random() < 0.4:  # the bounds themselves matter (a fully pressed pedal is 1.0)
                return int(hi if rng.random() < 0.5 else lo) if t == "integer" else (hi if rng.random() < 0.5 else lo)
            if t == "integer":
                return rng.randint(int(lo), int(hi))
            return round(rng.uniform(lo, hi), 2)
        if t in ("integer", "number") and cap:  # "the tank can hold up to 50 gallons": small amounts fit
            hi = float(cap.group(1))
            if t == "integer":
                return rng.randint(1, max(1, int(hi)))
            return max(0.1, round(rng.uniform(0, hi) * (0.3 if rng.random() < 0.5 else 1.0), 1))
        if t == "integer":
            return rng.randint(1, 10 if "precision" in name or "place" in name else 100)
        if t == "number":
            return round(rng.uniform(1, 500), rng.choice((0, 1, 2)))
        if t == "array":
            items = [self.generate(name, schema.get("items", {"type": "string"}), rng, tool=tool)
                     for _ in range(rng.randint(2, 5))]
            return list({_same_key(x): x for x in items}.values())  # each item once
        if t == "object":
            # an updates-like object with named fields gets one or two of them: an empty one changes nothing
            # (a record with required fields gets all of them)
            props = schema.get("properties") or {}
            if not props:
                return {}
            keys = [k for k in props if k in (schema.get("required") or ())] or rng.sample(
                sorted(props), min(len(props), rng.randint(1, 2)))
            return {k: self.generate(k, props[k], rng, tool=tool) for k in keys}
        options = _OPTIONS.search(desc)
        if options:  # "Here are the options: read_write, read, write": an enum in prose
            return rng.choice([o.strip() for o in options.group(1).split(",")])
        if "date" in tokens(name):
            return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if meaning.prose:
            return free_text(name, tool, rng)
        words = tokens(name)
        if is_secret(name):  # a token or secret looks like one, not like "invoice backup"
            return "".join(rng.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(16))
        if words and words[-1] == "id" and len(words) > 1:  # client_id -> "CLI-48213"
            return f"{words[-2][:3].upper()}-{rng.randint(10000, 99999)}"
        if "username" in words or words[-2:] == ("user", "name") and not names_a_person(name):
            # a login handle, as people pick them: "rosa_okafor", "tara.quinn"
            return f"{person_name('first', rng).lower()}{rng.choice('_.')}{person_name('last', rng).lower()}"
        if names_a_person(name):
            return person_name(name, rng)
        words = rng.sample(_WORDS, 2)
        if "file" in tokens(name):
            return f"{words[0]}_{words[1]}.txt"
        if "dir" in tokens(name) or "folder" in tokens(name):
            return words[0]
        return " ".join(words)


_NOTHING = ("nothing",)  # a path or SQL parameter the world offers nothing for: left out, never made up


def _composed(spec: ToolSpec, name: str, args: dict[str, Any], rng: random.Random, paths: PathBook | None,
              tables: TableBook | None, prefer: str | None, made_by: dict[int, str] | None) -> tuple | None:
    """(value, source call or None) for a parameter that takes a path, an edit of a file, a search
    pattern, SQL text or a table's name, composed from what the world shows; `_NOTHING` when it
    takes one but the world offers none that fits (a made-up path or statement is never proposed);
    None for any other parameter."""
    schema = spec.properties[name]
    if paths is not None and paths.roots:
        role = path_role(spec, name)
        if role is not None:
            got = propose_path(spec, name, role, paths, args, rng, prefer, made_by)
            return (got.value, got.source) if got else _NOTHING
        fields = takes_edits(schema)
        if fields is not None:
            edits = propose_edits(schema, fields, args.get("path"), paths, rng)
            return (edits, None) if edits else _NOTHING
        if is_glob(spec, name):
            glob = propose_glob(paths, rng)
            return (glob, None) if glob else _NOTHING
        if takes_text(spec, name):  # the user's new text, or a file's text a read showed: no other result's
            got = propose_text(args.get("path"), paths, rng, prefer, made_by)
            return got.value, got.source
    if tables is not None:
        kind = sql_kind(spec, name)
        if kind is not None:
            got = propose_sql(kind, tables, rng)
            return (got.value, got.source) if got else _NOTHING
        if names_a_table(name) and schema.get("type") == "string":
            got = propose_table(tables, rng)
            return (got.value, got.source) if got else _NOTHING
    return None


# verbs of tools that make the records they are given (their `name` is a new one)
_MAKES = frozenset({"create", "add", "new", "insert", "register", "make", "write", "post", "put", "append"})


def _is_a(row: Row, noun: str) -> bool:
    """A record with a `name` that says it is a `noun` (`type: entity`, or an `entityType` field)."""
    fields = dict(row.fields)
    return isinstance(fields.get("name"), str) and any(
        noun in tokens(str(f)) or (isinstance(v, str) and v.lower() == noun) for f, v in row.fields)


def _structured(schema: dict[str, Any]) -> bool:
    """An object whose schema names required fields: a record to build field by field (an object
    without required fields is an update of one or two of its fields, left to `generate`)."""
    return schema.get("type") == "object" and bool(schema.get("properties")) and bool(schema.get("required"))


def _same_key(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


_LOW, _HIGH = ("min", "minimum", "lower", "low", "start", "from"), ("max", "maximum", "upper", "high", "end", "to")


def _order_bounds(args: dict[str, Any], sources: dict[str, int], fields: dict[str, str]) -> None:
    """A lower bound above its upper bound (`filter_stocks_by_price(min_price=810.4, max_price=126.7)`)
    asks for nothing: the pair is swapped, with where each value came from."""
    for low in list(args):
        words = tokens(low)
        for i, w in enumerate(words):
            if w not in _LOW:
                continue
            twin = [*words[:i], _HIGH[_LOW.index(w)], *words[i + 1:]]
            high = next((h for h in args if tokens(h) == tuple(twin)), None)
            a, b = args[low], args.get(high) if high else None
            comparable = (isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool)
                          and not isinstance(b, bool)) or (isinstance(a, str) and isinstance(b, str)
                                                           and in_format("date", a) and in_format("date", b))
            if high and comparable and a > b:
                args[low], args[high] = b, a
                for d in (sources, fields):
                    lo, hi = d.pop(low, None), d.pop(high, None)
                    if hi is not None:
                        d[low] = hi
                    if lo is not None:
                        d[high] = lo


def _formatted(fmt: str, name: str, rng: random.Random) -> Any:
    """A value in a stated format."""
    if fmt == "date":
        year = rng.randint(1960, 2000) if "birth" in tokens(name) else 2026
        return f"{year}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if fmt == "datetime":
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00"
    if fmt == "month_year":
        return f"{rng.randint(1, 12):02d}/{rng.randint(2027, 2031)}"
    if fmt == "time":
        return f"{rng.randint(8, 19):02d}:{rng.choice((0, 15, 30, 45)):02d}"
    if fmt == "card_number":
        return "4" + "".join(str(rng.randint(0, 9)) for _ in range(15))
    if fmt == "email":
        return f"{person_name('first', rng).lower()}.{person_name('last', rng).lower()}@example.com"
    if fmt == "cvv":
        return rng.randint(100, 999)
    if fmt == "zipcode":
        return f"{rng.randint(10000, 99999)}"
    return person_name(name, rng)
