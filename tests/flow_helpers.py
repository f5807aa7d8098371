"""Phases II and III of one partition through what production runs: the flow of agents/flow.py via
agents/flow_runner.run_partitions, as stages/llm.py calls it (each turn's query, then its trace,
then the next turn)."""

from __future__ import annotations

from funreason_pipeline.agents.flow import Outcome, Partition
from funreason_pipeline.agents.flow_runner import run_partitions


def run_llm(ts, tools, trajs, client=None, **kw) -> Outcome:
    """The partition's Outcome: `.queries` (Phase II rows and rejections) and `.traces` (Phase III);
    `client` None: every role offline; `kw`: run_partitions' k_max, max_steps."""
    return run_partitions([Partition("partition", ts, tools, trajs)], client, **kw)["partition"]
