"""The nightly LLM run: one run for the whole day, launched only once every toolset's Phase I is in."""

import dagster as dg

from funreason_pipeline.defs.nightly_flow import (
    _day_keys,
    _yesterday,
    nightly_dialogues_sensor,
    nightly_llm_sensor,
)


def _report(inst, asset, keys):
    for k in keys:  # what a finished run records; the sensors read only the instance's event log
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=k))


def test_llm_sensor_waits_for_every_toolset_then_requests_one_run_for_the_day():
    day = _yesterday()
    keys = _day_keys(day)
    with dg.instance_for_test() as inst:
        _report(inst, "trajectories", keys[:-1])
        out = list(nightly_llm_sensor(dg.build_sensor_context(instance=inst)))
        assert len(out) == 1 and isinstance(out[0], dg.SkipReason)
        _report(inst, "trajectories", keys[-1:])
        out = list(nightly_llm_sensor(dg.build_sensor_context(instance=inst)))
        assert len(out) == 1 and isinstance(out[0], dg.RunRequest)
        tags = out[0].tags
        assert tags["dagster/asset_partition_range_start"] == keys[0]
        assert tags["dagster/asset_partition_range_end"] == keys[-1]
        assert out[0].run_key == f"llm|{day}"
        # the range covers exactly the day's toolsets, in partition order
        from funreason_pipeline.defs.partitions import day_toolset_partitions

        all_keys = day_toolset_partitions.get_partition_keys()
        i, j = all_keys.index(keys[0]), all_keys.index(keys[-1])
        assert all_keys[i:j + 1] == keys


def test_dialogues_sensor_runs_each_toolset_after_the_day_llm_run():
    keys = _day_keys(_yesterday())
    with dg.instance_for_test() as inst:
        assert isinstance(next(iter(nightly_dialogues_sensor(dg.build_sensor_context(instance=inst)))), dg.SkipReason)
        _report(inst, "cot_traces", keys)
        out = list(nightly_dialogues_sensor(dg.build_sensor_context(instance=inst)))
        assert sorted(r.partition_key for r in out) == sorted(keys)
