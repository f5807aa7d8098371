"""Where things live: the database, exports, the toolset config. One place, read from the environment."""

from __future__ import annotations

import os
import shutil
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
    """The toolset config: `FUNREASON_TOOLSETS` if set (it *replaces* data/toolsets.yaml)."""
    return Path(os.environ.get("FUNREASON_TOOLSETS") or DATA_DIR / "toolsets.yaml")


def extra_toolsets_paths() -> list[Path]:
    """Toolset files *added* to the config: `FUNREASON_TOOLSETS_EXTRA`, paths separated by
    `os.pathsep` (`:` on Linux and macOS)."""
    raw = os.environ.get("FUNREASON_TOOLSETS_EXTRA", "")
    return [Path(p) for p in raw.split(os.pathsep) if p.strip()]


def ensure_dagster_home() -> Path:
    """`DAGSTER_HOME`, set to data/dagster_home (with the project's dagster.yaml, as `make` does) when
    the environment names none: `python -m funreason_pipeline.cli ...` then works outside `make`. A
    home that is named but does not exist yet is made (with the project's dagster.yaml), as make does."""
    home = os.environ.get("DAGSTER_HOME")
    path = Path(home) if home else DATA_DIR / "dagster_home"
    if home and path.is_dir():
        return path
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        shutil.copyfile(PROJECT_ROOT / "dagster.yaml", path / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(path)
    return path
