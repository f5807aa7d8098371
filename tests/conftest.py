import os
from pathlib import Path

import pytest

os.environ.setdefault("DAGSTER_HOME", str(Path(__file__).parent / ".dagster_home_unused"))


@pytest.fixture
def tmp_db(tmp_path, monkeypatch):
    """A fresh DuckDB path for the test; FUNREASON_DB points at it so every module agrees."""
    db = tmp_path / "funreason.duckdb"
    monkeypatch.setenv("FUNREASON_DB", str(db))
    monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "exports"))
    return db
