"""Prompts are files under prompts/; a prompt's version is the hash of its text."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from funreason_pipeline.seeds import short_hash

PROMPT_DIR = Path(__file__).parent / "prompts"


def prompt_dir() -> Path:
    """The package's prompts, or `FUNREASON_PROMPTS_DIR` (a copy to experiment with)."""
    return Path(os.environ.get("FUNREASON_PROMPTS_DIR") or PROMPT_DIR)
ROLES = ("tooling", "querying", "reasoning", "reasoning_json", "critic", "reply", "system")
PHASE3_PROMPTS = ("reasoning", "reasoning_json", "critic", "reply", "system")  # cot_traces' version


@cache
def _read(path: str, mtime_ns: int) -> str:
    return Path(path).read_text()


def prompt(role: str) -> str:
    path = prompt_dir() / f"{role}.md"
    if not path.exists():
        raise FileNotFoundError(f"no prompt file for role {role!r}: {path}")
    return _read(str(path), path.stat().st_mtime_ns)


def prompt_version(*roles: str) -> str:
    """A short hash over the named prompts' texts (order-independent)."""
    return short_hash("\n\x00".join(f"{r}:{prompt(r)}" for r in sorted(roles)), 10)
