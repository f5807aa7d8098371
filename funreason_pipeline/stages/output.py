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


def _scalar(v: Any) -> bool:
    return isinstance(v, int | float | str | bool) and not isinstance(v, Markdown)


def combine(outs: dict[str, StageOutput]) -> StageOutput:
    """One stage's outputs over several partitions (key -> output, in run order) as one output: the
    frames stacked, the rejections merged, count metrics summed (the rest per partition), and each
    check passed only where every partition's passed (its metadata names the failed partitions). One
    partition is returned as it is, so a single-partition run reports exactly what it always did."""
    if len(outs) == 1:
        return next(iter(outs.values()))
    parts = [o.frame for o in outs.values()]
    frame = pl.concat(parts, how="diagonal_relaxed") if parts else pl.DataFrame()
    rejections = {k: v for o in outs.values() for k, v in o.rejections.items()}
    names = [k for o in outs.values() for k in o.metrics]
    metrics: dict[str, Any] = {"partitions": len(outs)}
    for name in dict.fromkeys(names):
        values = [o.metrics[name] for o in outs.values() if name in o.metrics]
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            metrics[name] = sum(values)  # rows, calls, samples: the run's total
    metrics["per_partition"] = {k: {m: v for m, v in o.metrics.items() if _scalar(v)} for k, o in outs.items()}
    checks = []
    by_name: dict[str, list[tuple[str, Check]]] = {}
    for k, o in outs.items():
        for c in o.checks:
            by_name.setdefault(c.name, []).append((k, c))
    for name, found in by_name.items():
        failed = [(k, c) for k, c in found if not c.passed]
        desc = "; ".join(f"{k}: {c.description}" for k, c in failed if c.description) or found[0][1].description
        checks.append(Check(name, not failed, {"partitions": len(found), "failed_partitions": [k for k, _ in failed]},
                            desc, warn=found[0][1].warn))
    log = [line for o in outs.values() for line in o.log]
    return StageOutput(frame, rejections, metrics, checks, log)
