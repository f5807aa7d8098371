"""A database written by an earlier version takes new partitions (storage.conform_table, called by
the IO manager before it replaces a partition's rows): the columns added since (`role_models`,
`injected_errors`, `provenance`) are added to the stored tables, older rows read NULL there, and a
column whose type changed incompatibly stops the write with an error naming table and column.

The old database is a real one: one day of one toolset materialized through the real assets, then
the new columns dropped from its tables, as an earlier version would have left them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from funreason_pipeline import storage

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("dagster_e2e", ROOT / "scripts" / "dagster_e2e.py")
e2e = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(e2e)

TOOLSET, OLD_DAY, NEW_DAY = "tickets", "2026-05-01", "2026-05-02"
# the columns a database of an earlier version lacks, per table
NEW_COLUMNS = {"queries": ["role_models"], "cot_traces": ["role_models"],
               "dialogues": ["role_models", "injected_errors"], "sft_samples": ["role_models", "provenance"]}


@pytest.fixture(scope="module")
def base_db(tmp_path_factory) -> Path:
    """OLD_DAY of TOOLSET materialized offline by the current version (copied by each test)."""
    tmp = tmp_path_factory.mktemp("schema-base")
    db = tmp / "base.duckdb"
    with pytest.MonkeyPatch.context() as mp:
        for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
            mp.delenv(k)
        mp.setenv("FUNREASON_EXPORTS", str(tmp / "exports"))
        e2e.materialize_reference(db, [(OLD_DAY, TOOLSET)])
    return db


@pytest.fixture
def old_db(base_db, tmp_path, monkeypatch) -> Path:
    """A copy of the base database with the new columns dropped: what an earlier version wrote."""
    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        monkeypatch.delenv(k)
    monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / "exports"))
    db = tmp_path / "old.duckdb"
    shutil.copy(base_db, db)
    with duckdb.connect(str(db)) as con:
        for table, cols in NEW_COLUMNS.items():
            for c in cols:
                con.execute(f"ALTER TABLE {table} DROP COLUMN {c}")
    return db


def _materialize(db: Path, selection: list[str], key: str,
                 instance: dg.DagsterInstance | None = None) -> dg.ExecuteInProcessResult:
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.resources import build_resources

    # each asset with the other outputs of its computation (rejections, export files)
    return dg.materialize(list(defs().assets or []), partition_key=key,
                          selection=dg.AssetSelection.assets(*selection).required_multi_asset_neighbors(),
                          resources=build_resources(str(db)), instance=instance or dg.DagsterInstance.ephemeral(),
                          raise_on_error=False)


def _day_key(day: str) -> str:
    return str(dg.MultiPartitionKey({"day": day, "toolset": TOOLSET}))


def _rows(db: Path, table: str, day: str) -> list[dict]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(f"SELECT * FROM {table} WHERE day = ? ORDER BY ALL", [day]).pl().to_dicts()


def test_old_database_takes_new_partitions_and_its_old_rows_read_null(old_db):
    before = {t: _rows(old_db, t, OLD_DAY) for t in NEW_COLUMNS}
    assert all(before.values())

    instance = dg.DagsterInstance.ephemeral()
    res = _materialize(old_db, e2e.DAY_ASSETS, _day_key(NEW_DAY), instance)
    assert res.success, [str(e.event_specific_data.error) for e in res.all_events
                         if e.event_type_value == "STEP_FAILURE"]
    warnings = [e.user_message for e in instance.all_logs(res.run_id) if "added column(s)" in e.user_message]
    assert any(w.startswith("main.dialogues: added column(s) role_models, injected_errors") for w in warnings), warnings

    for table, cols in NEW_COLUMNS.items():
        new = _rows(old_db, table, NEW_DAY)
        assert new, f"no {NEW_DAY} rows in {table}"
        assert all(r[c] is not None for r in new for c in cols), f"{table}: new rows lack {cols}"
        old = _rows(old_db, table, OLD_DAY)
        assert all(r[c] is None for r in old for c in cols), f"{table}: old rows should read NULL in {cols}"
        assert [{k: v for k, v in r.items() if k not in cols} for r in old] == before[table], table
        with duckdb.connect(str(old_db), read_only=True) as con:  # added at the end, as an ALTER does
            assert [n for n, *_ in con.execute(f"DESCRIBE {table}").fetchall()][-len(cols):] == cols

    # the old day still exports: its samples count as provenance "unrecorded"
    res = _materialize(old_db, ["day_export"], OLD_DAY)
    assert res.success
    md = res.asset_materializations_for_node("day_export")[0].metadata
    by_prov = md["samples_by_provenance"].value
    assert by_prov.get("unrecorded") == len(before["sft_samples"]), by_prov


def test_an_incompatible_type_change_names_table_and_column(old_db):
    with duckdb.connect(str(old_db)) as con:  # an earlier version that stored `passed` as text
        con.execute("ALTER TABLE cot_traces ALTER passed TYPE VARCHAR USING CASE WHEN passed THEN 'yes' ELSE 'no' END")
    before = _rows(old_db, "cot_traces", OLD_DAY)

    res = _materialize(old_db, e2e.DAY_ASSETS, _day_key(NEW_DAY))
    assert not res.success
    err = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    text = str(err.event_specific_data.error)
    assert "SchemaMismatchError" in text and "main.cot_traces" in text and "'passed'" in text, text
    assert "VARCHAR in the store but BOOLEAN in the new rows" in text, text
    assert _rows(old_db, "cot_traces", NEW_DAY) == []  # the failed write left nothing
    assert _rows(old_db, "cot_traces", OLD_DAY) == before


@pytest.mark.parametrize(("stored", "incoming", "untyped", "error"), [
    ("BIGINT", pl.Int32, (), None),  # widening: DuckDB casts it implicitly, losslessly
    ("DATE", pl.Date, (), None),
    ("INTEGER", pl.Int64, (), "is INTEGER in the store but BIGINT"),  # narrowing could overflow
    ("BIGINT", pl.String, (), "is BIGINT in the store but VARCHAR"),
    ("BOOLEAN", pl.Null, ("x",), None),  # an all-null column fits any type
    ("BOOLEAN", pl.Null, (), "is BOOLEAN in the store but INTEGER"),
])
def test_conform_table_accepts_widening_only(stored, incoming, untyped, error):
    con = duckdb.connect()
    con.execute(f"CREATE TABLE t (k VARCHAR, x {stored})")
    frame = pl.DataFrame({"k": ["a"], "x": [None], "y z": [[1]]}, schema={"k": pl.String, "x": incoming,
                                                                         "y z": pl.List(pl.Int64)})
    con.register("f", frame.to_arrow())
    if error:
        with pytest.raises(storage.SchemaMismatchError, match=f"table t: column 'x' {error}"):
            storage.conform_table(con, "t", "f", untyped)
        assert [n for n, *_ in con.execute("DESCRIBE t").fetchall()] == ["k", "x"]
        return
    assert storage.conform_table(con, "t", "f", untyped) == ["y z"]
    con.execute("INSERT INTO t BY NAME SELECT * FROM f")
    assert con.execute('SELECT k, x, "y z" FROM t').fetchall() == [("a", None, [1])]


# --- the shared store (DuckLake; a DuckDB-file catalog here, the cluster uses PostgreSQL) ---------------
days = dg.DailyPartitionsDefinition(start_date="2026-11-01", end_date="2026-11-05")
FRAME: dict = {}


@dg.asset(partitions_def=days, metadata={"partition_expr": "day"})
def events(context) -> pl.DataFrame:
    return FRAME["frame"].with_columns(pl.lit(context.partition_key).str.to_date().alias("day"))


def test_ducklake_table_takes_new_columns(tmp_path, monkeypatch):
    from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager

    monkeypatch.setenv("FUNREASON_LAKE", str(tmp_path / "catalog.ducklake"))
    monkeypatch.setenv("FUNREASON_LAKE_DATA", str(tmp_path / "data") + "/")

    def run(frame: pl.DataFrame, key: str) -> dg.ExecuteInProcessResult:
        FRAME["frame"] = frame
        return dg.materialize([events], partition_key=key, instance=dg.DagsterInstance.ephemeral(),
                              resources={"io_manager": PolarsDuckDBIOManager(database="unused", schema="main")},
                              raise_on_error=False)

    assert run(pl.DataFrame({"i": [1, 2]}), "2026-11-01").success  # the old column set
    assert run(pl.DataFrame({"i": [3], "tag": ["new"]}), "2026-11-02").success
    bad = run(pl.DataFrame({"i": ["three"], "tag": ["x"]}), "2026-11-03")
    assert not bad.success
    err = next(e for e in bad.all_events if e.event_type_value == "STEP_FAILURE")
    assert "column 'i' is BIGINT in the store but VARCHAR" in str(err.event_specific_data.error)
    with storage.connect() as con:  # the process's read-write lake (a file catalog takes one attach)
        got = con.execute("SELECT strftime(day, '%Y-%m-%d'), i, tag FROM main.events ORDER BY ALL").fetchall()
    assert got == [("2026-11-01", 1, None), ("2026-11-01", 2, None), ("2026-11-02", 3, "new")]
