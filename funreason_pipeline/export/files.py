"""Export files on disk: content made in memory by the stages (relative path -> bytes) written under
an export root, each file atomically (a reader never sees half a file), and read back."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath


def _target(root: Path, relative: str) -> Path:
    rel = PurePosixPath(relative)
    if rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise ValueError(f"export file path {relative!r} must be relative to the export root, without '..'")
    return root.joinpath(*rel.parts)


def atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; exports are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_files(root: str | os.PathLike[str], files: Mapping[str, bytes]) -> list[Path]:
    """Write each file under `root` (its directories made as needed); returns their paths, sorted."""
    base = Path(root)
    targets = {rel: _target(base, rel) for rel in files}  # every path checked before anything is written
    for rel in sorted(files):
        atomic_write(targets[rel], files[rel])
    return sorted(targets.values())


def read_files(root: str | os.PathLike[str], directory: str) -> dict[str, bytes]:
    """The files directly in `directory` (relative to `root`) as relative path -> bytes; none if absent."""
    folder = _target(Path(root), directory)
    if not folder.is_dir():
        return {}
    return {f"{directory}/{p.name}": p.read_bytes() for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.startswith(".")}
