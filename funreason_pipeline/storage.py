"""The one storage seam: where tables live, connections with lock/conflict retry, side tables.

Assets' tables go through the Dagster IO manager (defs/io_manager.py), which uses `connect` and
`commit_with_retry` from here; the tables several writers share are written here: `rejections` (every
rejecting stage's rejections asset, through defs/rejections_io.py) and `llm_calls` (the LLM cache);
and the `sample_lineage` view is made here. Two stores, chosen by the environment, behind the same SQL:

- **Local** (default, `make demo`): one DuckDB file (`FUNREASON_DB`). DuckDB allows one writing process
  per file, so every connection is short-lived and retried while another process holds the lock.
- **Shared** (`FUNREASON_LAKE` set): a DuckLake whose catalog is that database (e.g.
  `postgres:dbname=lake host=10.0.0.5 user=funreason`) and whose data are Parquet files under
  `FUNREASON_LAKE_DATA` (a path every worker sees). Many processes on many machines write at once;
  DuckLake commits optimistically, so a transaction can fail on a conflicting commit and is retried
  here as a whole (`commit_with_retry`). The extensions come from PyPI packages (`.[cluster]`) and are
  loaded from their files: nothing is downloaded at run time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import os
import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import TypeVar

import duckdb
import polars as pl

from funreason_pipeline import config
from funreason_pipeline.frames import REJECTIONS_SCHEMA

_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked", "lock on file")
# DuckLake's words for a commit that lost to a concurrent one (its own retries exhausted, or a logical
# conflict such as two creates of one table), and the catalog database's for a racing catalog write
_CONFLICT_MARKERS = ("conflict", "Conflict", "duplicate key value", "could not serialize access",
                     "deadlock detected", "Failed to commit DuckLake transaction")
LAKE_ALIAS = "lake"
# the PyPI packages that ship the two extensions a Postgres-cataloged DuckLake needs (module, extension)
_LAKE_EXTENSIONS = (("duckdb_extension_ducklake", "ducklake"),
                    ("duckdb_extension_postgres_scanner", "postgres_scanner"))

T = TypeVar("T")


def lake_target() -> tuple[str, str] | None:
    """(catalog, data path) of the shared DuckLake when `FUNREASON_LAKE` is set; None = the local file."""
    catalog = os.environ.get("FUNREASON_LAKE", "").strip()
    if not catalog:
        return None
    data = os.environ.get("FUNREASON_LAKE_DATA", "").strip()
    if not data:
        raise RuntimeError("FUNREASON_LAKE is set but FUNREASON_LAKE_DATA (the Parquet data path every "
                           "worker sees) is not")
    return catalog, data


def _extension_file(module: str, name: str) -> Path:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeError(
            f"FUNREASON_LAKE is set but {module.replace('_', '-')} is not installed: pip install -e '.[cluster]'"
        ) from exc
    path = Path(mod.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{path} is missing: {module.replace('_', '-')} does not match duckdb "
                           f"{duckdb.__version__} (install the same version of both)")
    return path


_LAKES: dict[tuple, duckdb.DuckDBPyConnection] = {}


def _lake_instance(catalog: str, data: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    """One in-memory DuckDB per process with the lake attached (loading the extensions and attaching
    the catalog cost ~1 s); callers get cursors of it. Keyed by pid: a forked child opens its own."""
    key = (os.getpid(), catalog, data, read_only)
    con = _LAKES.get(key)
    if con is None:
        con = _open_lake(catalog, data, read_only)
        _LAKES[key] = con
    return con


def _open_lake(catalog: str, data: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    # no extension may be fetched from the network: load the packaged files, autoinstall off
    con = duckdb.connect(config={"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"})
    try:
        for module, name in _LAKE_EXTENSIONS:
            con.execute(f"LOAD '{_extension_file(module, name)}'")
        # DuckLake's own commit retries (snapshot-id races without a logical conflict), a bit more
        # patient than its defaults (10 tries from 100 ms) for a busy catalog
        con.execute("SET GLOBAL ducklake_max_retry_count = 30")
        con.execute("SET GLOBAL ducklake_retry_wait_ms = 50")
        con.execute("SET GLOBAL ducklake_retry_backoff = 1.5")
        # inlining off: every write is a Parquet file under the data path (not rows in the catalog)
        opts = f"DATA_PATH '{_sql_str(data)}', DATA_INLINING_ROW_LIMIT 0"
        if read_only:
            opts += ", READ_ONLY"
        con.execute(f"ATTACH '{_sql_str('ducklake:' + catalog)}' AS {LAKE_ALIAS} ({opts})")
    except BaseException:
        con.close()
        raise
    return con


def _connect_lake(catalog: str, data: str, read_only: bool) -> duckdb.DuckDBPyConnection:
    cur = _lake_instance(catalog, data, read_only).cursor()
    cur.execute(f"USE {LAKE_ALIAS}")
    return cur


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def is_shared() -> bool:
    return lake_target() is not None


@contextlib.contextmanager
def connect(
    path: str | Path | None = None, read_only: bool = False, timeout_s: float = 300.0
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the store: the shared DuckLake if configured (then `path` is unused), else the DuckDB file,
    waiting (jittered backoff) while another process holds its write lock."""
    lake = lake_target()
    if lake is not None:
        con = _retry_conflicts(lambda: _connect_lake(*lake, read_only), timeout_s)
    else:
        con = _connect_file(Path(path or config.db_path()), read_only, timeout_s)
    try:
        yield con
    finally:
        con.close()


def _connect_file(path: Path, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:  # lock held by another process
            if not any(m in str(exc) for m in _LOCK_MARKERS) or time.monotonic() > deadline:
                raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 0.5)


def is_conflict(exc: BaseException) -> bool:
    """A commit that lost to a concurrent writer (retry it), as opposed to a real error."""
    return isinstance(exc, duckdb.Error) and any(m in str(exc) for m in _CONFLICT_MARKERS)


# conflicts retried by this process (tests read it to see the retry path taken, logs to size backoff)
CONFLICT_RETRIES = {"count": 0}


def _retry_conflicts(attempt: Callable[[], T], timeout_s: float = 300.0) -> T:
    deadline = time.monotonic() + timeout_s
    delay = 0.05
    while True:
        try:
            return attempt()
        except duckdb.Error as exc:
            if not is_conflict(exc) or time.monotonic() > deadline:
                raise
            CONFLICT_RETRIES["count"] += 1
            time.sleep(delay * (0.5 + random.random()))  # jitter: racing writers spread out
            delay = min(delay * 2, 2.0)


@contextlib.contextmanager
def partition_lock(table: str, partition: str) -> Iterator[None]:
    """Hold an exclusive lock on one partition of one table while it is replaced, across processes and
    machines: a PostgreSQL advisory lock in the lake's catalog database (released by the server if the
    holder dies). DuckLake catches two replacements of a partition that both delete rows (same data
    file), but not two that both start from an empty partition: each would insert its rows and commit,
    doubling the partition (a retried step racing a stale copy of itself). Different partitions do not
    wait on each other. The local file needs no lock: its writers are serialized by the file lock."""
    lake = lake_target()
    if lake is None or not lake[0].startswith("postgres:"):
        yield
        return
    import psycopg2  # ships with dagster-postgres (the `cluster` extra)

    key = int.from_bytes(hashlib.blake2b(f"{table}\0{partition}".encode(), digest_size=8).digest(), "big",
                         signed=True)
    pg = psycopg2.connect(lake[0].removeprefix("postgres:"))
    try:
        pg.autocommit = True
        with pg.cursor() as cur:
            cur.execute("SELECT pg_advisory_lock(%s)", (key,))
        yield
    finally:
        pg.close()  # ends the session, which releases its advisory locks


def commit_with_retry(attempt: Callable[[], T], timeout_s: float = 300.0) -> T:
    """Run `attempt` (one whole transaction: connect, write, commit) until it commits, retrying
    conflicts with jittered exponential backoff. Each attempt must redo its writes from scratch: a
    failed commit leaves nothing behind (the data files it wrote are never referenced)."""
    return _retry_conflicts(attempt, timeout_s)


class SchemaMismatchError(ValueError):
    """New rows whose column type differs from the stored table's (not retried: a rerun cannot fix it)."""


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def conform_table(con: duckdb.DuckDBPyConnection, table: str, relation: str,
                  untyped: Sequence[str] = ()) -> list[str]:
    """Make `table` ready to take the rows of `relation` (a registered frame) by column name: create it
    with the relation's columns, or add the columns it lacks (nullable, so older rows read NULL: a
    database written by an earlier version takes new columns). Returns the added columns' names.

    A column the table has with another type is fine if DuckDB casts the new type to it implicitly
    (lossless widening: INTEGER into BIGINT, DATE into TIMESTAMP); otherwise SchemaMismatchError names
    table, column and both types, instead of a cast failing (or silently converting) inside the INSERT.
    `untyped` columns are all-null (a Polars `Null` column scans as INTEGER) and fit any type.

    Call it before the transaction changes any row of `table`: DuckDB refuses to commit an ALTER of a
    table that the same transaction has already deleted from (an ALTER first, then DELETE and INSERT,
    commits as one transaction, on a DuckDB file and on DuckLake)."""
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM {relation} LIMIT 0")
    have = {name: typ for name, typ, *_ in con.execute(f"DESCRIBE {table}").fetchall()}
    added = []
    for name, typ, *_ in con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall():
        if name not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {_ident(name)} {typ}")
            added.append(name)
        elif have[name] != typ and name not in untyped and not con.execute(
                f"SELECT can_cast_implicitly(NULL::{typ}, NULL::{have[name]})").fetchone()[0]:
            raise SchemaMismatchError(
                f"table {table}: column {name!r} is {have[name]} in the store but {typ} in the new rows; "
                f"a column's type is not changed in place: convert it (ALTER TABLE {table} ALTER COLUMN "
                f"{_ident(name)} TYPE {typ}) or write to a new database")
    return added


def rejections_frame(rows: Sequence[dict]) -> pl.DataFrame:
    # polars 2 no longer casts an ISO string to a Date column: partition keys arrive as strings
    rows = [{**r, "day": date.fromisoformat(r["day"])} if isinstance(r.get("day"), str) else r for r in rows]
    return pl.DataFrame(rows, schema=REJECTIONS_SCHEMA)


def replace_rejections(
    stage: str, day: date | None, toolset: str, rows: Sequence[dict], path: str | Path | None = None
) -> int:
    """Replace one stage's rejections for one partition (idempotent reruns, no duplicates)."""
    frame = rejections_frame(
        [{**r, "stage": stage, "day": day, "toolset": toolset} for r in rows]
    )
    def write() -> None:
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
                con.execute("INSERT INTO rejections SELECT day, toolset, stage, item_id, reason, detail "
                            "FROM new_rejections")
                con.unregister("new_rejections")
            con.execute("COMMIT")

    with partition_lock("rejections", f"{stage}|{toolset}|{day}"):
        commit_with_retry(write)
    return frame.height


def load_rejections(stage: str, where: str | None = None, path: str | Path | None = None) -> pl.DataFrame:
    """One stage's rejections (all, or those matching `where`, SQL over the table's columns); an empty
    frame when none was ever stored."""
    with connect(path) as con:
        if "rejections" not in table_names(con):
            return rejections_frame([])
        cols = ", ".join(REJECTIONS_SCHEMA)
        sql = f"SELECT {cols} FROM rejections WHERE stage = ?" + (f" AND ({where})" if where else "")
        return con.execute(sql, [stage]).pl().cast(REJECTIONS_SCHEMA)


def read_table(table: str, path: str | Path | None = None) -> pl.DataFrame:
    """A whole table (the graph tables, shared by all days); an empty frame when it is not there."""
    with connect(path) as con:
        if table not in table_names(con):
            return pl.DataFrame()
        return con.execute(f"SELECT * FROM {table}").pl()


# one sample's whole lineage: `SELECT * FROM sample_lineage WHERE sample_id = '...'`
LINEAGE_VIEW = """
CREATE OR REPLACE VIEW sample_lineage AS
SELECT s.sample_id, s.day, s.toolset, s.turn_index, s.dialogue_id, d.trajectory_id,
       t.seed AS trajectory_seed, t.scenario, t.graph_version,
       q.query, q.prompt_version AS query_prompt_version, q.model AS query_model,
       c.attempts, c.prompt_version AS cot_prompt_version, c.model AS cot_model,
       d.models AS dialogue_models, d.prompt_versions AS dialogue_prompt_versions
FROM sft_samples s
JOIN dialogues d ON d.day = s.day AND d.toolset = s.toolset AND d.dialogue_id = s.dialogue_id
JOIN trajectories t ON t.day = s.day AND t.toolset = s.toolset AND t.trajectory_id = d.trajectory_id
LEFT JOIN queries q ON q.day = s.day AND q.toolset = s.toolset AND q.trajectory_id = d.trajectory_id
     AND q.turn_index = s.turn_index
LEFT JOIN cot_traces c ON c.day = s.day AND c.toolset = s.toolset AND c.trajectory_id = d.trajectory_id
     AND c.turn_index = s.turn_index
"""


def create_lineage_view(path: str | Path | None = None) -> None:
    """(Re)create the `sample_lineage` view over the stage tables (after the day's export)."""
    with connect(path) as con:
        con.execute(LINEAGE_VIEW)


def table_names(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The tables (and views) the store holds."""
    return {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}


def rows_per_toolset(tables: tuple[str, ...], path: str | Path | None = None) -> dict[tuple[str, str], int]:
    """{(table, toolset): rows} of those `tables` that exist; empty when there is no store yet."""
    if lake_target() is None and not Path(path or config.db_path()).exists():
        return {}
    out: dict[tuple[str, str], int] = {}
    with connect(path, read_only=True) as con:
        present = table_names(con)
        for table in tables:
            if table in present:
                for ts, n in con.execute(f"SELECT toolset, count(*) FROM {table} GROUP BY toolset").fetchall():
                    out[(table, ts)] = n
    return out
