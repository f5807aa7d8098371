"""The one storage seam: DuckDB connections with lock retry, and append-style side tables.

Assets' main outputs go through the Dagster IO manager (defs/io_manager.py), which uses `connect`
from here; side tables that several stages write (`rejections`, `llm_calls`) are written here.
DuckDB allows one writing process per file, so every connection is short-lived and retried while
another process (a parallel partition run) holds the lock.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

import duckdb
import polars as pl

from funreason_pipeline import config

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked", "lock on file")


@contextlib.contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False, timeout_s: float = 300.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the database, waiting (jittered backoff) while another process holds its write lock."""
    path = Path(path or config.db_path())
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            break
        except duckdb.IOException as exc:  # lock held by another process
            if not any(m in str(exc) for m in _LOCK_MARKERS) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)
    try:
        yield con
    finally:
        con.close()


REJECTIONS_SCHEMA = {
    "day": pl.Date,
    "toolset": pl.String,
    "stage": pl.String,
    "item_id": pl.String,
    "reason": pl.String,
    "detail": pl.String,
}


def rejections_frame(rows: Sequence[dict]) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=REJECTIONS_SCHEMA)


def replace_rejections(
    stage: str, day: date | None, toolset: str, rows: Sequence[dict], path: str | Path | None = None
) -> int:
    """Replace one stage's rejections for one partition (idempotent reruns, no duplicates)."""
    frame = rejections_frame(
        [{**r, "stage": stage, "day": day, "toolset": toolset} for r in rows]
    )
    with connect(path) as con:
        con.execute(
            "CREATE TABLE IF NOT EXISTS rejections (day DATE, toolset VARCHAR, stage VARCHAR, "
            "item_id VARCHAR, reason VARCHAR, detail VARCHAR)"
        )
        con.execute("BEGIN")
        if day is None:
            con.execute(
                "DELETE FROM rejections WHERE stage = ? AND toolset = ? AND day IS NULL", [stage, toolset]
            )
        else:
            con.execute(
                "DELETE FROM rejections WHERE stage = ? AND toolset = ? AND day = ?", [stage, toolset, day]
            )
        if frame.height:
            con.register("new_rejections", frame.to_arrow())
            con.execute("INSERT INTO rejections SELECT day, toolset, stage, item_id, reason, detail FROM new_rejections")
            con.unregister("new_rejections")
        con.execute("COMMIT")
    return frame.height
