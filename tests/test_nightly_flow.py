"""The nightly side of the day's runs (defs/day.py): the sensor asks for the first step of yesterday
still due, each step one run over the day's toolsets: stale graphs, then Phase I, then the rest of
the toolsets whose Phase I passed."""

import dagster as dg

from funreason_pipeline.defs.day import (
    RANGE_END,
    RANGE_START,
    REST_ASSETS,
    YIELD_FAILED,
    next_requests,
    ranges,
)
from funreason_pipeline.defs.partitions import day_toolset_partitions, toolset_partitions

DAY = "2026-02-02"


def _key(ts: str) -> str:
    return str(dg.MultiPartitionKey({"day": DAY, "toolset": ts}))


def _report(inst, asset, keys, metadata=None):
    for k in keys:  # what a finished run records; the plan reads only the instance's event log
        inst.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=k, metadata=metadata or {}))


def _graphs_current(inst, toolsets):
    from funreason_pipeline.environments.fingerprint import graph_fingerprint
    from funreason_pipeline.environments.toolsets import toolset_by_name

    for ts in toolsets:
        inst.report_runless_asset_event(dg.AssetMaterialization(
            asset_key="api_graph", partition=ts, metadata={"graph_fingerprint": graph_fingerprint(toolset_by_name(ts))}))


def test_ranges_are_contiguous_runs_in_partition_order():
    order = ["a", "b", "c", "d", "e"]
    assert ranges(order, ["a", "b", "c", "d", "e"]) == [("a", "e")]
    assert ranges(order, ["e", "a", "b", "d"]) == [("a", "b"), ("d", "e")]
    assert ranges(order, []) == []


def test_the_day_is_graphs_then_one_phase1_run_then_one_run_for_the_rest():
    toolsets = toolset_partitions.get_partition_keys()
    with dg.instance_for_test() as inst:
        # 1. nothing built: one run for every toolset's graph (a range of toolset partitions)
        reqs = next_requests(inst, DAY, toolsets)
        assert [r.job_name for r in reqs] == ["environment_graph"]
        assert (reqs[0].tags[RANGE_START], reqs[0].tags[RANGE_END]) == (toolsets[0], toolsets[-1])
        _graphs_current(inst, toolsets)
        # 2. Phase I of the whole day in one run, trajectories only
        reqs = next_requests(inst, DAY, toolsets, {"ops": {"trajectories": {"config": {"seed": 3}},
                                                          "llm_stages": {"config": {"k_max": 2}}}})
        assert len(reqs) == 1 and reqs[0].job_name == "day_synthesis"
        assert [k.to_user_string() for k in reqs[0].asset_selection] == ["trajectories", "trajectories_rejections"]
        assert (reqs[0].tags[RANGE_START], reqs[0].tags[RANGE_END]) == (_key(toolsets[0]), _key(toolsets[-1]))
        assert reqs[0].run_config == {"ops": {"trajectories": {"config": {"seed": 3}}}}  # only its own op's config
        all_keys = day_toolset_partitions.get_partition_keys()
        i, j = all_keys.index(_key(toolsets[0])), all_keys.index(_key(toolsets[-1]))
        assert all_keys[i:j + 1] == [_key(t) for t in toolsets]  # the range is exactly the day's toolsets
        # 3. one toolset failed its yield: the rest runs for the others, as contiguous ranges
        failed = toolsets[1]
        _report(inst, "trajectories", [_key(ts) for ts in toolsets], {YIELD_FAILED: [_key(failed)]})
        reqs = next_requests(inst, DAY, toolsets)
        assert [tuple(k.to_user_string() for k in r.asset_selection) for r in reqs] == [REST_ASSETS] * 2
        assert reqs[0].partition_key == _key(toolsets[0]) and not reqs[0].tags
        assert (reqs[1].tags[RANGE_START], reqs[1].tags[RANGE_END]) == (_key(toolsets[2]), _key(toolsets[-1]))
        assert len({r.run_key for r in reqs}) == 2  # each launched once
        # 4. done: nothing more (the export is day_export's automation condition)
        _report(inst, "rl_samples", [_key(ts) for ts in toolsets if ts != failed])
        assert isinstance(next_requests(inst, DAY, toolsets), str)


def test_the_nightly_sensor_requests_yesterday_for_every_toolset(monkeypatch):
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs import day

    monkeypatch.setattr(day, "NIGHTLY_HOUR", 0)
    d = defs()
    sensor = d.resolve_sensor_def("nightly_day_sensor")
    with dg.instance_for_test() as inst:
        _graphs_current(inst, toolset_partitions.get_partition_keys())
        reqs = sensor.evaluate_tick(dg.build_sensor_context(instance=inst, repository_def=d.get_repository_def())
                                    ).run_requests
        yesterday = day._yesterday(day.datetime.now(day.UTC))
        toolsets = toolset_partitions.get_partition_keys()
        assert [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in reqs] == [
            (f"{yesterday}|{toolsets[0]}", f"{yesterday}|{toolsets[-1]}")]
        assert reqs[0].run_config["resources"] == {"processes": {"config": {"workers": 2}}}
