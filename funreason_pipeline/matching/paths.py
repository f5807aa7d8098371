"""Paths for servers that take absolute paths inside an allowed directory (the filesystem MCP server).

Such a server answers `read_text_file(path="notes")` with "Access denied" or reads something else
than meant: its paths are composed, an allowed directory (or a directory inside it) plus a name. What
is known, and from where (`PathBook`):

- the allowed directories: from the toolset (the folder on the server's command line that holds its
  state; the user's own workspace) or from a result that lists them (`list_allowed_directories`);
- the entries under them: the state's tree (the user's own files, theirs to name) and listings in
  earlier results (`[FILE] a.txt` / `[DIR] notes` under the listed directory, a JSON tree, search
  hits), each with the call that showed it; a listing marks files and folders apart;
- the text of files whose content a call gave or read, kept only while the state's hash of the file
  still matches it (an edit replaces a line the file holds now).

`propose_path` fills a path parameter by what its tool does (`PathRole`): an existing entry of the
right kind to read, list or edit; a new name under a known directory to create or write (the user
gives it, whole); nothing outside the allowed directories, ever.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from funreason_pipeline.matching.names import name_words, tokens
from funreason_pipeline.models import ToolCall, ToolSpec

FILE, DIR = "file", "directory"
_PATH_WORDS = frozenset({"path", "source", "destination"})
_LISTS = frozenset({"list", "search", "find", "tree"})  # tools whose path is a folder to look in
_NEW_VERBS = frozenset({"create", "write", "make", "new", "mkdir", "touch"})
_LISTED = re.compile(r"^\[(FILE|DIR)\] (.+?)(?:\s{2,}.*)?$")  # "[FILE] readme.md      36 B"
_WORDS = ["report", "budget", "meeting", "notes", "draft", "summary", "travel", "ideas", "plan", "invoice",
          "schedule", "research", "launch", "weekly", "archive", "review", "contacts", "recipes", "goals"]
_SUFFIXES = [" (done)", " (checked)", " (updated)", " (urgent)"]


@dataclass(frozen=True, slots=True)
class Entry:
    path: str  # absolute, as the server shows it
    kind: str  # FILE, DIR or "" (a search hit: either)
    source: int | None = None  # the call whose result showed it; None: the user's own (the state, a root)


@dataclass(frozen=True, slots=True)
class PathRole:
    """What a path parameter takes: a file, a folder or either; an existing one or a new one; one
    path or a list of them."""

    kind: str
    new: bool
    many: bool = False


@dataclass
class PathBook:
    """What the world shows of the allowed directories: roots, entries and current file texts."""

    roots: list[Entry] = field(default_factory=list)
    state: dict[str, str] = field(default_factory=dict)  # path -> kind, the state's truth
    seen: list[Entry] = field(default_factory=list)  # entries earlier results showed
    texts: dict[str, str] = field(default_factory=dict)  # path -> the file's current text
    read: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (text a result showed, that call)

    def within(self, path: str) -> bool:
        return any(path == r.path or path.startswith(r.path.rstrip("/") + "/") for r in self.roots)

    def dirs(self) -> list[str]:
        return sorted({r.path for r in self.roots} | {p for p, k in self.state.items() if k == DIR})

    def children(self, parent: str) -> set[str]:
        prefix = parent.rstrip("/") + "/"
        return {p[len(prefix):].split("/")[0] for p in self.state if p.startswith(prefix)}


def path_role(spec: ToolSpec, param: str) -> PathRole | None:
    """The role of a path parameter (`path`, `paths`, `source`, `destination`), or None."""
    schema = spec.properties.get(param, {})
    many = schema.get("type") == "array"
    item = schema.get("items", {}) if many else schema
    if item.get("type") != "string" or "enum" in item or not set(tokens(param)) & _PATH_WORDS:
        return None
    words = set(name_words(spec.name)) | set(tokens(spec.name))
    if "destination" in tokens(param):
        return PathRole("", True)
    if words & _LISTS or words & {"directory", "dir", "folder"}:
        kind = DIR
    elif words & {"file", "files"} and "move" not in words:
        kind = FILE
    else:
        kind = ""
    return PathRole(kind, bool(words & _NEW_VERBS) and not many, many)


def takes_edits(schema: dict[str, Any]) -> tuple[str, str] | None:
    """(old field, new field) of a parameter that is a list of text replacements
    (`edits: [{oldText, newText}]`), or None."""
    items = schema.get("items", {}) if schema.get("type") == "array" else {}
    props = items.get("properties") or {}
    old = next((p for p in props if "old" in tokens(p)), None)
    new = next((p for p in props if "new" in tokens(p)), None)
    return (old, new) if old and new else None


def is_glob(spec: ToolSpec, param: str) -> bool:
    """A search's pattern (`search_files(pattern=...)`)."""
    return "pattern" in tokens(param) and bool(set(name_words(spec.name)) & {"search", "find"}) and \
        spec.properties.get(param, {}).get("type") == "string"


# ---- what the world shows ------------------------------------------------------------------------

def book_of(roots: list[str], tree: dict[str, Any] | None, calls: list[ToolCall],
            setup: list[ToolCall] = ()) -> PathBook:
    """The book for one server: `roots` its allowed directories, `tree` its state snapshot (a folder
    as nested names, a file as its hash and size), `calls` the trajectory's calls so far (their
    index is their source), `setup` the scenario's calls (texts the user wrote)."""
    book = PathBook(roots=[Entry(r, DIR) for r in roots])
    hashes: dict[str, str] = {}
    for root in roots:
        _walk_tree(tree or {}, root, book.state, hashes)
    for i, call in enumerate(calls):
        for entry in _shown(call, i, book):
            if entry.kind == DIR and entry.path in [r.path for r in book.roots] and entry.source is not None:
                book.roots.append(entry)  # a result that lists the allowed directories
            if book.within(entry.path):
                book.seen.append(entry)
    for i, call in enumerate([*setup, *calls]):
        for path, text in _texts(call):
            if hashes.get(path) == hashlib.sha256(text.encode()).hexdigest()[:16]:
                book.texts[path] = text  # what the file holds now (an edit since changes the hash)
            if i >= len(setup) and "read" in name_words(call.tool):
                book.read[path] = (text, i - len(setup))
    book.seen = [e for e in book.seen if e.path in book.state or e.path in {r.path for r in book.roots}]
    return book


def _walk_tree(node: dict[str, Any], base: str, out: dict[str, str], hashes: dict[str, str]) -> None:
    for name, child in node.items():
        path = f"{base.rstrip('/')}/{name}"
        if not isinstance(child, dict) or "link" in child:
            continue
        if "sha256" in child and not isinstance(child["sha256"], dict):
            out[path] = FILE
            hashes[path] = str(child["sha256"])
        else:
            out[path] = DIR
            _walk_tree(child, path, out, hashes)


def _text(result: Any) -> str | None:
    if isinstance(result, dict) and isinstance(result.get("content"), str):
        return result["content"]
    return result if isinstance(result, str) else None


def _path_args(call: ToolCall) -> list[str]:
    return [v for k, v in call.arguments.items() if isinstance(v, str) and set(tokens(k)) & _PATH_WORDS]


def _shown(call: ToolCall, index: int, book: PathBook) -> list[Entry]:
    """Entries a call's result shows: a listing's lines under the listed folder, a JSON tree under
    it, absolute paths on lines of their own (search hits, allowed directories)."""
    text = _text(call.result)
    if text is None:
        return []
    base = next(iter(_path_args(call)), None)
    out: list[Entry] = []
    lines = text.splitlines()
    for line in lines:
        m = _LISTED.match(line.rstrip())
        if m and base:
            out.append(Entry(f"{base.rstrip('/')}/{m.group(2).strip()}", FILE if m.group(1) == "FILE" else DIR, index))
        elif line.startswith("/") and " " not in line.strip():
            path = line.strip().rstrip(":/") or "/"
            kind = DIR if path in {r.path for r in book.roots} else book.state.get(path, "")
            out.append(Entry(path, kind, index))
    if base and text.lstrip().startswith("["):
        try:
            tree = json.loads(text)
        except ValueError:
            tree = None
        _tree_entries(tree, base, index, out)
    return out


def _tree_entries(nodes: Any, base: str, index: int, out: list[Entry]) -> None:
    if not isinstance(nodes, list):
        return
    for n in nodes:
        if isinstance(n, dict) and isinstance(n.get("name"), str):
            path = f"{base.rstrip('/')}/{n['name']}"
            out.append(Entry(path, DIR if n.get("type") == DIR else FILE, index))
            _tree_entries(n.get("children"), path, index, out)


def _texts(call: ToolCall) -> list[tuple[str, str]]:
    """(path, text) a call wrote (a `content` argument) or read (a read tool's text result)."""
    paths = _path_args(call)
    if len(paths) != 1:
        return []
    content = [v for k, v in call.arguments.items() if isinstance(v, str) and "content" in tokens(k)]
    if content:
        return [(paths[0], content[0])]
    text = _text(call.result)
    if text is not None and "read" in name_words(call.tool) and not set(call.arguments) - {"path"}:
        return [(paths[0], text)]
    return []


# ---- proposing -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class PathChoice:
    value: Any
    source: int | None = None


def propose_path(spec: ToolSpec, param: str, role: PathRole, book: PathBook, args: dict[str, Any],
                 rng: random.Random, prefer: str | None = None, made_by: dict[int, str] | None = None) -> PathChoice | None:
    """A path (or a list of them) for `param`, or None when the world offers none that fits."""
    got = _many(role, book, rng) if role.many else _new(spec, param, role, book, args, rng) if role.new \
        else _one(role, spec, book, rng, prefer, made_by)
    values = got.value if got is not None and isinstance(got.value, list) else [got.value] if got else []
    if not all(isinstance(v, str) and book.within(v) for v in values):
        return None  # never a path outside the allowed directories
    return got


def _one(role: PathRole, spec: ToolSpec, book: PathBook, rng: random.Random, prefer: str | None,
         made_by: dict[int, str] | None) -> PathChoice | None:
    """An existing entry; an allowed directory itself only where a folder is looked into (it is
    never moved, read as a file or renamed)."""
    edits = any(takes_edits(s) for s in spec.properties.values())
    roots = {r.path for r in book.roots}
    pool = [e for e in _existing(role.kind, book, edits) if role.kind == DIR or e.path not in roots]
    if not pool:
        return None
    seen = [e for e in pool if e.source is not None]
    mine = [e for e in pool if e.source is None]
    preferred = [e for e in seen if prefer and (made_by or {}).get(e.source) == prefer]
    pick = rng.choice(preferred) if preferred and rng.random() < 0.9 else \
        rng.choice(seen) if seen and (not mine or rng.random() < 0.6) else rng.choice(mine)
    return PathChoice(pick.path, pick.source)


def _existing(kind: str, book: PathBook, text_known: bool = False) -> list[Entry]:
    """Entries of a kind, each once: the latest result that showed it, else the state's (or a root)."""
    out: dict[str, Entry] = {}
    for e in [*[Entry(p, k) for p, k in sorted(book.state.items())], *book.roots, *book.seen]:
        k = e.kind or book.state.get(e.path, "")
        if e.path in {r.path for r in book.roots}:
            k = DIR
        if kind and k != kind:
            continue
        if text_known and e.path not in book.texts:
            continue
        out[e.path] = Entry(e.path, k, e.source) if e.source is not None or e.path not in out else out[e.path]
    return list(out.values())


def _many(role: PathRole, book: PathBook, rng: random.Random) -> PathChoice | None:
    """Several entries from one source: all shown by one result, or all the user's own."""
    pool = _existing(role.kind, book)
    by_source: dict[int | None, list[str]] = {}
    for e in pool:
        by_source.setdefault(e.source, []).append(e.path)
    if not by_source:
        return None
    source = rng.choice(sorted(by_source, key=lambda s: -1 if s is None else s))
    paths = by_source[source]
    return PathChoice(sorted(rng.sample(paths, rng.randint(1, min(3, len(paths))))), source)


def new_name(kind: str, taken: set[str], rng: random.Random, like: str = "") -> str:
    """A name not in `taken`: a file keeps `like`'s extension (or takes a plain one), a folder has none."""
    ext = like.rsplit(".", 1)[1] if "." in like.strip(".") else rng.choice(["txt", "md", "txt", "csv"])
    for _ in range(20):
        a, b = rng.sample(_WORDS, 2)
        stem = a if kind == DIR or rng.random() < 0.3 else f"{a}_{b}"
        name = stem if kind == DIR else f"{stem}.{ext}"
        if name not in taken:
            return name
    return f"{rng.choice(_WORDS)}_{rng.randint(100, 999)}" + ("" if kind == DIR else f".{ext}")


def _new(spec: ToolSpec, param: str, role: PathRole, book: PathBook, args: dict[str, Any],
         rng: random.Random) -> PathChoice | None:
    """A path to create, the user's to give whole: a known folder plus a new name. A move's
    destination is its source's name in another folder, or a new name beside it; a write may also
    overwrite a file that exists."""
    dirs = book.dirs()
    if not dirs:
        return None
    roots = {r.path for r in book.roots}
    moved = next((v for k, v in args.items() if k != param and isinstance(v, str) and book.within(v)
                  and v not in roots), None)
    if moved is not None:
        name = moved.rsplit("/", 1)[1]
        kind = book.state.get(moved, FILE)
        here = moved.rsplit("/", 1)[0]
        # never into itself or below itself, never where that name is taken
        elsewhere = [d for d in dirs if d != here and not (d + "/").startswith(moved + "/")
                     and name not in book.children(d)]
        if elsewhere and rng.random() < 0.5:
            return PathChoice(f"{rng.choice(elsewhere)}/{name}")
        return PathChoice(f"{here}/{new_name(kind, book.children(here), rng, name if kind == FILE else '')}")
    if role.kind == FILE and rng.random() < 0.25:
        files = [p for p, k in book.state.items() if k == FILE]
        if files:  # overwriting a file the user has is a request too
            return PathChoice(rng.choice(sorted(files)))
    parent = rng.choice(dirs)
    return PathChoice(f"{parent.rstrip('/')}/{new_name(role.kind or FILE, book.children(parent), rng)}")


def propose_edits(schema: dict[str, Any], fields: tuple[str, str], path: Any, book: PathBook,
                  rng: random.Random) -> list[dict[str, str]] | None:
    """One replacement of a line the file holds now (its text known from a call that wrote or read
    it, checked against the state's hash) by a changed line: the user's to give, both sides."""
    text = book.texts.get(path) if isinstance(path, str) else None
    lines = [ln for ln in (text or "").splitlines() if ln.strip() and len(ln) <= 120]
    if not lines:
        return None
    old = rng.choice(lines)
    nums = re.findall(r"(?<![A-Za-z\d])\d+(?![A-Za-z\d])", old)  # an amount, not the 1 of "Q1"
    if nums:  # a number changes; text gains a note
        n = rng.choice(nums)
        new = old.replace(n, str(int(n) + rng.randint(1, 30)), 1)
    else:
        new = old.rstrip() + rng.choice(_SUFFIXES)
    return [{fields[0]: old, fields[1]: new}]


def takes_text(spec: ToolSpec, param: str) -> bool:
    """A file's new text (`write_file(content=...)`): a string `content` beside a path to write."""
    return "content" in tokens(param) and spec.properties.get(param, {}).get("type") == "string" and any(
        (r := path_role(spec, p)) is not None and r.new for p in spec.properties)


_LINES = ["Remember to review the budget before Friday.", "Call the landlord about the heating.",
          "Book the train tickets for the conference.", "Send the slides to the team.",
          "Water the plants on Sunday.", "Ask Maya about the release date.", "Renew the passport in May."]


def propose_text(path: Any, book: PathBook, rng: random.Random, prefer: str | None = None,
                 made_by: dict[int, str] | None = None) -> PathChoice:
    """A file's text: another file's text a read showed (a copy; that read is its source), or new
    text, the user's to give, shaped by the extension (rows for a .csv, a heading for a .md, an
    object for a .json, lines of notes otherwise)."""
    copies = [(t, i) for p, (t, i) in sorted(book.read.items()) if p != path and t.strip()]
    preferred = [c for c in copies if prefer and (made_by or {}).get(c[1]) == prefer]
    if preferred or (copies and rng.random() < 0.3):
        text, i = rng.choice(preferred or copies)
        return PathChoice(text, i)
    return PathChoice(_new_text(path, rng))


def _new_text(path: Any, rng: random.Random) -> str:
    ext = path.rsplit(".", 1)[1].lower() if isinstance(path, str) and "." in path.rsplit("/", 1)[-1] else ""
    lines = rng.sample(_LINES, rng.randint(1, 3))
    if ext == "csv":
        items = rng.sample(["rent", "travel", "food", "books", "tools", "power"], rng.randint(2, 4))
        return "item,amount\n" + "".join(f"{i},{rng.randint(5, 400)}\n" for i in items)
    if ext == "md":
        return f"# {rng.choice(_WORDS).capitalize()}\n\n" + "".join(f"- {ln}\n" for ln in lines)
    if ext == "json":
        return json.dumps({rng.choice(["owner", "team", "status"]): rng.choice(["ana", "ops", "draft"]),
                           "version": rng.randint(1, 9)}) + "\n"
    return "".join(f"{ln}\n" for ln in lines)


def propose_glob(book: PathBook, rng: random.Random) -> str | None:
    """A pattern that finds something: an extension the files have (`*.csv`, `**/*.txt`) or a name."""
    files = [p.rsplit("/", 1)[1] for p, k in book.state.items() if k == FILE]
    if not files:
        return None
    name = rng.choice(sorted(files))
    if "." in name and rng.random() < 0.7:
        return f"**/*.{name.rsplit('.', 1)[1]}"
    return f"**/{name}"
