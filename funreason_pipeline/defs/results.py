"""A stage's output (stages/output.py) in Dagster's types: the table, its rejections and its export
files as the asset's outputs (each stored by its IO manager), metrics as metadata, checks as check
results, content as data versions. The only place the assets' outputs are assembled, so every asset
reports the same way."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dagster as dg

from funreason_pipeline.defs.partitions import DAY_TOOLSET_EXPR, OWNERS
from funreason_pipeline.defs.rejections_io import STAGE_KEY
from funreason_pipeline.defs.resources import Processes
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


def check_result(c: Check, asset: str | None = None) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(asset_key=dg.AssetKey(asset) if asset else None, check_name=c.name, passed=c.passed,
                               description=c.description,
                               severity=dg.AssetCheckSeverity.WARN if c.warn else dg.AssetCheckSeverity.ERROR,
                               metadata=metadata(c.metadata))


def _one_partition(context: dg.AssetExecutionContext) -> bool:
    # one partition: a content version (unchanged output stops the cascade); a range: Dagster's own
    return not context.has_partition_key_range or len(context.partition_keys) == 1


def materialize(context: dg.AssetExecutionContext, out: StageOutput) -> dg.MaterializeResult:
    """The result of an asset that is only its table (no rejections, no files): log lines logged, the
    frame as the value with its content version."""
    for level, line in out.log:
        getattr(context.log, level)(line)
    return dg.MaterializeResult(value=out.frame,
                                data_version=dg.DataVersion(out.content_version()) if _one_partition(context) else None,
                                metadata=metadata(out.metrics),
                                check_results=[check_result(c) for c in out.checks] or None)


def rejections_key(stage: str) -> str:
    return f"{stage}_rejections"


def table_out(group: str, code_version: str, kinds: set[str], description: str) -> dg.AssetOut:
    """A stage's table, partitioned by day x toolset, stored by the DuckDB IO manager."""
    return dg.AssetOut(group_name=group, owners=OWNERS, kinds=kinds, code_version=code_version,
                       metadata={"partition_expr": DAY_TOOLSET_EXPR}, description=description)


def rejections_out(stage: str, group: str, code_version: str) -> dg.AssetOut:
    """The output holding `stage`'s rejections (its dropped items and why) in the `rejections` table."""
    return dg.AssetOut(
        key=dg.AssetKey(rejections_key(stage)), io_manager_key="rejections_io_manager", group_name=group,
        owners=OWNERS, kinds={"duckdb", "polars"}, code_version=code_version,
        metadata={"partition_expr": DAY_TOOLSET_EXPR, STAGE_KEY: stage},
        description=f"What {stage} dropped, one row per item with its reason (stage = '{stage}' in the "
        "`rejections` table; a rerun replaces the partition's rows).")


def exports_out(name: str, group: str, code_version: str, description: str,
                automation_condition: dg.AutomationCondition | None = None) -> dg.AssetOut:
    """An output of export files, written under the export root by the exports IO manager."""
    return dg.AssetOut(key=dg.AssetKey(name), io_manager_key="exports_io_manager", group_name=group, owners=OWNERS,
                       kinds={"file"}, code_version=code_version, description=description,
                       automation_condition=automation_condition)


def stage_deps(stage: str, ins: tuple[str, ...], exports: str | None = None) -> dict[str, set[dg.AssetKey]]:
    """A stage's multi-asset lineage: the table made from the inputs, its rejections and export files
    from the table (and the inputs), so a selection by lineage (`trajectories*`) takes them all."""
    made = {dg.AssetKey(k) for k in ins}
    deps = {stage: made, rejections_key(stage): made | {dg.AssetKey(stage)}}
    if exports is not None:
        deps[exports] = made | {dg.AssetKey(stage)}
    return deps


def results(context: dg.AssetExecutionContext, name: str, out: StageOutput, *, rejections: bool = True,
            exports: str | None = None) -> Iterator[dg.MaterializeResult]:
    """The outputs of a stage's multi-asset: the table `name` (metadata, checks), its rejections (the
    asset `<name>_rejections`; stage `name` in the table) and its export files (the asset `exports`)."""
    for level, line in out.log:
        getattr(context.log, level)(line)
    one = _one_partition(context)
    yield dg.MaterializeResult(asset_key=name, value=out.frame, metadata=metadata(out.metrics),
                               data_version=dg.DataVersion(out.content_version()) if one else None,
                               check_results=[check_result(c, name) for c in out.checks] or None)
    if rejections:
        frame = out.rejections_frame(name)
        yield dg.MaterializeResult(asset_key=rejections_key(name), value=frame,
                                   data_version=dg.DataVersion(out.rejections_version(name)) if one else None)
    if exports is not None:
        if out.exports is None:
            raise ValueError(f"{name}: the stage made no export files for {exports}")
        yield dg.MaterializeResult(asset_key=exports, value=out.exports,
                                   data_version=dg.DataVersion(out.exports.content_version()) if one else None)


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
