"""The llm_calls cache: reruns, what is cached, crash safety (SIGKILL mid-batch)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import pytest
from llm_helpers import comparable, make_client, reqs, run_batch

from funreason_pipeline.llm.cache import CacheRow, LLMCache
from testing.llm_server import TestServer

ROOT = Path(__file__).resolve().parent.parent


def test_unchanged_rerun_sends_nothing_and_returns_the_same(tmp_path):
    db = tmp_path / "f.duckdb"
    with TestServer(latency=0.01) as srv:
        first = run_batch(make_client(srv.url, db), reqs(30))
        assert srv.stats()["total"] == 30
        again = run_batch(make_client(srv.url, db), reqs(30))  # a new client, as a new Dagster run would be
        assert srv.stats()["total"] == 30  # 0 requests sent
    assert again.stats.cache_hits == 30 and again.stats.sent == 0
    assert all(r.cached for r in again.results) and not any(r.cached for r in first.results)
    assert [comparable(r) for r in again.results] == [comparable(r) for r in first.results]
    with duckdb.connect(str(db), read_only=True) as con:
        cols = {r[0] for r in con.execute("DESCRIBE llm_calls").fetchall()}
        n, distinct = con.execute("SELECT count(*), count(DISTINCT request_hash) FROM llm_calls").fetchone()
        row = con.execute(
            "SELECT role, model, prompt_version, input_tokens > 0, latency_s > 0 FROM llm_calls LIMIT 1"
        ).fetchone()
    assert {
        "request_hash",
        "role",
        "model",
        "prompt_version",
        "input_tokens",
        "output_tokens",
        "latency_s",
        "response",
        "created_at",
    } <= cols
    assert n == distinct == 30
    assert row == ("querying", "test-model", "v1", True, True)


def test_changed_prompt_version_resends_exactly_the_changed_requests(tmp_path):
    db = tmp_path / "f.duckdb"
    with TestServer() as srv:
        run_batch(make_client(srv.url, db), reqs(20))
        changed = reqs(20)
        changed[:5] = reqs(5, prompt_version="v2")
        res = run_batch(make_client(srv.url, db), changed)
        assert srv.stats()["total"] == 25
    assert res.stats.sent == 5 and res.stats.cache_hits == 15


def test_unusable_responses_are_cached_transport_failures_are_not(tmp_path):
    db = tmp_path / "f.duckdb"
    # every answer truncated (finish_reason=length): complete responses -> cached
    with TestServer(rate_truncated=1.0) as srv:
        r1 = run_batch(make_client(srv.url, db), reqs(5))
        assert all(r.ok and r.finish_reason == "length" for r in r1.results)
        r2 = run_batch(make_client(srv.url, db), reqs(5))
        assert srv.stats()["total"] == 5 and r2.stats.cache_hits == 5
    # transport failures (500 after retries) -> not cached, re-sent by the rerun
    db2 = tmp_path / "g.duckdb"
    with TestServer(rate_500=1.0) as srv:
        bad = run_batch(make_client(srv.url, db2, max_attempts=1, breaker_failures=100), reqs(5))
        assert bad.stats.failed == 5
    with TestServer() as srv:
        good = run_batch(make_client(srv.url, db2), reqs(5))
        assert srv.stats()["total"] == 5 and good.stats.ok == 5


def test_cache_write_keeps_request_hash_unique(tmp_path):
    cache = LLMCache(tmp_path / "u.duckdb")
    rows = [CacheRow(f"h{i}", "critic", "m", "v", 1, 2, 0.1, "stop", '{"x": 1}') for i in range(10)]
    cache.write(rows)
    cache.write(rows[5:] + [CacheRow("h10", "critic", "m", "v", 1, 2, 0.1, "stop", "{}")])
    cache.write(rows[:2] + rows[:2])  # duplicates inside one write too
    with duckdb.connect(str(tmp_path / "u.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT request_hash) FROM llm_calls").fetchone() == (
            11,
            11,
        )
    assert set(cache.lookup([f"h{i}" for i in range(12)])) == {f"h{i}" for i in range(11)}


CHILD = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from llm_helpers import make_client, reqs, run_batch
    run_batch(make_client({url!r}, {db!r}, concurrency=4, **{opts!r}), reqs({n}))
    """
)


@pytest.mark.parametrize(
    "journal",
    [True, False],
    ids=["journal", "no-journal"],
)
def test_sigkill_mid_batch_then_rerun_resends_only_unfinished(tmp_path, journal):
    n, kill_at = (240, 100) if journal else (400, 200)
    db = tmp_path / "k.duckdb"
    # with the journal: no time-triggered flush before the kill (the journal alone must save the
    # answers); without: DuckDB flushes every 0.05 s (stretched to <= 30% duty), a crash loses what
    # came after the last flush. How much that is depends on the machine's load (a flush delayed
    # by a busy core stretches the next interval), so that case only bounds it by what was answered.
    opts = {"cache_flush_interval_s": 3600.0} if journal else {"cache_journal": False}
    with TestServer(latency=0.04, record=True) as srv:
        code = CHILD.format(tests=str(ROOT / "tests"), url=srv.url, db=str(db), n=n, opts=opts)
        child = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
        deadline = time.monotonic() + 30
        while srv.stats()["by_outcome"].get("ok", 0) < kill_at:  # about half done
            assert child.poll() is None, "child ended before the kill"
            assert time.monotonic() < deadline
            time.sleep(0.01)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        answered_before = srv.stats()["by_outcome"]["ok"]
        seen_before = [e["last_user"] for e in srv.stats()["log"]]

        client = make_client(srv.url, db, concurrency=4)
        all_reqs = reqs(n)
        cache = LLMCache(db)
        flushed = len(cache.lookup(client.request_hash(r) for r in all_reqs))
        left = list(cache.journal_dir.glob("*.jsonl"))
        assert bool(left) == journal, "the killed child left its journal"
        cache.recover()  # what the rerun does first
        assert not list(cache.journal_dir.glob("*.jsonl"))
        persisted = set(cache.lookup(client.request_hash(r) for r in all_reqs))
        persisted_items = {r.messages[-1]["content"] for r in all_reqs if client.request_hash(r) in persisted}
        lost = answered_before - len(persisted)
        if journal:
            assert flushed == 0  # the rows were saved by the journal, not by a flush
            # answered by the server but lost: at most the C=4 responses the child was still reading
            assert 0 <= lost <= 4, (answered_before, flushed, len(persisted))
        else:
            assert flushed == len(persisted)  # nothing to recover without a journal
            assert 0 <= lost <= answered_before, (answered_before, flushed, len(persisted))

        rerun = run_batch(client, all_reqs)
        resent = [e["last_user"] for e in srv.stats()["log"][len(seen_before) :]]

    unfinished = {r.messages[-1]["content"] for r in all_reqs} - persisted_items
    assert sorted(resent) == sorted(unfinished)  # each unfinished request once, nothing finished again
    assert rerun.stats.cache_hits == len(persisted) and rerun.stats.sent == len(unfinished)

    with TestServer(latency=0.0) as srv2:  # an uninterrupted run of the same batch
        fresh = run_batch(make_client(srv2.url, tmp_path / "fresh.duckdb", concurrency=4), all_reqs)
    # same final results; the request hash includes the base URL, so compare the rest
    assert [comparable(r)[2:] for r in rerun.results] == [comparable(r)[2:] for r in fresh.results]
    with duckdb.connect(str(db), read_only=True) as con:
        counts = con.execute("SELECT count(*), count(DISTINCT request_hash) FROM llm_calls").fetchone()
    assert counts == (n, n)  # no duplicates, nothing missing
    assert not list(LLMCache(db).journal_dir.glob("*.jsonl"))  # a clean run leaves no journal


def test_writer_flushes_in_batches_before_the_end(tmp_path):
    """Rows reach DuckDB every `max_rows` responses, not only at close (deterministic: no timer)."""
    import asyncio

    from funreason_pipeline.llm.cache import CacheWriter

    cache = LLMCache(tmp_path / "w.duckdb")

    async def go() -> tuple[int, int, int]:
        writer = CacheWriter(cache, interval_s=3600.0, max_rows=10, journal=False)
        writer.start()
        for i in range(25):
            writer.add(CacheRow(f"h{i}", "critic", "m", "v", 1, 2, 0.1, "stop", "{}"))
            if (i + 1) % 10 == 0:
                for _ in range(3000):  # the background flush writes the batch (30 s at most)
                    if writer.rows_written >= i + 1:
                        break
                    await asyncio.sleep(0.01)
        before_close = len(cache.lookup([f"h{i}" for i in range(25)]))
        flushes = writer.flushes
        await writer.close()
        return before_close, flushes, len(cache.lookup([f"h{i}" for i in range(25)]))

    before_close, flushes, after = asyncio.run(go())
    assert (before_close, flushes, after) == (20, 2, 25)
