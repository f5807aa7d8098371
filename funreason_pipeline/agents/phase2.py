"""Phase II: per turn, an advanced tool (tooling agent) and a hard user query (querying agent).

The turn logic lives in agents/flow.py (one concurrent flow for Phases II and III); `run_phase2`
runs Phase II alone over one partition's trajectories, for a subset run of `queries` and for tests.
"""

from __future__ import annotations

from funreason_pipeline.agents.flow import Partition, QueryRow, StageResult
from funreason_pipeline.models import ToolSpec, Trajectory

Phase2Result = StageResult

__all__ = ["Phase2Result", "QueryRow", "run_phase2"]


def run_phase2(trajs: list[Trajectory], tools: list[ToolSpec], client=None) -> Phase2Result:
    """`client` None = offline agents; else an LLMClient with tooling and querying roles."""
    from funreason_pipeline.agents.flow_runner import run_partitions

    part = Partition("partition", None, tools, trajs)  # type: ignore[arg-type]  # Phase III needs the toolset
    return run_partitions([part], client, phases=("queries",))["partition"].queries


