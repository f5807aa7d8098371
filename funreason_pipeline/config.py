"""Where things live: the database, exports, the toolset config. One place, read from the environment."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"


def db_path() -> Path:
    """The pipeline's DuckDB file: `FUNREASON_DB` if set, else data/funreason.duckdb."""
    return Path(os.environ.get("FUNREASON_DB") or DATA_DIR / "funreason.duckdb")


def exports_dir(database: str | Path | None = None) -> Path:
    """Exports live beside the database (data/exports) unless `FUNREASON_EXPORTS` says otherwise."""
    return Path(os.environ.get("FUNREASON_EXPORTS") or Path(database or db_path()).parent / "exports")


def toolsets_path() -> Path:
    return Path(os.environ.get("FUNREASON_TOOLSETS") or DATA_DIR / "toolsets.yaml")
