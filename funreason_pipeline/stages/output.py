"""What every stage returns, in plain types the Dagster layer translates (defs/results.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.models import Rejection


class Markdown(str):
    """A metric shown as markdown (a table preview, a mermaid graph, a card); a plain str is text."""


@dataclass
class Check:
    """One asset check's outcome; `warn`: a warning, not an error (blocking is the asset's spec)."""

    name: str
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    warn: bool = False


@dataclass
class StageOutput:
    """The table, the rejections by partition ((day or None, toolset) -> rejections; a partition
    listed with none clears its old ones), the metrics, the checks, and log lines (level, text)."""

    frame: pl.DataFrame
    rejections: dict[tuple[str | None, str], list[Rejection]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)

    def content_version(self) -> str:
        return frames.content_version(self.frame)

    def all_rejections(self) -> list[Rejection]:
        return [r for rs in self.rejections.values() for r in rs]
