import os
import sqlite3
import tempfile

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

# Dagster wants a home even for ephemeral test instances; never the developer's data/ folder
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="funreason-test-home-"))


@event.listens_for(Engine, "connect")
def _sqlite_without_fsync(dbapi_connection, _record):
    """The test Dagster instances (dg.instance_for_test: SQLite in a temporary directory) write every event
    of a run in its own transaction, and each commit waited for the disk (an fsync), a large part of every
    Dagster run in the tests. Without it a commit is still written to the OS at once, so a killed process
    loses nothing (the crash tests kill processes, they do not cut the power); only this test process'
    SQLite connections are affected, never DuckDB nor a subprocess."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")

# Fixtures that build a whole demo: every test using one is heavy (`make test-heavy`, CI's `make test-all`),
# whether it says so or not. demo_day (tests/test_rl_export.py): a demo day of all 14 BFCL toolsets.
HEAVY_FIXTURES = {"demo_day"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)


@pytest.fixture(scope="session", autouse=True)
def _probe_cache_shared_by_the_workers(tmp_path_factory, worker_id):
    """graph_helpers' probing cache, shared by the xdist workers of this session (their common temp dir)."""
    import graph_helpers

    base = tmp_path_factory.getbasetemp()
    graph_helpers.SHARED_DIR = base if worker_id == "master" else base.parent
    yield
    graph_helpers.SHARED_DIR = None


@pytest.fixture
def tmp_db(tmp_path, monkeypatch):
    """A fresh DuckDB path for the test; FUNREASON_DB points at it so every module agrees."""
    db = tmp_path / "funreason.duckdb"
    monkeypatch.setenv("FUNREASON_DB", str(db))
    monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "exports"))
    return db


@pytest.fixture(scope="session")
def stage_chain(tmp_path_factory):
    """Stage rows instead of a whole demo: one offline tickets partition through every stage function of
    funreason_pipeline.stages, without Dagster, each output stored in a real DuckDB file as its asset
    would be (stage_rows.build_chain). Built once per session (per xdist worker); tests only read it."""
    from stage_rows import build_chain

    root = tmp_path_factory.mktemp("stages")
    return build_chain(root / "funreason.duckdb")  # exports under root/exports
