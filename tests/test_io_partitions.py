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
