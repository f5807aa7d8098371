"""A stage's output (stages/output.py) in Dagster's types: rejections written through the store,
metrics as metadata, checks as check results, the frame's content as its data version. The only
place the assets' outputs are assembled, so every asset reports the same way."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import dagster as dg

from funreason_pipeline.defs.resources import Processes, Store
from funreason_pipeline.stages.output import Check, Markdown, StageOutput, combine


def metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Markdown as markdown, paths as paths, dicts and lists as JSON; numbers and text as they are."""
    def one(v: Any) -> Any:
        if isinstance(v, Markdown):
            return dg.MetadataValue.md(str(v))
        if isinstance(v, Path):
            return dg.MetadataValue.path(str(v))
        if isinstance(v, dict | list):
            return dg.MetadataValue.json(v)
        return v
    return {k: one(v) for k, v in values.items()}


def check_result(c: Check) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(check_name=c.name, passed=c.passed, description=c.description,
                               severity=dg.AssetCheckSeverity.WARN if c.warn else dg.AssetCheckSeverity.ERROR,
                               metadata=metadata(c.metadata))


def write_rejections(store: Store, stage: str, out: StageOutput) -> None:
    for (day, toolset), rejections in out.rejections.items():
        store.replace_rejections(stage, date.fromisoformat(day) if day else None, toolset, rejections)


def materialize(context: dg.AssetExecutionContext, out: StageOutput, store: Store | None = None,
                stage: str | None = None) -> dg.MaterializeResult:
    """The asset's result: rejections written (as `stage`, default the asset's name), log lines
    logged, the frame as the value with its content version."""
    for level, line in out.log:
        getattr(context.log, level)(line)
    if store is not None:
        write_rejections(store, stage or context.assets_def.key.to_user_string(), out)
    # one partition: a content version (unchanged output stops the cascade); a range: Dagster's own
    one = not context.has_partition_key_range or len(context.partition_keys) == 1
    return dg.MaterializeResult(value=out.frame, data_version=dg.DataVersion(out.content_version()) if one else None,
                                metadata=metadata(out.metrics),
                                check_results=[check_result(c) for c in out.checks] or None)


def per_partition(processes: Processes, stage: Callable[..., StageOutput],
                  calls: dict[str, tuple[tuple, dict]]) -> StageOutput:
    """`stage` once per partition of the run (key -> its arguments), spread over the run's processes,
    as one output (stages/output.combine)."""
    return combine(each_partition(processes, stage, calls))


def each_partition(processes: Processes, stage: Callable[..., StageOutput],
                   calls: dict[str, tuple[tuple, dict]]) -> dict[str, StageOutput]:
    return dict(zip(calls, processes.map(stage, list(calls.values())), strict=True))


def failed_partitions(out: StageOutput, check: str, keys: list[str]) -> list[str]:
    """The partitions of a (combined) output whose check `check` failed."""
    for c in out.checks:
        if c.name == check:
            return list(c.metadata.get("failed_partitions", [] if c.passed else keys))
    return []


def output(name: str, out: StageOutput, store: Store, version: bool) -> dg.Output:
    """One output of a multi-asset (the LLM stages); `version`: a content version (one partition),
    else Dagster's own (a range of partitions)."""
    write_rejections(store, name, out)
    return dg.Output(out.frame, output_name=name, metadata=metadata(out.metrics),
                     data_version=dg.DataVersion(out.content_version()) if version else None)
