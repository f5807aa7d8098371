"""DuckDB storage for Polars frames, through dagster-duckdb's DbIOManager.

Adapted rather than stock (dagster-duckdb-polars 0.29.27):
- loads use `connection.sql(...).pl()`, which works on duckdb 1.x and 2.x (the stock handler calls
  `.arrow()` on a connection, gone in duckdb 2.0);
- an empty frame still creates its table with the right columns, so downstream loads of an empty
  partition return an empty frame instead of failing on a missing table;
- connections come from `storage.connect`, which waits on the file lock with jittered backoff
  long enough for several partition runs in parallel;
- a write (delete the partition's rows, insert the new ones) is one transaction, so a crash mid-write
  leaves the old partition whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import dagster as dg
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient, DuckDBIOManager

from funreason_pipeline import storage


class PolarsDuckDBTypeHandler(DbTypeHandler[pl.DataFrame]):
    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        arrow = obj.to_arrow()
        connection.register("incoming_frame", arrow)
        target = f"{table_slice.schema}.{table_slice.table}"
        connection.execute(f"CREATE TABLE IF NOT EXISTS {target} AS SELECT * FROM incoming_frame LIMIT 0")
        if obj.height:
            connection.execute(f"INSERT INTO {target} BY NAME SELECT * FROM incoming_frame")
        connection.unregister("incoming_frame")
        context.add_output_metadata({
            "row_count": obj.height,
            "dataframe_columns": dg.MetadataValue.table_schema(
                dg.TableSchema(columns=[dg.TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()])
            ),
        })

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        if table_slice.partition_dimensions and len(context.asset_partition_keys) == 0:
            return pl.DataFrame()
        return connection.sql(DuckDbClient.get_select_statement(table_slice)).pl()

    @property
    def supported_types(self):
        return [pl.DataFrame]


class _LockPatientClient(DuckDbClient):
    @staticmethod
    @contextmanager
    def connect(context, _):
        # one transaction per block: DbIOManager deletes the partition's old rows, then the handler
        # inserts the new ones; a crash in between must not leave the slice empty (tests/test_crash_duckdb.py)
        with storage.connect(context.resource_config["database"]) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")


class PolarsDuckDBIOManager(DuckDBIOManager):
    """Frames in, frames out; table = asset name, schema `main`."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [PolarsDuckDBTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return DbIOManager(
            db_client=_LockPatientClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="PolarsDuckDBIOManager",
        )
