"""The nightly run's LLM stages as ONE run per day: once every toolset's trajectories of the day are
materialized, one run materializes queries + cot_traces of all of them (the multi-asset's
BackfillPolicy.single_run takes the whole range, so one flow keeps the endpoint busy); once every
toolset's cot_traces are in, dialogues + sft_samples run per toolset (CPU work, in parallel runs).

Sensors, not schedules: the LLM run must wait for the last Phase I partition, whenever that ends.
Their run keys (one per day and stage) make each launch happen once. Backfills from the UI need no
sensor: a backfill of `queries`/`cot_traces` over many partitions already becomes one run.
"""

from datetime import UTC, datetime, timedelta

import dagster as dg

from funreason_pipeline.defs.partitions import toolset_partitions

llm_job = dg.define_asset_job(
    "nightly_llm_stages", selection=dg.AssetSelection.assets("queries", "cot_traces"),
    description="Phases II-III of every toolset of a day in one run (one concurrent LLM flow).",
)
after_job = dg.define_asset_job(
    "nightly_dialogues", selection=dg.AssetSelection.assets("dialogues", "sft_samples", "rl_samples"),
    description="Phase IV, the SFT set and its RL rows of one day x toolset, after the day's LLM run.",
)


def _day_keys(day: str) -> list[str]:
    return [str(dg.MultiPartitionKey({"day": day, "toolset": ts})) for ts in toolset_partitions.get_partition_keys()]


def day_complete(instance: dg.DagsterInstance, asset: str, day: str) -> bool:
    """Every toolset's partition of `asset` for `day` has been materialized."""
    done = instance.get_materialized_partitions(dg.AssetKey(asset))
    return all(k in done for k in _day_keys(day))


def llm_run_request(day: str) -> dg.RunRequest:
    keys = _day_keys(day)
    return dg.RunRequest(run_key=f"llm|{day}", tags={"dagster/asset_partition_range_start": keys[0],
                                                      "dagster/asset_partition_range_end": keys[-1]})


def _yesterday() -> str:
    return (datetime.now(UTC) - timedelta(days=1)).date().isoformat()


@dg.sensor(job=llm_job, minimum_interval_seconds=60, name="nightly_llm_sensor",
           description="When all of yesterday's trajectories are in: one run for every toolset's LLM stages.")
def nightly_llm_sensor(context: dg.SensorEvaluationContext):
    day = _yesterday()
    if day_complete(context.instance, "trajectories", day):
        yield llm_run_request(day)
    else:
        yield dg.SkipReason(f"waiting for every toolset's trajectories of {day}")


@dg.sensor(job=after_job, minimum_interval_seconds=60, name="nightly_dialogues_sensor",
           description="When all of yesterday's cot_traces are in: dialogues and SFT samples per toolset.")
def nightly_dialogues_sensor(context: dg.SensorEvaluationContext):
    day = _yesterday()
    if not day_complete(context.instance, "cot_traces", day):
        yield dg.SkipReason(f"waiting for every toolset's cot_traces of {day}")
        return
    for key in _day_keys(day):
        yield dg.RunRequest(run_key=f"after|{key}", partition_key=key)
