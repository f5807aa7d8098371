"""The IO manager's partition-wise writes on the default local DuckDB file (defs/io_manager.py): an
output covering several partitions replaces exactly those partitions (each in its own transaction),
leaves the others alone, and refuses rows that belong to none of them."""

from __future__ import annotations

import dagster as dg
import duckdb
import polars as pl
import pytest

from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager

days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-05")
toolsets = dg.StaticPartitionsDefinition(["a", "b", "c"])
parts = dg.MultiPartitionsDefinition({"day": days, "toolset": toolsets})
ROWS: dict = {}  # what the asset returns next: {"tag": str, "extra": [(day, toolset)]}


@dg.asset(partitions_def=parts, metadata={"partition_expr": {"day": "day", "toolset": "toolset"}},
          backfill_policy=dg.BackfillPolicy.single_run())
def events(context) -> pl.DataFrame:
    keys = [(k.keys_by_dimension["day"], k.keys_by_dimension["toolset"]) for k in context.partition_keys]
    rows = [{"day": d, "toolset": t, "tag": ROWS["tag"], "i": i} for d, t in keys + ROWS.get("extra", [])
            for i in range(2)]
    return pl.DataFrame(rows).with_columns(pl.col("day").str.to_date())


def _materialize(db, tag, start, end=None, extra=()):
    ROWS.update(tag=tag, extra=list(extra))
    io = PolarsDuckDBIOManager(database=str(db), schema="main")
    if end is None:
        return dg.materialize([events], resources={"io_manager": io}, partition_key=start,
                              instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    return dg.materialize([events], resources={"io_manager": io}, instance=dg.DagsterInstance.ephemeral(),
                          tags={"dagster/asset_partition_range_start": start,
                                "dagster/asset_partition_range_end": end}, raise_on_error=False)


def _table(db):
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute("SELECT strftime(day, '%Y-%m-%d'), toolset, tag, count(*) FROM events "
                           "GROUP BY ALL ORDER BY ALL").fetchall()


def test_multi_partition_output_replaces_exactly_its_partitions(tmp_path):
    db = tmp_path / "t.duckdb"
    for t in ("a", "b", "c"):
        for d in ("2026-11-01", "2026-11-02"):
            assert _materialize(db, "old", f"{d}|{t}").success
    assert _materialize(db, "old", "2026-11-04|b").success
    # one run over days 01..02 x toolsets a..b (a range is a rectangle per dimension): 4 partitions
    res = _materialize(db, "new", "2026-11-01|a", "2026-11-02|b")
    assert res.success
    written = {(d, t) for d, t, tag, _ in _table(db) if tag == "new"}
    assert written == {(d, t) for d in ("2026-11-01", "2026-11-02") for t in "ab"}
    assert all(n == 2 for *_, n in _table(db))  # every partition whole, none doubled
    assert {(d, t) for d, t, tag, _ in _table(db) if tag == "old"} == {
        ("2026-11-01", "c"), ("2026-11-02", "c"), ("2026-11-04", "b")}
    md = res.asset_materializations_for_node("events")[0].metadata
    assert md["row_count"].value == 8 and md["partitions_written"].value == 4


def test_rows_outside_the_outputs_partitions_are_refused(tmp_path):
    db = tmp_path / "t.duckdb"
    assert _materialize(db, "old", "2026-11-03|c").success
    res = _materialize(db, "bad", "2026-11-01|a", extra=[("2026-11-03", "c")])
    assert not res.success
    err = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    assert "fall outside the output's partitions" in str(err.event_specific_data.error)
    assert _table(db) == [("2026-11-03", "c", "old", 2)]  # nothing written, the other partition intact


def test_time_partition_column_must_be_a_date(tmp_path):
    from funreason_pipeline.defs.io_manager import _dimension

    frame = pl.DataFrame({"day": ["2026-11-01"]})
    with pytest.raises(ValueError, match="must be a Date or Datetime"):
        _dimension(days, "2026-11-01", "day", frame)


# --- public API only, and what inputs load ---------------------------------------------------------------

def test_the_io_manager_uses_only_dagsters_public_api():
    """No import from `dagster._...` (nor dagster-duckdb, built on them), no `dg._...` attribute: a
    Dagster upgrade that moves internals cannot break storage."""
    import ast
    from pathlib import Path

    from funreason_pipeline.defs import io_manager

    tree = ast.parse(Path(io_manager.__file__).read_text())
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names] + \
        [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert "dagster" in modules
    private = [m for m in modules if m.startswith(("dagster.", "dagster_"))]
    private += [f"dg.{n.attr}" for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr.startswith("_")
                and isinstance(n.value, ast.Name) and n.value.id in ("dg", "dagster")]
    assert private == []
    assert "_core" not in Path(io_manager.__file__).read_text()


LOADED: dict = {}


@dg.asset(partitions_def=days, ins={"events": dg.AssetIn(
    partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="day"))})
def day_rollup(context, events: pl.DataFrame) -> None:
    LOADED[context.partition_key] = events


@dg.asset
def everything(events) -> None:  # unpartitioned, no annotation: the whole table as a frame
    LOADED["all"] = events


def test_inputs_load_their_partitions_rows(tmp_path):
    db = tmp_path / "t.duckdb"
    assert _materialize(db, "x", "2026-11-01|a", "2026-11-02|c").success
    assert _materialize(db, "y", "2026-11-03|b").success
    io = PolarsDuckDBIOManager(database=str(db), schema="main")
    for key in ("2026-11-02", "2026-11-03", "2026-11-04"):
        assert dg.materialize([events, day_rollup], selection=[day_rollup], partition_key=key,
                              resources={"io_manager": io}, instance=dg.DagsterInstance.ephemeral()).success
    assert sorted(LOADED["2026-11-02"].select("toolset", "tag").rows()) == [(t, "x") for t in "aabbcc"]
    assert LOADED["2026-11-03"].select("toolset", "tag").rows() == [("b", "y"), ("b", "y")]
    assert LOADED["2026-11-04"].height == 0 and LOADED["2026-11-04"].columns == ["day", "toolset", "tag", "i"]
    assert dg.materialize([events, everything], selection=[everything], resources={"io_manager": io},
                          instance=dg.DagsterInstance.ephemeral()).success
    assert LOADED["all"].height == 14


daily = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-06")


@dg.asset(partitions_def=daily, metadata={"partition_expr": "ts"})
def ticks(context) -> pl.DataFrame:
    start = context.partition_time_window.start.replace(tzinfo=None)
    return pl.DataFrame({"ts": [start, start.replace(hour=23)], "n": [1, 2]})


@dg.asset(partitions_def=daily, ins={"ticks": dg.AssetIn(partition_mapping=dg.TimeWindowPartitionMapping(
    start_offset=-2, end_offset=-1, allow_nonexistent_upstream_partitions=True))})
def previous_two_days(context, ticks: pl.DataFrame) -> None:
    LOADED[context.partition_key] = ticks


def test_time_window_inputs_load_their_window_and_no_keys_is_an_empty_frame(tmp_path):
    io = PolarsDuckDBIOManager(database=str(tmp_path / "t.duckdb"), schema="main")
    for key in ("2026-11-01", "2026-11-02", "2026-11-03", "2026-11-04"):
        assert dg.materialize([ticks], partition_key=key, resources={"io_manager": io},
                              instance=dg.DagsterInstance.ephemeral()).success
    for key in ("2026-11-01", "2026-11-04"):
        assert dg.materialize([ticks, previous_two_days], selection=[previous_two_days], partition_key=key,
                              resources={"io_manager": io}, instance=dg.DagsterInstance.ephemeral()).success
    assert LOADED["2026-11-01"].shape == (0, 0)  # no upstream partition before the first day
    assert sorted({d.day for d in LOADED["2026-11-04"]["ts"]}) == [2, 3] and LOADED["2026-11-04"].height == 4


def test_a_multi_partition_set_that_is_no_rectangle_loads_exactly_its_keys():
    from funreason_pipeline.defs.io_manager import input_where

    frame = pl.DataFrame({"day": [f"2026-11-0{d}" for d in (1, 1, 2, 2)], "toolset": ["a", "b", "a", "b"]}) \
        .with_columns(pl.col("day").str.to_date())
    expr = {"day": "day", "toolset": "toolset"}
    with duckdb.connect() as con:
        con.register("f", frame.to_arrow())
        def rows(keys):
            where = input_where(dg.AssetKey("f"), parts, keys, expr)
            return con.sql(f"SELECT strftime(day, '%d'), toolset FROM f WHERE {where} ORDER BY ALL").fetchall()
        assert rows(["2026-11-01|a", "2026-11-02|b"]) == [("01", "a"), ("02", "b")]
        assert rows(["2026-11-01|a", "2026-11-01|b", "2026-11-02|a", "2026-11-02|b"]) == sorted(
            (f"0{d}", t) for d in (1, 2) for t in "ab")
        assert " OR " not in input_where(dg.AssetKey("f"), parts, ["2026-11-01|a", "2026-11-02|a"], expr)


@dg.asset(partitions_def=toolsets, metadata={"partition_expr": "toolset"})
def maybe_empty(context) -> pl.DataFrame:
    rows = [] if context.partition_key == "a" else [{"toolset": context.partition_key, "v": 1.5}]
    return pl.DataFrame(rows, schema={"toolset": pl.String, "v": pl.Float64})


def test_an_empty_frame_creates_its_table_and_metadata_name_it(tmp_path):
    db = tmp_path / "t.duckdb"
    res = dg.materialize([maybe_empty], partition_key="a", instance=dg.DagsterInstance.ephemeral(),
                         resources={"io_manager": PolarsDuckDBIOManager(database=str(db), schema="main")})
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("DESCRIBE main.maybe_empty").fetchall()[1][:2] == ("v", "DOUBLE")
        assert con.execute("SELECT count(*) FROM main.maybe_empty").fetchone() == (0,)
    md = res.asset_materializations_for_node("maybe_empty")[0].metadata
    assert md["dagster/table_name"].value == "main.maybe_empty" and md["store"].value == "duckdb"
    assert md["row_count"].value == 0 and md["partitions_written"].value == 1
    assert [c.name for c in md["dataframe_columns"].schema.columns] == ["toolset", "v"]
