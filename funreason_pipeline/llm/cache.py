"""The `llm_calls` table: every complete LLM response, keyed by a hash of its full request.

Key: sha256 of the canonical JSON of (base_url, model, messages, tools, response_format, sampling params,
prompt_version). Never the API key. Every complete response (HTTP 200 with a chat completion) is stored,
usable or not, as the raw response JSON text, so parsing it again gives the same result; transport
failures (5xx, timeouts, broken bodies, ...) are not stored and are re-sent by a rerun.

Writes go through `storage.connect` in batches from a background thread (`CacheWriter`): every
`interval_s` (default 15 s, stretched so flushing stays under ~10% of a core) or `max_rows` (4096)
responses, and at the end. Each response is also appended at once to a small per-process journal file next to the
database, so a process killed with SIGKILL loses no answered request: the next batch on the same
database moves the dead process's journal into `llm_calls` first (`LLMCache.recover`), then re-sends
only the requests that never got an answer. (Why not just flush every 0.25 s: a DuckDB connection
costs ~20 ms of CPU to open and ~20 ms to close, which at 128 responses/s doubled the client's CPU
per request.)

Why no PRIMARY KEY: DuckDB loads a table's ART index when a connection first touches it, and our
connections are short-lived (the file is shared by parallel runs), so a PRIMARY KEY made each flush cost
~150 ms at 50k rows and growing. Uniqueness is kept instead by the insert itself: a new row is skipped
if its hash was written since the batch started (earlier rows were already looked up at batch start, and
the zone maps on `created_at` keep that check to the recent row groups), and a batch never sends one
request twice.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from funreason_pipeline import config, storage

__all__ = ["CACHE_COLUMNS", "CacheRow", "CacheWriter", "LLMCache", "request_hash"]

log = logging.getLogger(__name__)

CREATE_SQL = """
CREATE TABLE IF NOT EXISTS llm_calls (
    request_hash VARCHAR NOT NULL,
    role VARCHAR,
    model VARCHAR,
    prompt_version VARCHAR,
    input_tokens INTEGER,
    output_tokens INTEGER,
    latency_s DOUBLE,
    finish_reason VARCHAR,
    response VARCHAR,
    created_at TIMESTAMP
)
"""
CACHE_COLUMNS = (
    "request_hash",
    "role",
    "model",
    "prompt_version",
    "input_tokens",
    "output_tokens",
    "latency_s",
    "finish_reason",
    "response",
)
_SCHEMA = pa.schema(
    [
        ("request_hash", pa.string()),
        ("role", pa.string()),
        ("model", pa.string()),
        ("prompt_version", pa.string()),
        ("input_tokens", pa.int32()),
        ("output_tokens", pa.int32()),
        ("latency_s", pa.float64()),
        ("finish_reason", pa.string()),
        ("response", pa.string()),
    ]
)


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class CacheRow(NamedTuple):
    request_hash: str
    role: str
    model: str
    prompt_version: str
    input_tokens: int
    output_tokens: int
    latency_s: float
    finish_reason: str | None
    response: str  # raw JSON text of the full response


def request_hash(
    base_url: str | None,
    model: str,
    messages: Sequence[dict[str, Any]],
    tools: Sequence[dict[str, Any]] | None,
    response_format: dict[str, Any] | None,
    sampling: dict[str, Any],
    prompt_version: str,
) -> str:
    """sha256 of the canonical JSON of everything that determines the answer (never the API key)."""
    payload = {
        "base_url": (base_url or "").rstrip("/"),
        "model": model,
        "messages": messages,
        "tools": tools,
        "response_format": response_format,
        "sampling": sampling,
        "prompt_version": prompt_version,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class LLMCache:
    """Reads and appends `llm_calls` rows through short-lived `storage.connect` connections."""

    def __init__(self, db_path: str | Path | None = None) -> None:
        self.db_path = Path(db_path) if db_path is not None else config.db_path()

    @property
    def journal_dir(self) -> Path:
        return self.db_path.with_name(self.db_path.name + ".llm-journal")

    def recover(self) -> int:
        """Move the rows of journals left by dead processes (SIGKILL, OOM) into llm_calls."""
        d = self.journal_dir
        if not d.is_dir():
            return 0
        moved = 0
        for path in sorted(d.glob("*.jsonl")):
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # its writer is alive
                with os.fdopen(os.dup(fd), "rb") as f:
                    lines = f.read().split(b"\n")
                started = _utcnow() - timedelta(days=1)
                rows = []
                for i, line in enumerate(lines):
                    try:
                        obj = json.loads(line)
                    except ValueError:
                        continue  # the torn last line of a killed writer
                    if i == 0 and isinstance(obj, dict):
                        started = datetime.fromisoformat(obj["started"])
                    elif isinstance(obj, list) and len(obj) == len(CACHE_COLUMNS):
                        rows.append(CacheRow(*obj))
                self.write(rows, since=started - timedelta(minutes=5))
                moved += len(rows)
                path.unlink(missing_ok=True)
                log.info("recovered %d llm responses from %s", len(rows), path.name)
            finally:
                os.close(fd)
        return moved

    def lookup(self, hashes: Iterable[str]) -> dict[str, tuple[str, float]]:
        """{request_hash: (response JSON text, latency_s)} for the hashes already stored."""
        wanted = list(hashes)
        if not wanted:
            return {}
        with storage.connect(self.db_path) as con:
            con.execute(CREATE_SQL)
            rows = con.execute(
                "SELECT request_hash, response, latency_s FROM llm_calls "
                "WHERE request_hash IN (SELECT unnest(?::VARCHAR[]))",
                [wanted],
            ).fetchall()
        return {h: (resp, lat) for h, resp, lat in rows}

    def write(self, rows: Sequence[CacheRow], since: datetime | None = None) -> int:
        """Append rows whose hash is not stored yet (checked among rows written after `since`)."""
        if not rows:
            return 0
        cols = list(zip(*rows, strict=True))
        table = pa.Table.from_arrays(
            [pa.array(c, type=f.type) for c, f in zip(cols, _SCHEMA, strict=True)], schema=_SCHEMA
        )
        now = _utcnow()
        since = since or now - timedelta(hours=1)
        names = ", ".join(CACHE_COLUMNS)
        with storage.connect(self.db_path) as con:
            con.execute(CREATE_SQL)
            con.register("llm_new_rows", table)
            try:
                con.execute(
                    f"INSERT INTO llm_calls ({names}, created_at) "
                    f"SELECT DISTINCT ON (request_hash) {names}, ?::TIMESTAMP FROM llm_new_rows n "
                    "WHERE n.request_hash NOT IN (SELECT request_hash FROM llm_calls "
                    "  WHERE created_at >= ?::TIMESTAMP "
                    "  AND request_hash IN (SELECT request_hash FROM llm_new_rows))",
                    [now, since],
                )
            finally:
                con.unregister("llm_new_rows")
        return len(rows)


class CacheWriter:
    """Journals each response at once, and flushes them to DuckDB in batches from a background thread.

    Journal: one append-only JSON-lines file per writer in `<db>.llm-journal/`, one `os.write` per
    response (~10 us), held under an exclusive `flock` while its process lives. A process killed with
    SIGKILL leaves its journal behind; the next batch on the same database (`LLMCache.recover`) moves
    its rows into `llm_calls`, so no answered request is lost or paid for twice. Without a journal
    (directory not writable) the last interval's responses would be lost on a crash.

    DuckDB: every `interval_s` (default 15 s with a journal, 0.25 s without) or `max_rows` responses,
    whichever comes first, and at the end. The interval stretches to at least `1 / max_duty` times the
    last flush's duration (max_duty 0.1 with a journal, 0.3 without): a flush costs ~50-70 ms of CPU (a
    DuckDB connection is ~20 ms to open and ~20 ms to close), so flushing stays a small part of a core.
    """

    def __init__(
        self,
        cache: LLMCache,
        interval_s: float | None = None,
        max_rows: int = 4096,
        max_duty: float | None = None,
        journal: bool = True,
    ) -> None:
        self.cache = cache
        self.max_rows = max_rows
        self.pending: list[CacheRow] = []
        self.flushes = 0
        self.rows_written = 0
        self.started = _utcnow()
        self.since = self.started - timedelta(minutes=5)
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self._journal_fd: int | None = None
        self._journal_path: Path | None = None
        if journal:
            self._open_journal()
        # with a journal nothing is lost in between flushes: flush rarely (cheap); without one, often
        has_journal = self._journal_fd is not None
        if interval_s is None:
            # 15 s: a flush costs ~50-80 ms of CPU whatever its size, ~0.1 ms per request at C = 64 with
            # 5 s (P2); other processes sharing the file see the rows that much later
            interval_s = 15.0 if has_journal else 0.25
        self.max_duty = max_duty if max_duty is not None else (0.1 if has_journal else 0.3)
        self.interval_s = interval_s
        self._next_wait = interval_s

    def _open_journal(self) -> None:
        try:
            d = self.cache.journal_dir
            d.mkdir(parents=True, exist_ok=True)
            path = d / f"{os.getpid()}-{uuid.uuid4().hex[:12]}.jsonl"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.write(fd, json.dumps({"journal": 1, "started": self.started.isoformat()}).encode() + b"\n")
        except OSError as exc:
            log.warning("no llm_calls journal (%s): a crash would lose the last unflushed responses", exc)
            return
        self._journal_fd, self._journal_path = fd, path

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llm-cache-writer")

    def add(self, row: CacheRow) -> None:
        if self._journal_fd is not None:
            os.write(self._journal_fd, json.dumps(row, ensure_ascii=False).encode() + b"\n")
        self.pending.append(row)
        if len(self.pending) >= self.max_rows:
            self._wake.set()

    async def _run(self) -> None:
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wait)
            except TimeoutError:
                pass
            self._wake.clear()
            if self.pending:
                await self._flush()

    async def _flush(self) -> None:
        rows, self.pending = self.pending, []
        t0 = time.perf_counter()
        try:
            await asyncio.to_thread(self.cache.write, rows, self.since)
        except Exception as exc:  # noqa: BLE001 - keep the rows; the next flush (or close) retries
            log.warning("llm_calls flush of %d rows failed, will retry: %s", len(rows), exc)
            self.pending[:0] = rows
            self.error = exc
            self._next_wait = max(self.interval_s, 1.0)
            return
        self.error = None
        self.flushes += 1
        self.rows_written += len(rows)
        self._next_wait = max(self.interval_s, (time.perf_counter() - t0) / self.max_duty)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        if self.pending:
            await self._flush()
        if self.pending:  # one more try; then give up loudly (the journal keeps the rows)
            await self._flush()
            if self.pending:
                raise RuntimeError(
                    f"could not write {len(self.pending)} responses to llm_calls in {self.cache.db_path}; "
                    f"they are kept in {self._journal_path} for the next run"
                ) from self.error
        if self._journal_fd is not None:
            assert self._journal_path is not None
            self._journal_path.unlink(missing_ok=True)
            os.close(self._journal_fd)
            self._journal_fd = None
