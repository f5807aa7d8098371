"""Jobs, the nightly schedule, and the automation condition that starts the day export."""

import os
from datetime import timedelta

import dagster as dg

from funreason_pipeline.defs.partitions import toolset_partitions

NIGHTLY_HOUR = int(os.environ.get("FUNREASON_NIGHTLY_HOUR", "2"))


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
    description="Tool catalog and environment-API graph for one toolset.",
)

# the day's Phase I for one toolset; the LLM stages then run once for all toolsets (nightly_flow.py)
synthesis_job = dg.define_asset_job(
    "nightly_synthesis",
    selection=dg.AssetSelection.assets("trajectories"),
    description="Phase I trajectories for a day x toolset; nightly_llm_sensor then runs every toolset's LLM "
    "stages in one run, and nightly_dialogues_sensor the rest.",
)


@dg.schedule(
    job=synthesis_job, cron_schedule=f"0 {NIGHTLY_HOUR} * * *", execution_timezone="UTC",
    name="nightly_synthesis_schedule",
    description=f"Nightly at {NIGHTLY_HOUR:02d}:00 UTC (FUNREASON_NIGHTLY_HOUR): yesterday x every toolset.",
)
def nightly_schedule(context: dg.ScheduleEvaluationContext):
    """One run per toolset for the day that just ended.

    Written out rather than built with build_schedule_from_partitioned_job: the day dimension
    includes today (end_offset=1, so `make demo` can build today), and that helper would then
    request today's still-open partition.
    """
    yesterday = (context.scheduled_execution_time - timedelta(days=1)).date().isoformat()
    run_config = nightly_run_config() or {}
    for toolset in toolset_partitions.get_partition_keys():
        key = dg.MultiPartitionKey({"day": yesterday, "toolset": toolset})
        yield dg.RunRequest(run_key=f"{yesterday}|{toolset}", partition_key=str(key), run_config=run_config)


export_job = dg.define_asset_job(
    "combined_day_export", selection=dg.AssetSelection.assets("day_export"),
    description="The day's combined export across toolsets, dataset card and lineage view.",
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
    "day_export_automation", target=dg.AssetSelection.assets("day_export"),
    description="Evaluates day_export's automation condition: the combined export of a day starts once every "
    "toolset's sft_samples partition of that day is materialized. Turn it on with the schedules.",
)
