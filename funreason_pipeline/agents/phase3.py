"""Phase III: the guided iterative chain. A reasoner solves each query with the primitive tools
(the advanced tool is only a hint); calls are verified by execution; on failure a critic explains
without revealing the answer and the reasoner tries again, up to K_max attempts. The kept sample has
the clean reasoning only: no hint, no critique.

The turn logic lives in agents/flow.py; `run_phase3` runs Phase III alone over given queries (a
subset run of `cot_traces`, and tests)."""

from __future__ import annotations

from typing import Any

from funreason_pipeline.agents.flow import Partition, StageResult, TraceRow
from funreason_pipeline.environments.toolsets import ToolsetConfig
from funreason_pipeline.models import ToolSpec, Trajectory

Phase3Result = StageResult

__all__ = ["Phase3Result", "TraceRow", "run_phase3"]


def run_phase3(toolset: ToolsetConfig, tools: list[ToolSpec], trajs: list[Trajectory],
               queries: dict[tuple[str, int], dict[str, Any]], k_max: int = 3, client=None,
               log=None, max_steps: int = 8) -> Phase3Result:
    """`queries[(trajectory_id, turn)]` = {"query", "advanced_tool"}; turns go in order per trajectory."""
    from funreason_pipeline.agents.flow_runner import run_partitions

    part = Partition("partition", toolset, tools, trajs, queries)
    return run_partitions([part], client, phases=("cot_traces",), k_max=k_max, log=log,
                          max_steps=max_steps)["partition"].traces
