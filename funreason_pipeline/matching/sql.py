"""SQL text for tools that take a statement (`mcp-server-sqlite`'s create_table, write_query,
read_query), and table names for tools that take one.

A statement is written from the world, never from nothing: the tables, columns and rows the database
holds (the state: the user's own data, theirs to name) and the tables a result listed (`list_tables`:
the call that showed them is the statement's source). Which statement a parameter takes is read from
its description and its tool's ("CREATE TABLE SQL statement", "Execute a SELECT query", "an INSERT,
UPDATE, or DELETE query"):

- CREATE TABLE <a new name> (<columns>): all the user's;
- INSERT INTO <a table the database holds> (<its columns>) VALUES (<new values of the columns' types;
  a reference to another table holds an id that table has>);
- UPDATE <table> SET <column> = <new value> WHERE <key> = <a row's key>; DELETE ... WHERE <key> = <a
  row's key>: rows that exist, so the statement changes something;
- SELECT: every row of a table a result listed (that result is its source), or the user's own
  question of a table they have (some columns, a filter on a value a row holds, a count).

Schemas are read from the CREATE TABLE text the state keeps (parsed, never run).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.matching.meaning import person_name
from funreason_pipeline.matching.names import name_words, tokens
from funreason_pipeline.models import ToolCall, ToolSpec

_SQL_WORDS = re.compile(r"\bSQL\b|\bSELECT\b|\bINSERT\b|\bCREATE TABLE\b", re.IGNORECASE)
_CREATE = re.compile(r"CREATE TABLE\s+\"?(\w+)\"?\s*\((.*)\)\s*$", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # INTEGER, REAL, TEXT, ... as declared ("" when undeclared)
    pk: bool = False
    notnull: bool = False


@dataclass
class Table:
    name: str
    columns: tuple[Column, ...]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class TableBook:
    """The database as the world shows it: tables of the state, and tables results named (with the
    call that named them)."""

    tables: dict[str, Table] = field(default_factory=dict)
    listed: dict[str, int] = field(default_factory=dict)  # table -> the latest call whose result named it


def sql_kind(spec: ToolSpec, param: str) -> str | None:
    """The statement a parameter takes: "create", "select", "write" (INSERT/UPDATE/DELETE), "any",
    or None when it takes no SQL."""
    schema = spec.properties.get(param, {})
    if schema.get("type") != "string" or "enum" in schema:
        return None
    own = schema.get("description", "")
    text = f"{own} {spec.description}"
    if not (set(tokens(param)) & {"query", "sql", "statement"} and _SQL_WORDS.search(text)):
        return None
    upper = text.upper()
    if "CREATE TABLE" in upper or {"create", "table"} <= set(name_words(spec.name)):
        return "create"
    if re.search(r"\b(INSERT|UPDATE|DELETE)\b", upper):
        return "write"
    if "SELECT" in upper:
        return "select"
    return "any"


def names_a_table(param: str) -> bool:
    """A parameter that takes a table's name (`table_name`, `table`), not a column's."""
    words = tokens(param)
    return bool(words) and words[0] == "table" and set(words) <= {"table", "name"}


def book_of(dump: dict[str, Any] | None, calls: list[ToolCall]) -> TableBook:
    """The book from a SQLite state dump (`{"schema": [CREATE ...], "tables": {name: {columns,
    rows}}}`) and the trajectory's calls (a result that is a list of `{"name": ...}` records of a
    tool about tables names tables)."""
    book = TableBook()
    dump = dump or {}
    declared = {}
    for sql in dump.get("schema", []):
        parsed = parse_create(sql) if isinstance(sql, str) else None
        if parsed:
            declared[parsed.name] = parsed
    for name, data in (dump.get("tables") or {}).items():
        cols = declared[name].columns if name in declared else tuple(Column(c, "") for c in data.get("columns", []))
        book.tables[name] = Table(name, cols, [list(r) for r in data.get("rows", [])])
    for i, call in enumerate(calls):
        if "table" in tokens(call.tool) and not call.arguments and isinstance(call.result, list):
            for rec in call.result:
                if isinstance(rec, dict) and rec.get("name") in book.tables:
                    book.listed[rec["name"]] = i
    return book


def parse_create(sql: str) -> Table | None:
    """A table's columns from its CREATE TABLE text (plain column definitions; constraints skipped)."""
    m = _CREATE.match(sql.strip())
    if not m:
        return None
    cols = []
    for part in _split_top(m.group(2)):
        words = part.strip().split()
        if not words or words[0].upper() in ("PRIMARY", "FOREIGN", "UNIQUE", "CHECK", "CONSTRAINT"):
            continue
        rest = " ".join(words[1:]).upper()
        cols.append(Column(words[0].strip('"'), words[1].upper() if len(words) > 1 else "",
                           "PRIMARY KEY" in rest, "NOT NULL" in rest))
    return Table(m.group(1), tuple(cols))


def _split_top(text: str) -> list[str]:
    """Split at commas outside parentheses (`amount DECIMAL(10, 2)` is one column)."""
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


# ---- writing statements --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SqlChoice:
    value: str
    source: int | None = None


# new tables a user may ask for: a name and its columns
_NEW_TABLES = {
    "projects": "id INTEGER PRIMARY KEY, name TEXT NOT NULL, due_date TEXT, budget REAL",
    "suppliers": "id INTEGER PRIMARY KEY, name TEXT NOT NULL, city TEXT, email TEXT",
    "employees": "id INTEGER PRIMARY KEY, name TEXT NOT NULL, role TEXT, salary REAL",
    "invoices": "id INTEGER PRIMARY KEY, number TEXT NOT NULL, amount REAL, issued_on TEXT",
    "tasks": "id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER DEFAULT 0",
    "events": "id INTEGER PRIMARY KEY, title TEXT NOT NULL, starts_on TEXT, location TEXT",
    "products": "sku TEXT PRIMARY KEY, name TEXT NOT NULL, price REAL, stock INTEGER",
    "members": "id INTEGER PRIMARY KEY, name TEXT NOT NULL, joined_on TEXT",
}
_CITIES = ["Lisbon", "Porto", "Berlin", "Nairobi", "Toronto", "Kyoto", "Lima", "Oslo", "Dublin", "Seville"]
_THINGS = ["desk lamp", "office chair", "notebook", "monitor stand", "coffee mug", "backpack", "keyboard",
           "water bottle", "bookshelf", "table fan"]
_TITLES = ["Weekly planning", "Quarterly review", "Team offsite", "Budget check", "Product demo",
           "Design workshop", "Onboarding session", "Release party"]
_ROLES = ["analyst", "designer", "engineer", "manager", "accountant"]


def propose_sql(kind: str, book: TableBook, rng: random.Random) -> SqlChoice | None:
    if kind == "any":
        kind = rng.choice(["select", "write"])
    if kind == "create":
        free = [t for t in _NEW_TABLES if t not in book.tables]
        if not free:
            return None
        name = rng.choice(free)
        return SqlChoice(f"CREATE TABLE {name} ({_NEW_TABLES[name]})")
    tables = [t for t in book.tables.values() if t.columns]
    if not tables:
        return None
    if kind == "select":  # a question of an empty table finds nothing: tables with rows, when any
        return _select(book, [t for t in tables if t.rows] or tables, rng)
    return _write(book, tables, rng)


def _select(book: TableBook, tables: list[Table], rng: random.Random) -> SqlChoice:
    listed = [t for t in tables if t.name in book.listed]
    if listed and rng.random() < 0.5:
        # a table a result named: reading it all (or counting it) needs nothing the user said
        t = rng.choice(listed)
        what = "COUNT(*)" if rng.random() < 0.25 else "*"
        return SqlChoice(f"SELECT {what} FROM {t.name}", book.listed[t.name])
    t = rng.choice(tables)
    r = rng.random()
    if t.rows and r < 0.5:
        row = rng.choice(t.rows)
        filters = [(c, v) for c, v in zip(t.columns, row) if v is not None and not c.pk]
        if filters:
            c, v = rng.choice(filters)
            shown = [x.name for x in t.columns if x.name != c.name]
            cols = ", ".join(rng.sample(shown, min(len(shown), rng.randint(1, 3)))) if shown and rng.random() < 0.5 else "*"
            return SqlChoice(f"SELECT {cols} FROM {t.name} WHERE {c.name} = {literal(v)}")
    if r < 0.8 and len(t.columns) > 1:
        cols = rng.sample([c.name for c in t.columns], rng.randint(1, min(3, len(t.columns) - 1)))
        order = f" ORDER BY {cols[0]}" if rng.random() < 0.4 else ""
        return SqlChoice(f"SELECT {', '.join(cols)} FROM {t.name}{order}")
    return SqlChoice(f"SELECT COUNT(*) FROM {t.name}")


def _key(t: Table) -> int | None:
    """The column that picks one row: its primary key, else a column whose values are all distinct."""
    for i, c in enumerate(t.columns):
        if c.pk:
            return i
    for i in range(len(t.columns)):
        vals = [r[i] for r in t.rows if i < len(r)]
        if vals and None not in vals and len(set(map(repr, vals))) == len(vals):
            return i
    return None


def _write(book: TableBook, tables: list[Table], rng: random.Random) -> SqlChoice | None:
    t = rng.choice(tables)
    key = _key(t)
    r = rng.random()
    if t.rows and key is not None and r < 0.5:
        row = rng.choice(t.rows)
        where = f"WHERE {t.columns[key].name} = {literal(row[key])}"
        others = [i for i, c in enumerate(t.columns) if i != key and not c.pk]
        if others and r < 0.35:
            i = rng.choice(others)
            value = _value(t.columns[i], t, book, rng, avoid={repr(row[i])})
            return SqlChoice(f"UPDATE {t.name} SET {t.columns[i].name} = {literal(value)} {where}")
        return SqlChoice(f"DELETE FROM {t.name} {where}")
    cols = [c for c in t.columns if not (c.pk and c.type == "INTEGER")]  # an INTEGER PRIMARY KEY numbers itself
    if not cols:
        return None
    taken = {repr(r[key]) for r in t.rows} if key is not None else set()
    values = []
    for c in cols:
        avoid = taken if key is not None and t.columns[key] == c else set()
        values.append(literal(_value(c, t, book, rng, avoid)))
    return SqlChoice(f"INSERT INTO {t.name} ({', '.join(c.name for c in cols)}) VALUES ({', '.join(values)})")


def _value(col: Column, table: Table, book: TableBook, rng: random.Random, avoid: set[str] = frozenset()) -> Any:
    """A new value for a column, by its name and declared type: a reference (`customer_id`) holds a
    key its table has, a name a person's name, a city a city, an amount an amount."""
    for _ in range(10):
        v = _draw(col, table, book, rng)
        if repr(v) not in avoid:
            return v
    return v


_PEOPLE = frozenset({"customer", "employee", "member", "user", "person", "people", "patient", "student", "author",
                     "contact", "client", "staff"})


def _draw(col: Column, table: Table, book: TableBook, rng: random.Random) -> Any:
    words = tokens(col.name)
    typ = col.type.upper()
    if words[-1:] == ("id",) and len(words) > 1:
        ref = next((t for n, t in book.tables.items() if tokens(n) and tokens(n)[-1] == words[-2]), None)
        k = _key(ref) if ref else None
        if ref and ref.rows and k is not None:
            return rng.choice(ref.rows)[k]
    if "INT" in typ:
        return rng.randint(1, 20) if not col.pk else rng.randint(100, 999)
    if any(x in typ for x in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return round(rng.uniform(5, 500), 2)
    if "name" in words and set(tokens(table.name)[-1:]) & _PEOPLE:  # a customer's name is a person's
        return person_name(col.name, rng)
    if "isbn" in words:
        return f"978-{rng.randint(10**9, 10**10 - 1)}"
    if "city" in words or "location" in words:
        return rng.choice(_CITIES)
    if {"date", "on", "at"} & set(words):
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if "email" in words:
        return f"{person_name('first', rng).lower()}@example.com"
    if {"title", "subject", "name"} & set(words):
        return rng.choice(_TITLES)
    if "role" in words:
        return rng.choice(_ROLES)
    if col.pk or {"isbn", "sku", "code", "number"} & set(words):
        return f"{rng.choice('ABCDEFGHJK')}{rng.choice('LMNPQRSTUV')}-{rng.randint(1000, 9999)}"
    return rng.choice(_THINGS)


def literal(v: Any) -> str:
    """A value as SQL text: numbers as they are, text quoted (a quote doubled)."""
    if v is None:
        return "NULL"
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


def propose_table(book: TableBook, rng: random.Random) -> SqlChoice | None:
    """A table's name: one a result listed (that call is its source), or one the user has."""
    listed = sorted(book.listed)
    if listed and rng.random() < 0.6:
        name = rng.choice(listed)
        return SqlChoice(name, book.listed[name])
    names = sorted(book.tables)
    return SqlChoice(rng.choice(names)) if names else None
