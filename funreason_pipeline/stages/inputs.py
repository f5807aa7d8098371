"""A day x toolset partition's inputs as models, from the frames its asset loads (shared by the
stages that re-execute calls: sft_samples and rl_samples)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from funreason_pipeline import frames
from funreason_pipeline.environments.toolsets import ToolsetConfig, toolset_by_name
from funreason_pipeline.models import ToolSpec, Trajectory


@dataclass
class PartitionInputs:
    toolset: ToolsetConfig
    tools: list[ToolSpec]
    trajectories: dict[str, Trajectory]  # by trajectory_id


def partition_inputs(toolset: str, tool_catalog: pl.DataFrame, trajectories: pl.DataFrame) -> PartitionInputs:
    return PartitionInputs(toolset_by_name(toolset), frames.tools_from_frame(tool_catalog),
                           {t.trajectory_id: t for t in frames.trajectories_from_frame(trajectories)})


def stacked(frames_: list[pl.DataFrame]) -> pl.DataFrame:
    """Frames of one kind from several assets (the earlier stages' rejections) as one."""
    return pl.concat(frames_, how="diagonal_relaxed")


def partition_calls(keys: list[tuple[str, str]],
                    by_partition: dict[str, pl.DataFrame | list[pl.DataFrame]] | None = None,
                    by_toolset: dict[str, pl.DataFrame] | None = None, **fixed) -> dict[str, tuple[tuple, dict]]:
    """A run's (day, toolset) partitions as one stage call each: key "day|toolset" -> ((day, toolset),
    keyword arguments): each frame of `by_partition` (a list: stacked into one) cut to the partition's
    rows, each of `by_toolset` to the toolset's, plus `fixed`. Rows keep their stored order."""
    by_partition = {n: stacked(f) if isinstance(f, list) else f for n, f in (by_partition or {}).items()}
    cut = {name: frames.split_by(df, ("day", "toolset")) for name, df in by_partition.items()}
    cut_ts = {name: frames.split_by(df, ("toolset",)) for name, df in (by_toolset or {}).items()}
    return {f"{day}|{ts}": ((day, ts), {
        **{n: parts.get((day, ts), by_partition[n].clear()) for n, parts in cut.items()},
        **{n: parts.get((ts,), by_toolset[n].clear()) for n, parts in cut_ts.items()}, **fixed})
        for day, ts in keys}


def toolset_calls(toolsets: list[str], by_toolset: dict[str, pl.DataFrame] | None = None,
                  **fixed) -> dict[str, tuple[tuple, dict]]:
    """The same for per-toolset assets: toolset -> ((toolset,), its slice of each frame, plus `fixed`)."""
    cut = {name: frames.split_by(df, ("toolset",)) for name, df in (by_toolset or {}).items()}
    return {ts: ((ts,), {**{n: parts.get((ts,), by_toolset[n].clear()) for n, parts in cut.items()}, **fixed})
            for ts in toolsets}
