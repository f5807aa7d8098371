"""The `llm_calls` table: every complete LLM response, keyed by a hash of its full request.

Key: sha256 of the canonical JSON of (base_url, model, messages, tools, response_format, sampling params,
prompt_version). Never the API key. Every complete response (HTTP 200 with a chat completion) is stored,
usable or not, as the raw response JSON text, so parsing it again gives the same result; transport
failures (5xx, timeouts, broken bodies, ...) are not stored and are re-sent by a rerun.

Writes go through `storage.connect` in small batches from a background thread (`CacheWriter`): every
`interval_s` (default 0.25 s) or `max_rows` responses, whichever comes first, and at the end. A process
killed with SIGKILL loses only the responses of the last interval; the rerun re-sends exactly those.

Why no PRIMARY KEY: DuckDB loads a table's ART index when a connection first touches it, and our
connections are short-lived (the file is shared by parallel runs), so a PRIMARY KEY made each flush cost
~150 ms at 50k rows and growing. Uniqueness is kept instead by the insert itself: a new row is skipped
if its hash was written since the batch started (earlier rows were already looked up at batch start, and
the zone maps on `created_at` keep that check to the recent row groups), and a batch never sends one
request twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa

from funreason_pipeline import config, storage

__all__ = ["request_hash", "LLMCache", "CacheRow", "CacheWriter", "CACHE_COLUMNS"]

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
        table = pa.Table.from_arrays([pa.array(c, type=f.type) for c, f in zip(cols, _SCHEMA, strict=True)],
                                     schema=_SCHEMA)
        now = datetime.now(UTC).replace(tzinfo=None)
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
    """Buffers rows and flushes them from a background thread: every `interval_s` or `max_rows`.

    The interval stretches to at least `1 / max_duty` times the last flush's duration (a DuckDB
    connection costs ~20 ms to open), so flushing never takes more than ~`max_duty` of a core.
    """

    def __init__(
        self,
        cache: LLMCache,
        interval_s: float = 0.25,
        max_rows: int = 256,
        max_duty: float = 0.2,
    ) -> None:
        self.cache = cache
        self.interval_s = interval_s
        self.max_rows = max_rows
        self.max_duty = max_duty
        self.pending: list[CacheRow] = []
        self.flushes = 0
        self.rows_written = 0
        self.since = datetime.now(UTC).replace(tzinfo=None) - timedelta(minutes=5)
        self._wake = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._next_wait = interval_s
        self.error: BaseException | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llm-cache-writer")

    def add(self, row: CacheRow) -> None:
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
        except Exception as exc:  # keep the rows; the next flush (or close) retries
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
        if self.pending:  # one more try; then give up loudly
            await self._flush()
            if self.pending:
                raise RuntimeError(
                    f"could not write {len(self.pending)} responses to llm_calls in {self.cache.db_path}"
                ) from self.error
