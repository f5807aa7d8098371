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
