"""Every usable tool of every toolset is a target each day: Phase I at the demo's settings, on the
graph its graph stage builds, over several days (a tool only one scenario in three can serve, such as
`diff` with two files in the current folder, still gets its turn)."""

from __future__ import annotations

import pytest
from graph_helpers import user_edges

from funreason_pipeline.environments.toolsets import load_toolsets, toolset_by_name
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.sampling.sampler import SamplerConfig

DEMO = SamplerConfig(min_turns=3, max_turns=6, max_calls_per_turn=6)  # defs TrajectoryConfig's defaults
DAYS = ["2026-12-07", "2026-12-08", "2026-12-09"]
TOOLSETS = [t.name for t in load_toolsets()]


@pytest.mark.heavy
@pytest.mark.parametrize("name", TOOLSETS)
def test_every_usable_tool_is_a_target_on_every_demo_day(name):
    ts = toolset_by_name(name)
    tools, edges, _ = user_edges(ts)
    for day in DAYS:
        result = sample_partition(ts, tools, edges, day, 6, DEMO)
        assert len(result.trajectories) >= 6, (day, len(result.trajectories))
        assert result.uncovered == [], (day, result.uncovered)
        targets = set(result.targets_reached)
        usable = {t.name for t in tools} - set(result.unusable)
        assert targets == usable, (day, sorted(usable - targets))
        # what cannot be a target says why, and is recorded as a rejection
        assert all(result.unusable.values())
        assert {r.item_id.rsplit("/", 1)[1] for r in result.rejections if r.reason == "target_unusable"} == set(
            result.unusable)
