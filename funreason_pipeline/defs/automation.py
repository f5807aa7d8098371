"""The graph and export jobs, the nightly run's size, and the automation condition that starts the day
export (the day's order of runs and the nightly sensor: defs/day.py)."""

import os
from datetime import timedelta

import dagster as dg


def nightly_run_config() -> dict | None:
    """The nightly run's size, read at each tick: FUNREASON_NIGHTLY_TRAJECTORIES (trajectories per
    partition) and FUNREASON_NIGHTLY_EDGE_TARGET (extra trajectories until that share of the graph's
    edges is exercised, Q3: 0.9). Unset: the asset defaults."""
    cfg: dict = {}
    raw_n = os.environ.get("FUNREASON_NIGHTLY_TRAJECTORIES")
    if raw_n:
        if not raw_n.isdigit() or int(raw_n) < 1:
            raise ValueError(f"FUNREASON_NIGHTLY_TRAJECTORIES must be a positive integer, got {raw_n!r}")
        cfg["trajectories_per_partition"] = int(raw_n)
    raw_t = os.environ.get("FUNREASON_NIGHTLY_EDGE_TARGET")
    if raw_t:
        try:
            target = float(raw_t)
        except ValueError:
            target = -1.0
        if not 0 < target <= 1:
            raise ValueError(f"FUNREASON_NIGHTLY_EDGE_TARGET must be a share in (0, 1], got {raw_t!r}")
        cfg["edge_coverage_target"] = target
    return {"ops": {"trajectories": {"config": cfg}}} if cfg else None

# per-toolset graph assets: rebuilt when the toolset config or the environments change
graph_job = dg.define_asset_job(
    "environment_graph", selection=dg.AssetSelection.assets("tool_catalog", "api_graph"),
    description="Tool catalogs and environment-API graphs of a range of toolsets (one run).",
)

export_job = dg.define_asset_job(
    "combined_day_export", selection=dg.AssetSelection.assets("day_export", "day_exports"),
    description="The day's combined export across toolsets (files, dataset card, manifest) and the lineage view.",
)

AC = dg.AutomationCondition
# The day's export runs when the day's sft_samples are done: every toolset's partition of the day
# materialized (none missing, none in progress, no blocking check failed) and one of them updated since
# the export last ran. `eager()` with a lookback: the nightly synthesis builds *yesterday*, and
# eager's default window is only the newest partition (today).
DAY_EXPORT_CONDITION = (
    AC.in_latest_time_window(lookback_delta=timedelta(days=3))
    & (AC.newly_missing() | AC.any_deps_updated()).since_last_handled()
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    # no partition of the day whose blocking check (every_sample_replays) failed
    & ~AC.any_deps_match(AC.any_checks_match(AC.check_failed(), blocking_only=True))
    & ~AC.in_progress()
).with_label("the day's sft_samples are complete")

day_export_automation = dg.AutomationConditionSensorDefinition(
    "day_export_automation", target=dg.AssetSelection.assets("day_export", "day_exports"),
    description="Evaluates day_export's automation condition: the combined export of a day starts once every "
    "toolset's sft_samples partition of that day is materialized. Turn it on with the schedules.",
)
