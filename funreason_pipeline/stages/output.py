"""What every stage returns, in plain types the Dagster layer translates (defs/results.py)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
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


@dataclass(frozen=True)
class ExportFiles:
    """Export files as content: path relative to the export root (`<day>/<toolset>/openai.jsonl`,
    `<day>/README.md`) -> bytes. The stage makes them; the exports IO manager writes them."""

    files: dict[str, bytes] = field(default_factory=dict)

    @classmethod
    def under(cls, directory: str, files: dict[str, bytes]) -> ExportFiles:
        """`files` (name -> bytes) in `directory` (relative to the export root)."""
        return cls({f"{directory}/{name}": data for name, data in files.items()})

    def content_version(self) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.files):
            digest.update(path.encode() + b"\0" + hashlib.sha256(self.files[path]).digest())
        return digest.hexdigest()[:16]


@dataclass
class StageOutput:
    """The table, the rejections by partition ((day or None, toolset) -> rejections; a partition
    listed with none clears its old ones), the metrics, the checks, log lines (level, text), and
    the export files the stage made (None: it makes none)."""

    frame: pl.DataFrame
    rejections: dict[tuple[str | None, str], list[Rejection]] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    log: list[tuple[str, str]] = field(default_factory=list)
    exports: ExportFiles | None = None

    def content_version(self) -> str:
        return frames.content_version(self.frame)

    def all_rejections(self) -> list[Rejection]:
        return [r for rs in self.rejections.values() for r in rs]

    def rejections_frame(self, stage: str) -> pl.DataFrame:
        """The rejections as rows of the `rejections` table (frames.REJECTIONS_SCHEMA), `stage` named."""
        return pl.DataFrame([{"day": date.fromisoformat(day) if day else None, "toolset": toolset, "stage": stage,
                              "item_id": r.item_id, "reason": r.reason, "detail": r.detail}
                             for (day, toolset), rs in self.rejections.items() for r in rs],
                            schema=frames.REJECTIONS_SCHEMA)

    def rejections_version(self, stage: str) -> str:
        return frames.content_version(self.rejections_frame(stage))


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
    made = [o.exports for o in outs.values() if o.exports is not None]
    exports = ExportFiles({p: b for e in made for p, b in e.files.items()}) if made else None
    return StageOutput(frame, rejections, metrics, checks, log, exports)
