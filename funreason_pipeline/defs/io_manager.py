"""Polars frames in the store (storage.py: local DuckDB file or shared DuckLake), through an IO manager
written on Dagster's public API only (`dg.ConfigurableIOManager`, the public properties of
`dg.OutputContext`/`dg.InputContext`, `dg.MultiPartitionsDefinition`, `dg.TimeWindow`...): nothing here
imports `dagster._...` or dagster-duckdb, so a Dagster upgrade that moves its internals cannot break
storage (tests/test_io_partitions.py checks the imports).

It keeps what the earlier version, built on dagster-duckdb's DbIOManager, did (same tables, same SQL):
- a table is `<schema>.<asset name>`, the schema from the asset's `schema` metadata, else the configured
  `schema` (`main` in defs/resources.py), else `public`;
- loads use `connection.sql(...).pl()`, which works on duckdb 1.x and 2.x (the stock handler calls
  `.arrow()` on a connection, gone in duckdb 2.0). A partitioned input loads the rows of its partition
  keys, filtered on the upstream asset's `partition_expr` (one per dimension of a multi-partition);
  an input with no partition keys is an empty frame; an unpartitioned one, the whole table;
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
  (`storage.partition_lock`), so a retried step racing a stale copy of itself cannot double it;
- output metadata: the frame's columns (`dataframe_columns`), `row_count`, `partitions_written`,
  `store` (ducklake/duckdb), and `dagster/table_name` unless the asset set it; a warning names the
  columns added to an older table.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

import dagster as dg
import polars as pl
from pydantic import Field

from funreason_pipeline import storage

# the metadata key Dagster reads a materialization's table from (what TableMetadataSet(table_name=...)
# writes; the set itself is not exported by `dagster`)
TABLE_NAME_KEY = "dagster/table_name"
# how a time window's bounds appear in the SQL (as dagster-duckdb wrote them: naive, in the
# partitions definition's timezone)
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


class TablePartitionDimension(NamedTuple):
    """One dimension of a table's partitioning: the column (SQL expression) and which of its values:
    a time window, or partition keys."""

    partition_expr: str
    partitions: dg.TimeWindow | Sequence[str]


class TableSlice(NamedTuple):
    """Part of a table: `partition_dimensions` (ANDed) for a write, `where` (any SQL) for a load; neither:
    the whole table."""

    table: str
    schema: str
    database: str | None = None
    columns: Sequence[str] | None = None
    partition_dimensions: Sequence[TablePartitionDimension] | None = None
    where: str | None = None

    @property
    def name(self) -> str:
        return f"{self.schema}.{self.table}"


def _sql_str(value: str) -> str:
    return value.replace("'", "''")


def _window_sql(expr: str, window: dg.TimeWindow) -> str:
    return f"{expr} >= '{window.start.strftime(_TIME_FORMAT)}' AND {expr} < '{window.end.strftime(_TIME_FORMAT)}'"


def _dimension_sql(dim: TablePartitionDimension) -> str:
    if isinstance(dim.partitions, dg.TimeWindow):  # before Sequence: a TimeWindow is a tuple
        return _window_sql(dim.partition_expr, dim.partitions)
    return f"{dim.partition_expr} in ({', '.join(_sql_literal(k) for k in dim.partitions)})"


def _sql_literal(key: str) -> str:
    return f"'{_sql_str(key)}'"


def slice_where(table_slice: TableSlice) -> str | None:
    if table_slice.where is not None:
        return table_slice.where
    if table_slice.partition_dimensions:
        return " AND\n".join(_dimension_sql(d) for d in table_slice.partition_dimensions)
    return None


def select_statement(table_slice: TableSlice) -> str:
    cols = ", ".join(table_slice.columns) if table_slice.columns else "*"
    where = slice_where(table_slice)
    query = f"SELECT {cols} FROM {table_slice.name}"
    return query if where is None else f"{query} WHERE\n{where}"


def delete_statement(table_slice: TableSlice) -> str:
    where = slice_where(table_slice)
    query = f"DELETE FROM {table_slice.name}"
    return query if where is None else f"{query} WHERE\n{where}"


@contextmanager
def _registered(connection, obj: pl.DataFrame):
    connection.register("incoming_frame", obj.to_arrow())
    try:
        yield "incoming_frame"
    finally:
        connection.unregister("incoming_frame")


@contextmanager
def _transaction(database: str) -> Iterator[Any]:
    """One connection (storage.connect: lock-patient, or the lake), one transaction: committed when the
    block ends, rolled back if it raises. A partition's old rows are deleted, then the new ones inserted,
    in one block: a crash in between must not leave the slice empty (tests/test_crash_duckdb.py)."""
    # storage.connect looked up at call time: scripts/crash_points.py wraps it
    with storage.connect(database) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


class PolarsDuckDBTypeHandler:
    """Frame <-> table, inside the IO manager's transaction (scripts/crash_points.py wraps
    `handle_output`, which runs right after the partition's old rows are deleted)."""

    supported_types = (pl.DataFrame,)

    def prepare_table(self, table_slice: TableSlice, obj: pl.DataFrame, connection) -> list[str]:
        """Create the table, or add the columns it lacks (a database from an earlier version), before
        the partition's old rows are deleted: an ALTER after that DELETE would fail the commit."""
        with _registered(connection, obj) as frame:
            return storage.conform_table(connection, table_slice.name, frame,
                                         untyped=[n for n, t in obj.schema.items() if t == pl.Null])

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame,
                      connection) -> dict[str, Any]:
        if obj.height:
            with _registered(connection, obj) as frame:
                connection.execute(f"INSERT INTO {table_slice.name} BY NAME SELECT * FROM {frame}")
        return {
            "dataframe_columns": dg.MetadataValue.table_schema(
                dg.TableSchema(columns=[dg.TableColumn(name=n, type=str(t)) for n, t in obj.schema.items()])
            ),
        }

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        return connection.sql(select_statement(table_slice)).pl()


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


def _multi_key(pdef: dg.MultiPartitionsDefinition, key: str | dg.MultiPartitionKey) -> dg.MultiPartitionKey:
    return key if isinstance(key, dg.MultiPartitionKey) else pdef.get_partition_key_from_str(key)


def _dimension_exprs(asset_key: dg.AssetKey, pdef: dg.MultiPartitionsDefinition, expr: object) -> dict[str, str]:
    if not isinstance(expr, Mapping):
        raise TypeError(f"Asset '{asset_key.to_user_string()}' has multi-dimensional partitions, so its "
                         f"'partition_expr' metadata must map each dimension to a column, not {expr!r}")
    missing = [d.name for d in pdef.partitions_defs if not expr.get(d.name)]
    if missing:
        raise ValueError(f"Asset '{asset_key.to_user_string()}' has partition dimension(s) {missing}, but its "
                         "'partition_expr' metadata has no entry for them, so we don't know what column to "
                         "filter them on")
    return {d.name: str(expr[d.name]) for d in pdef.partitions_defs}


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
            by_dim = _multi_key(pdef, key).keys_by_dimension
            exprs = _dimension_exprs(context.asset_key, pdef, expr)
            parts = [_dimension(d.partitions_def, by_dim[d.name], exprs[d.name], frame) for d in pdef.partitions_defs]
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


def _keys_sql(partitions_def: dg.PartitionsDefinition, keys: Sequence[str], expr: str) -> str:
    """The rows of some keys of one (single-dimension) partitions definition: time partitions as windows
    (adjacent ones merged: a range is one window), others as a list of keys."""
    if not isinstance(partitions_def, dg.TimeWindowPartitionsDefinition):
        return _dimension_sql(TablePartitionDimension(expr, list(dict.fromkeys(keys))))
    windows: list[dg.TimeWindow] = []
    for w in sorted((partitions_def.time_window_for_partition_key(k) for k in set(keys)), key=lambda w: w.start):
        if windows and windows[-1].end >= w.start:
            windows[-1] = dg.TimeWindow(windows[-1].start, max(windows[-1].end, w.end))
        else:
            windows.append(w)
    if len(windows) == 1:
        return _window_sql(expr, windows[0])
    return "(" + " OR ".join(f"({_window_sql(expr, w)})" for w in windows) + ")"


def input_where(asset_key: dg.AssetKey, partitions_def: dg.PartitionsDefinition, keys: Sequence[str],
                expr: object) -> str:
    """The rows of exactly these partition keys (at least one), filtered on `partition_expr`. A
    multi-partition set that is a product of per-dimension keys (a range of days x some toolsets; one
    day's toolsets) is one condition per dimension, ANDed; any other set, one such condition per key."""
    if isinstance(partitions_def, dg.MultiPartitionsDefinition):
        exprs = _dimension_exprs(asset_key, partitions_def, expr)
        dims = [d.name for d in partitions_def.partitions_defs]
        defs = {d.name: d.partitions_def for d in partitions_def.partitions_defs}
        tuples = list(dict.fromkeys(tuple(_multi_key(partitions_def, k).keys_by_dimension[d] for d in dims)
                                    for k in keys))
        per_dim = [list(dict.fromkeys(t[i] for t in tuples)) for i in range(len(dims))]
        size = 1
        for values in per_dim:
            size *= len(values)
        if size == len(tuples):
            return " AND\n".join(_keys_sql(defs[d], per_dim[i], exprs[d]) for i, d in enumerate(dims))
        return "(" + "\nOR ".join("(" + " AND ".join(_keys_sql(defs[d], [t[i]], exprs[d]) for i, d in enumerate(dims))
                                  + ")" for t in tuples) + ")"
    if expr is None:
        raise ValueError(f"Asset '{asset_key.to_user_string()}' has partitions, but no 'partition_expr' metadata "
                         "value, so we don't know what column it's partitioned on. To specify a column, set this "
                         'metadata value. E.g. @asset(metadata={"partition_expr": "your_partition_column"}).')
    return _keys_sql(partitions_def, keys, str(expr))


def _slice_name(table_slice: TableSlice) -> str:
    return "|".join(str(d.partitions) for d in table_slice.partition_dimensions or [])


class PolarsDuckDBIOManager(dg.ConfigurableIOManager):
    """Frames in, frames out; table = asset name, schema `main` (as configured in defs/resources.py).
    Writes commit partition by partition, each retried on a conflicting commit."""

    database: str = Field(description="Path to the DuckDB database (unused when the shared DuckLake is "
                                      "configured: storage.connect).")
    connection_config: dict[str, Any] = Field(
        default={}, description="Accepted for compatibility with dagster-duckdb's DuckDBIOManager; unused "
                                "(connections come from storage.connect).")
    schema_: str | None = Field(default=None, alias="schema", description="Name of the schema to use.")

    @staticmethod
    def type_handlers() -> Sequence[PolarsDuckDBTypeHandler]:
        return [PolarsDuckDBTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def _handler(self, obj_type: object) -> PolarsDuckDBTypeHandler:
        for handler in self.type_handlers():
            if isinstance(obj_type, type) and issubclass(obj_type, tuple(handler.supported_types)):
                return handler
        raise dg.DagsterInvariantViolationError(
            f"PolarsDuckDBIOManager does not have a handler for type '{obj_type}'. Has handlers for types "
            f"'{', '.join(str(t) for h in self.type_handlers() for t in h.supported_types)}'.")

    def _schema_for(self, metadata: Mapping[str, Any] | None) -> str:
        return (metadata or {}).get("schema") or self.schema_ or "public"

    def handle_output(self, context: dg.OutputContext, obj: object) -> None:
        if obj is None:
            raise dg.DagsterInvariantViolationError(
                "Unexpected 'None' output value. If a 'None' value is intentional, set the output type to "
                "None by adding return type annotation '-> None'.")
        handler = self._handler(type(obj))
        assert isinstance(obj, pl.DataFrame)
        # one slice per partition key, not one key range per dimension: several toolsets of a day (or
        # days of a toolset) written together need not form a range
        base = TableSlice(table=context.asset_key.path[-1], schema=self._schema_for(context.definition_metadata),
                          database=self.database)
        metadata, added = {}, []

        for table_slice, rows in partition_slices(context, base, obj):
            def write(table_slice=table_slice, rows=rows):
                with _transaction(self.database) as conn:
                    conn.execute(f"create schema if not exists {table_slice.schema};")
                    new_columns = handler.prepare_table(table_slice, rows, conn)
                    conn.execute(delete_statement(table_slice))
                    return handler.handle_output(context, table_slice, rows, conn), new_columns

            with storage.partition_lock(base.table, _slice_name(table_slice)):
                md, new_columns = storage.commit_with_retry(write)
            metadata, added = md or metadata, added + new_columns
        if added:
            context.log.warning(f"{base.name}: added column(s) {', '.join(added)}, which the "
                                "table written by an earlier version lacked; its older rows read NULL there")
        context.add_output_metadata({
            **metadata,
            "row_count": obj.height,
            "partitions_written": len(context.asset_partition_keys) if context.has_asset_partitions else 1,
            "store": "ducklake" if storage.is_shared() else "duckdb",
        })
        if not any(TABLE_NAME_KEY in (md or {}) for md in (context.output_metadata, context.definition_metadata)):
            context.add_output_metadata({TABLE_NAME_KEY: base.name})  # unless the asset set it itself

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        obj_type = context.dagster_type.typing_type
        handler = self._handler(self.default_load_type() if obj_type is Any else obj_type)
        upstream = context.upstream_output
        upstream_md = (upstream.definition_metadata if upstream is not None else None) or {}
        table_slice = TableSlice(table=context.asset_key.path[-1], schema=self._schema_for(upstream_md),
                                 database=self.database, columns=(context.definition_metadata or {}).get("columns"))
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if not keys:
                return pl.DataFrame()
            table_slice = table_slice._replace(where=input_where(
                context.asset_key, context.asset_partitions_def, keys, upstream_md.get("partition_expr")))
        with _transaction(self.database) as conn:
            return handler.load_input(context, table_slice, conn)
