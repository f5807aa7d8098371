"""The day export starts when the day's sft_samples partitions are done (an automation condition on
its upstream partitions), not at a fixed hour."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from funreason_pipeline.environments.toolsets import load_toolsets


def _export_requested(d, inst, cursor, now):
    result = dg.evaluate_automation_conditions(defs=d, instance=inst, cursor=cursor, evaluation_time=now,
                                               asset_selection=dg.AssetSelection.assets("day_export"))
    parts = set()
    for r in result.results:
        if r.key == dg.AssetKey("day_export"):
            parts |= set(r.true_subset.expensively_compute_partition_keys())
    return parts, result.cursor


def _materialized(inst, day, toolset):
    from funreason_pipeline.defs.export_assets import DAY_INS

    key = str(dg.MultiPartitionKey({"day": day, "toolset": toolset}))
    for asset in DAY_INS:  # what day_export reads: the samples, the RL rows, the rest for the statistics
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=key))


def test_day_export_waits_for_every_toolset_of_the_day_then_runs_once():
    from funreason_pipeline.definitions import defs

    d = defs()
    assert "day_export_automation" in {s.name for s in d.sensors or []}
    assert not [s for s in d.schedules or [] if "export" in s.name]  # no fixed-offset export schedule
    now = datetime(2026, 2, 3, 6, 0, tzinfo=UTC)
    yesterday = (now - timedelta(days=1)).date().isoformat()
    toolsets = [t.name for t in load_toolsets()]
    with dg.instance_for_test() as inst:
        requested, cursor = _export_requested(d, inst, None, now)
        assert requested == set()
        for ts in toolsets[:-1]:
            _materialized(inst, yesterday, ts)
        requested, cursor = _export_requested(d, inst, cursor, now)
        assert requested == set()  # one toolset of the day is still missing
        _materialized(inst, yesterday, toolsets[-1])
        requested, cursor = _export_requested(d, inst, cursor, now)
        assert requested == {yesterday}
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key="day_export", partition=yesterday))
        requested, cursor = _export_requested(d, inst, cursor, now)
        assert requested == set()  # handled: nothing new upstream


def test_day_export_does_not_start_after_a_failed_blocking_check():
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.partitions import day_toolset_partitions

    @dg.asset(name="sft_samples", partitions_def=day_toolset_partitions,
              check_specs=[dg.AssetCheckSpec("every_sample_replays", asset="sft_samples", blocking=True)])
    def samples_that_do_not_replay():  # a real run whose blocking check fails, as the stage reports it
        return dg.MaterializeResult(check_results=[dg.AssetCheckResult(check_name="every_sample_replays",
                                                                       passed=False)])

    d = defs()
    now = datetime(2026, 2, 3, 6, 0, tzinfo=UTC)
    yesterday = (now - timedelta(days=1)).date().isoformat()
    toolsets = [t.name for t in load_toolsets()]
    with dg.instance_for_test() as inst:
        _, cursor = _export_requested(d, inst, None, now)
        for ts in toolsets[1:]:
            _materialized(inst, yesterday, ts)
        run = dg.materialize([samples_that_do_not_replay], partition_key=f"{yesterday}|{toolsets[0]}",
                             instance=inst, raise_on_error=False)
        assert not run.success
        requested, _ = _export_requested(d, inst, cursor, now)
        assert requested == set()
