"""An MCP server's state on disk: capture it, put it back, and read it as a canonical snapshot.

An instance's state is an immutable blob kept in memory (file bytes, a directory's files, a SQLite
file), so copying an environment costs nothing and two instances never share anything on disk:
before a call the blob is written where the server reads it, after the call it is read back.

Snapshots are what verification compares, so they must be equal for equal states whatever the
worker: JSON parsed, JSONL records sorted, a directory as names and content hashes (no times), a
SQLite database as a dump in stable order; declared nondeterministic fields masked, and the real
state folder shown as the visible one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
from pathlib import Path
from typing import Any

# bytes | None for a file; for a folder ((relative path, bytes | None for a folder | ("link", target)), ...):
# immutable, so copies share it
Blob = Any
MASKED = "<masked>"


class McpStateError(ValueError):
    """The state on disk cannot be read as its declared kind."""


def empty_blob(kind: str) -> Blob:
    return () if kind == "dir" else None


def capture(kind: str, path: Path) -> Blob:
    if kind == "none":
        return None
    if kind == "dir":
        if not path.is_dir():
            return ()
        out: list[tuple[str, bytes | None]] = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            rel_root = os.path.relpath(root, path)
            for d in dirs:
                out.append((os.path.normpath(os.path.join(rel_root, d)) + "/", None))
            for f in sorted(files):
                full = os.path.join(root, f)
                rel = os.path.normpath(os.path.join(rel_root, f))
                # a symlink is kept as its target, never followed (it may point outside the state)
                out.append((rel, ("link", os.readlink(full))) if os.path.islink(full)
                           else (rel, Path(full).read_bytes()))
        return tuple(out)
    return path.read_bytes() if path.is_file() else None


def restore(kind: str, path: Path, blob: Blob, current: Blob | None = None) -> None:
    """Make the state on disk exactly `blob` (and nothing else the server left there). `current`: the
    folder's known content, when known; then only what differs is written (probing restores often)."""
    if kind == "none":
        return
    if kind == "dir":
        if isinstance(current, tuple) and path.is_dir():
            _patch_dir(path, current, blob)
            return
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        for rel, data in blob:
            target = path / rel
            if data is None:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(data, tuple):
                    os.symlink(data[1], target)
                else:
                    target.write_bytes(data)
        return
    for extra in (path, path.with_name(path.name + "-journal"), path.with_name(path.name + "-wal"),
                  path.with_name(path.name + "-shm")):
        if extra.exists():
            extra.unlink()
    if blob is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(blob)


def _patch_dir(path: Path, have: tuple, want: tuple) -> None:
    old, new = dict(have), dict(want)
    for rel in sorted(set(old) - set(new), reverse=True):  # children before their folders
        target = path / rel
        if target.is_symlink() or target.is_file():
            target.unlink()
        elif target.is_dir():
            shutil.rmtree(target)
    for rel, data in want:  # folders come before their files (os.walk order)
        if rel in old and old[rel] == data:
            continue
        target = path / rel
        if data is None:
            target.mkdir(parents=True, exist_ok=True)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, tuple):
            os.symlink(data[1], target)
        else:
            target.write_bytes(data)


def canonical(kind: str, blob: Blob, mask: list[str] | tuple[str, ...] = (),
              translate: tuple[str, str] | None = None, patterns: list[str] | tuple[str, ...] = ()) -> Any:
    """The snapshot verification compares: plain JSON, stable for equal states."""
    if kind == "none":
        return {"state": "not snapshotted"}
    if kind == "dir":
        tree: dict[str, Any] = {}
        for rel, data in blob:
            node = tree
            parts = rel.rstrip("/").split("/")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            if data is None:
                node.setdefault(parts[-1], {})
            elif isinstance(data, tuple):
                node[parts[-1]] = {"link": data[1]}
            else:
                node[parts[-1]] = {"sha256": hashlib.sha256(data).hexdigest()[:16], "size": len(data)}
        value: Any = tree
    elif blob is None:
        value = None
    elif kind == "json":
        value = _json(blob)
    elif kind == "jsonl":
        lines = [ln for ln in blob.decode("utf-8", "replace").splitlines() if ln.strip()]
        value = [_json(ln.encode()) for ln in lines]
    elif kind == "sqlite":
        value = sqlite_dump(blob)
    else:
        raise McpStateError(f"unknown state kind {kind!r}")
    if translate:
        value = replace_text(value, *translate)
    value = mask_fields(value, set(mask), patterns)
    if kind == "jsonl" and isinstance(value, list):
        # a JSONL store is a set of records: file order depends on update history, not on the state
        value = sorted(value, key=lambda r: json.dumps(r, sort_keys=True))
    return value


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise McpStateError(f"state is not valid JSON: {exc}: {data[:120]!r}") from exc


def sqlite_dump(blob: bytes) -> dict[str, Any]:
    """Schema and rows of every table, sorted, read from the file's bytes without touching disk."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(blob)
        objects = conn.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' "
                               "ORDER BY type, name").fetchall()
        out: dict[str, Any] = {"schema": [sql for _, _, sql in objects if sql], "tables": {}}
        for kind, name, _ in objects:
            if kind != "table":
                continue
            cur = conn.execute(f'SELECT * FROM "{name}"')
            cols = [d[0] for d in cur.description]
            rows = [[_cell(v) for v in row] for row in cur.fetchall()]
            rows.sort(key=lambda r: json.dumps(r))  # rowid order is insertion history
            out["tables"][name] = {"columns": cols, "rows": rows}
        return out
    except sqlite3.DatabaseError as exc:
        raise McpStateError(f"state is not a SQLite database: {exc}") from exc
    finally:
        conn.close()


def _cell(v: Any) -> Any:
    return v.hex() if isinstance(v, bytes) else v


def replace_text(value: Any, old: str, new: str) -> Any:
    """Every string inside `value` with `old` replaced by `new` (paths as the other side sees them)."""
    if isinstance(value, str):
        return value.replace(old, new) if old in value else value
    if isinstance(value, list):
        return [replace_text(v, old, new) for v in value]
    if isinstance(value, dict):
        return {replace_text(k, old, new): replace_text(v, old, new) for k, v in value.items()}
    return value


def mask_fields(value: Any, names: set[str] | list[str], patterns: list[str] | tuple[str, ...] = ()) -> Any:
    """`value` with the values of fields named in `names`, and the text matching `patterns`, masked."""
    if not names and not patterns:
        return value
    names = set(names)
    if isinstance(value, str):
        for p in patterns:
            value = re.sub(p, MASKED, value)
        return value
    if isinstance(value, list):
        return [mask_fields(v, names, patterns) for v in value]
    if isinstance(value, dict):
        return {k: MASKED if k in names else mask_fields(v, names, patterns) for k, v in value.items()}
    return value
