import os
import tempfile

import pytest

# Dagster wants a home even for ephemeral test instances; never the developer's data/ folder
os.environ.setdefault("DAGSTER_HOME", tempfile.mkdtemp(prefix="funreason-test-home-"))


@pytest.fixture
def tmp_db(tmp_path, monkeypatch):
    """A fresh DuckDB path for the test; FUNREASON_DB points at it so every module agrees."""
    db = tmp_path / "funreason.duckdb"
    monkeypatch.setenv("FUNREASON_DB", str(db))
    monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "exports"))
    return db
