"""Rejections and export files are assets, stored by IO managers (defs/rejections_io.py,
defs/exports_io.py) the way the Store and the stages stored them before: a partition's rejections
replace its old ones in the one `rejections` table (none: cleared), export files land under
<root>/<day>/<toolset>/ byte for byte. Rows or files outside the output's partitions are refused.
And the statistics the stages now compute from their input frames equal those read from the
database (quality.from_frames vs quality.from_database)."""

from __future__ import annotations

from datetime import date

import dagster as dg
import duckdb
import polars as pl
import pytest
from stage_rows import DAY, TS

from funreason_pipeline import quality
from funreason_pipeline.defs.exports_io import ExportsIOManager
from funreason_pipeline.defs.rejections_io import RejectionsIOManager
from funreason_pipeline.export.files import write_files
from funreason_pipeline.frames import REJECTIONS_SCHEMA
from funreason_pipeline.stages.output import ExportFiles

days = dg.StaticPartitionsDefinition(["2026-05-01", "2026-05-02"])
toolsets = dg.StaticPartitionsDefinition(["a", "b"])
parts = dg.MultiPartitionsDefinition({"day": days, "toolset": toolsets})
EXPR = {"day": "day", "toolset": "toolset"}


def _key(day: str, ts: str) -> str:
    return str(dg.MultiPartitionKey({"day": day, "toolset": ts}))


def _rows(stage: str, day: str, ts: str, *items: str) -> pl.DataFrame:
    return pl.DataFrame([{"day": date.fromisoformat(day), "toolset": ts, "stage": stage, "item_id": i,
                          "reason": "why", "detail": ""} for i in items], schema=REJECTIONS_SCHEMA)


def _rejections_asset(frame: pl.DataFrame, stage: str = "demo"):
    @dg.asset(name=f"{stage}_rejections", partitions_def=parts, io_manager_key="rejections_io_manager",
              metadata={"partition_expr": EXPR, "rejections_of": stage})
    def rejections() -> pl.DataFrame:
        return frame
    return rejections


def _store(db, frame: pl.DataFrame, key: str, stage: str = "demo", tags: dict | None = None):
    return dg.materialize([_rejections_asset(frame, stage)], partition_key=key, tags=tags,
                          resources={"rejections_io_manager": RejectionsIOManager(database=str(db))},
                          raise_on_error=False)


def _table(db) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT day::VARCHAR, toolset, stage, item_id FROM rejections ORDER BY ALL").fetchall()


def test_a_partitions_rejections_replace_its_old_ones_and_none_clears_them(tmp_path):
    db = tmp_path / "r.duckdb"
    assert _store(db, _rows("demo", "2026-05-01", "a", "x1", "x2"), _key("2026-05-01", "a")).success
    assert _store(db, _rows("demo", "2026-05-01", "b", "y1"), _key("2026-05-01", "b")).success
    assert _store(db, _rows("other", "2026-05-01", "a", "z1"), _key("2026-05-01", "a"), stage="other").success
    assert _store(db, _rows("demo", "2026-05-01", "a", "x3"), _key("2026-05-01", "a")).success  # a rerun
    assert _table(db) == [("2026-05-01", "a", "demo", "x3"), ("2026-05-01", "a", "other", "z1"),
                          ("2026-05-01", "b", "demo", "y1")]
    assert _store(db, _rows("demo", "2026-05-01", "a"), _key("2026-05-01", "a")).success  # none: cleared
    assert _table(db) == [("2026-05-01", "a", "other", "z1"), ("2026-05-01", "b", "demo", "y1")]


def test_rejections_outside_the_partitions_or_of_another_stage_are_refused(tmp_path):
    db = tmp_path / "r.duckdb"
    stray = _store(db, _rows("demo", "2026-05-02", "a", "x"), _key("2026-05-01", "a"))
    assert not stray.success
    assert "outside the output's partitions" in str(stray.failure_data_for_node("demo_rejections").error.cause)
    other = _store(db, _rows("other", "2026-05-01", "a", "x"), _key("2026-05-01", "a"))
    assert not other.success
    assert "rows of stage(s) ['other']" in str(other.failure_data_for_node("demo_rejections").error.cause)
    with duckdb.connect(str(db)) as con:
        assert "rejections" not in {r[0] for r in con.execute("SHOW TABLES").fetchall()}  # nothing written


def test_a_downstream_asset_loads_one_stages_rejections_of_its_partitions(tmp_path):
    db = tmp_path / "r.duckdb"
    both = pl.concat([_rows("demo", "2026-05-01", "a", "x1"), _rows("demo", "2026-05-01", "b", "y1")])
    upstream = _rejections_asset(both)
    assert _store(db, _rows("other", "2026-05-01", "a", "z1"), _key("2026-05-01", "a"), stage="other").success
    seen = {}

    @dg.asset(partitions_def=parts, ins={"demo_rejections": dg.AssetIn()})
    def reader(demo_rejections: pl.DataFrame) -> None:
        seen["rows"] = sorted(demo_rejections.select("toolset", "stage", "item_id").iter_rows())
        seen["schema"] = demo_rejections.schema

    res = {"rejections_io_manager": RejectionsIOManager(database=str(db)), "io_manager": dg.mem_io_manager}
    tags = {"dagster/asset_partition_range_start": _key("2026-05-01", "a"),
            "dagster/asset_partition_range_end": _key("2026-05-01", "b")}
    assert dg.materialize([upstream], tags=tags, resources=res).success
    assert dg.materialize([upstream, reader], selection=[reader], partition_key=_key("2026-05-01", "b"),
                          resources=res).success
    assert seen["rows"] == [("b", "demo", "y1")] and dict(seen["schema"]) == REJECTIONS_SCHEMA


def _exports_asset(files: dict[str, bytes]):
    @dg.asset(partitions_def=parts, io_manager_key="exports_io_manager")
    def some_exports() -> ExportFiles:
        return ExportFiles(files)
    return some_exports


def test_export_files_land_under_their_partitions_directory_byte_for_byte(tmp_path):
    files = {"2026-05-01/a/openai.jsonl": b'{"x": 1}\n', "2026-05-01/a/README.md": b"# card\n"}
    r = dg.materialize([_exports_asset(files)], partition_key=_key("2026-05-01", "a"),
                       resources={"exports_io_manager": ExportsIOManager(root=str(tmp_path / "exports"))})
    assert r.success
    for rel, data in files.items():
        assert (tmp_path / "exports" / rel).read_bytes() == data
    md = r.get_asset_materialization_events()[0].materialization.metadata
    assert md["files"].value == 2 and md["exports"].value == str(tmp_path / "exports" / "2026-05-01" / "a")


def test_export_files_outside_the_partition_or_the_root_are_refused(tmp_path):
    root = tmp_path / "exports"
    r = dg.materialize([_exports_asset({"2026-05-01/b/openai.jsonl": b"x"})], partition_key=_key("2026-05-01", "a"),
                       resources={"exports_io_manager": ExportsIOManager(root=str(root))}, raise_on_error=False)
    assert not r.success and not root.exists()
    with pytest.raises(ValueError, match="without '..'"):
        write_files(root, {"2026-05-01/ok.txt": b"x", "../escape.txt": b"x"})
    assert not root.exists()  # every path is checked before anything is written


@pytest.mark.parametrize("toolset", [TS, None])
def test_statistics_from_frames_equal_those_from_the_database(stage_chain, toolset):
    """The stages' statistics (from their input frames) and `cli summary`'s (from the database) are
    one computation: the same partition's rows give the same figures."""
    db = stage_chain["db"]
    with duckdb.connect(str(db), read_only=True) as con:
        stored = quality.quality_stats(quality.from_database(con, DAY, toolset))
    c = stage_chain
    given = quality.quality_stats(quality.from_frames(
        trajectories=c["trajectories"].frame, tool_catalog=c["catalog"].frame, api_graph=c["graph"].frame,
        rejections=pl.concat([c[s].rejections_frame(s) for s in ("trajectories", "queries", "cot_traces",
                                                                "dialogues", "sft_samples", "rl_samples")]),
        dialogues=c["dialogues"].frame, queries=c["queries"].frame, cot_traces=c["cot_traces"].frame,
        sft_samples=c["sft"].frame))
    stored.pop("llm_tokens", None)  # the LLM cache's token sums: read from the database only
    assert given == stored
    assert given["turns_sampled"] > 0 and given["rejections_by_stage_and_reason"]


@pytest.mark.parametrize("selection", ["trajectories*", "queries*", "sft_samples*", "day_export,day_exports"])
def test_a_lineage_selection_takes_whole_computations(selection):
    """A stage's rejections (and files) hang off its table in the graph, so the documented selections
    (`dg launch --assets 'trajectories*'`, docs/operations.md) take every output of each computation:
    none of the multi-assets is asked for a part of itself, which Dagster refuses."""
    from funreason_pipeline.definitions import defs

    repo = defs().get_repository_def()
    keys = dg.AssetSelection.from_coercible(selection.split(",")).resolve(repo.asset_graph)
    job = repo.get_implicit_job_def_for_assets(keys)
    assert job.get_subset(asset_selection=keys) is not None
    names = {k.to_user_string() for k in keys}
    stage = selection.rstrip("*")
    if stage.endswith("_samples") or stage in ("trajectories", "queries"):
        assert f"{stage}_rejections" in names


def test_a_selection_of_part_of_a_computation_is_refused():
    from funreason_pipeline.definitions import defs

    repo = defs().get_repository_def()
    keys = {dg.AssetKey("sft_samples")}  # without its rejections and export files
    with pytest.raises(dg.DagsterInvalidSubsetError):
        repo.get_implicit_job_def_for_assets(keys).get_subset(asset_selection=keys)
