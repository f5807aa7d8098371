"""Prompts are files under prompts/; a prompt's version is the hash of its text."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from funreason_pipeline.seeds import short_hash

PROMPT_DIR = Path(__file__).parent / "prompts"
ROLES = ("tooling", "querying", "reasoning", "critic", "reply", "system")


@lru_cache(maxsize=None)
def _read(role: str, mtime: float) -> str:
    return (PROMPT_DIR / f"{role}.md").read_text()


def prompt(role: str) -> str:
    path = PROMPT_DIR / f"{role}.md"
    if not path.exists():
        raise FileNotFoundError(f"no prompt file for role {role!r}: {path}")
    return _read(role, path.stat().st_mtime)


def prompt_version(*roles: str) -> str:
    """A short hash over the named prompts' texts (order-independent)."""
    return short_hash("\n\x00".join(f"{r}:{prompt(r)}" for r in sorted(roles)), 10)
