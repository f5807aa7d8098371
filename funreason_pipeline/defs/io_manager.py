"""Polars frames in the store (storage.py: local DuckDB file or shared DuckLake), through dagster-duckdb's
DbIOManager.

Adapted rather than stock (dagster-duckdb-polars 0.29.27):
- loads use `connection.sql(...).pl()`, which works on duckdb 1.x and 2.x (the stock handler calls
  `.arrow()` on a connection, gone in duckdb 2.0);
- an empty frame still creates its table with the right columns, so downstream loads of an empty
  partition return an empty frame instead of failing on a missing table;
- a table written by an earlier version gets the frame's new columns (nullable: old rows read NULL)
  in the same transaction, before the partition's rows are replaced; a column whose type changed is
  an error naming table and column (`storage.conform_table`);
- connections come from `storage.connect`, which waits on the file lock with jittered backoff
  long enough for several partition runs in parallel;
- **one transaction per partition**: an output covering several partitions (one run materializing many
  toolsets of a day, BackfillPolicy.single_run) is split by its partition keys, and each partition's
  rows replace that partition alone (delete its old rows, insert the new, commit). The stock manager
  deletes the whole key *range* of each dimension, which for toolsets {a, c} would also wipe b. A row
  outside the output's partitions is an error, not silently kept. A crash mid-write leaves every
  partition either old or new, never empty;
- a commit that loses to a concurrent writer (shared DuckLake, several workers) is retried as a whole
  (`storage.commit_with_retry`), and two writers of the *same* partition take turns
  (`storage.partition_lock`), so a retried step racing a stale copy of itself cannot double it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import dagster as dg
import polars as pl
from dagster._core.definitions.metadata.metadata_set import TableMetadataSet
from dagster._core.errors import DagsterInvalidMetadata
from dagster._core.storage.db_io_manager import (
    DbIOManager,
    DbTypeHandler,
    TablePartitionDimension,
    TableSlice,
)
from dagster_duckdb.io_manager import DuckDbClient, DuckDBIOManager

from funreason_pipeline import storage


@contextmanager
def _registered(connection, obj: pl.DataFrame):
    connection.register("incoming_frame", obj.to_arrow())
    try:
        yield "incoming_frame"
    finally:
        connection.unregister("incoming_frame")


class PolarsDuckDBTypeHandler(DbTypeHandler[pl.DataFrame]):
    def prepare_table(self, table_slice: TableSlice, obj: pl.DataFrame, connection) -> list[str]:
        """Create the table, or add the columns it lacks (a database from an earlier version), before
        the partition's old rows are deleted: an ALTER after that DELETE would fail the commit."""
        with _registered(connection, obj) as frame:
            return storage.conform_table(connection, f"{table_slice.schema}.{table_slice.table}", frame,
                                         untyped=[n for n, t in obj.schema.items() if t == pl.Null])

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        if obj.height:
            with _registered(connection, obj) as frame:
                connection.execute(f"INSERT INTO {table_slice.schema}.{table_slice.table} BY NAME "
                                   f"SELECT * FROM {frame}")
        return {
            "dataframe_columns": dg.MetadataValue.table_schema(
                dg.TableSchema(columns=[dg.TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()])
            ),
        }

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
        # one transaction per block: the partition's old rows are deleted, then the handler inserts the
        # new ones; a crash in between must not leave the slice empty (tests/test_crash_duckdb.py)
        with storage.connect(context.resource_config["database"]) as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")


def _dimension(partitions_def: dg.PartitionsDefinition, key: str, expr: str,
               frame: pl.DataFrame) -> tuple[TablePartitionDimension, pl.Expr]:
    """One partition key of one dimension: its SQL slice, and the frame rows that belong to it."""
    if expr not in frame.columns:
        raise ValueError(f"partition_expr {expr!r} must be a column of the output (columns: {frame.columns})")
    if isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        window = partitions_def.time_window_for_partition_key(key)
        start, end = (t.replace(tzinfo=None) for t in (window.start, window.end))
        if frame.schema[expr] == pl.Date:
            start, end = start.date(), end.date()
        elif not isinstance(frame.schema[expr], pl.Datetime):
            raise ValueError(f"time partition column {expr!r} must be a Date or Datetime, not {frame.schema[expr]}")
        return TablePartitionDimension(expr, dg.TimeWindow(window.start, window.end)), \
            (pl.col(expr) >= start) & (pl.col(expr) < end)
    return TablePartitionDimension(expr, [key]), pl.col(expr) == key


def partition_slices(context: dg.OutputContext, base: TableSlice,
                     frame: pl.DataFrame) -> list[tuple[TableSlice, pl.DataFrame]]:
    """The output split into one (slice, rows) per partition key; unpartitioned: the whole table."""
    if not context.has_asset_partitions:
        return [(base, frame)]
    pdef = context.asset_partitions_def
    expr = (context.definition_metadata or {}).get("partition_expr")
    out, claimed = [], pl.lit(False)
    for key in context.asset_partition_keys:
        if isinstance(pdef, dg.MultiPartitionsDefinition):
            mkey = key if isinstance(key, dg.MultiPartitionKey) else pdef.get_partition_key_from_str(key)
            by_dim = mkey.keys_by_dimension
            parts = [_dimension(d.partitions_def, by_dim[d.name], expr[d.name], frame) for d in pdef.partitions_defs]
        else:
            parts = [_dimension(pdef, key, expr, frame)]
        mine = pl.lit(True)
        for _, pred in parts:
            mine = mine & pred
        out.append((base._replace(partition_dimensions=[d for d, _ in parts]), frame.filter(mine)))
        claimed = claimed | mine
    stray = frame.filter(~claimed).height
    if stray:
        raise ValueError(f"{stray} row(s) of {context.asset_key.to_user_string()} fall outside the output's "
                         f"partitions {list(context.asset_partition_keys)}: refusing to write them")
    return out


def _slice_name(table_slice: TableSlice) -> str:
    return "|".join(str(d.partitions) for d in table_slice.partition_dimensions or [])


class PartitionWiseDbIOManager(DbIOManager):
    """DbIOManager whose writes commit partition by partition, each retried on a conflicting commit."""

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            raise dg.DagsterInvariantViolationError("Unexpected 'None' output value")
        self._check_supported_type(type(obj))
        handler = self._resolve_handler(type(obj))
        # not DbIOManager._get_table_slice: it needs the keys to form one range per dimension, which
        # several toolsets of a day (or days of a toolset) written together need not
        schema = (context.definition_metadata or {}).get("schema") or self._schema or "public"
        base = TableSlice(table=context.asset_key.path[-1], schema=schema, database=self._database)
        metadata, added = {}, []

        for table_slice, rows in partition_slices(context, base, obj):
            def write(table_slice=table_slice, rows=rows):
                with self._db_client.connect(context, table_slice) as conn:
                    self._db_client.ensure_schema_exists(context, table_slice, conn)
                    new_columns = handler.prepare_table(table_slice, rows, conn)
                    self._db_client.delete_table_slice(context, table_slice, conn)
                    return handler.handle_output(context, table_slice, rows, conn), new_columns

            with storage.partition_lock(base.table, _slice_name(table_slice)):
                md, new_columns = storage.commit_with_retry(write)
            metadata, added = md or metadata, added + new_columns
        if added:
            context.log.warning(f"{base.schema}.{base.table}: added column(s) {', '.join(added)}, which the "
                                "table written by an earlier version lacked; its older rows read NULL there")
        context.add_output_metadata({
            **metadata,
            "row_count": obj.height,
            "partitions_written": len(context.asset_partition_keys) if context.has_asset_partitions else 1,
            "store": "ducklake" if storage.is_shared() else "duckdb",
        })
        try:  # unless the asset set it itself
            context.add_output_metadata(dict(TableMetadataSet(table_name=f"{base.schema}.{base.table}")))
        except DagsterInvalidMetadata:
            pass


class PolarsDuckDBIOManager(DuckDBIOManager):
    """Frames in, frames out; table = asset name, schema `main`."""

    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [PolarsDuckDBTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return PartitionWiseDbIOManager(
            db_client=_LockPatientClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="PolarsDuckDBIOManager",
        )


