"""The rejections assets (`<stage>_rejections`, one per rejecting stage) in the one `rejections` table.

Each rejecting stage's asset has a second output: the items it dropped, with their reasons. This IO
manager stores it as the Store did before it was an asset (storage.replace_rejections): per partition
of the output, the stage's old rows of that day and toolset are replaced by the new ones, so a rerun
never doubles them and a partition with no rejections clears its old ones. The asset's metadata
`rejections_of` names the stage (the table's `stage` column). Loads return one stage's rows of the
input's partitions, in the table's columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

import dagster as dg
import polars as pl
from pydantic import Field

from funreason_pipeline import frames, storage
from funreason_pipeline.defs.io_manager import input_where

STAGE_KEY = "rejections_of"


def _stage(metadata: Mapping[str, Any] | None, asset: dg.AssetKey) -> str:
    stage = (metadata or {}).get(STAGE_KEY)
    if not stage:
        raise ValueError(f"asset {asset.to_user_string()!r} is stored as rejections but its metadata names no "
                         f"stage ({STAGE_KEY!r})")
    return str(stage)


def _partition(pdef: dg.PartitionsDefinition, key: str | dg.MultiPartitionKey) -> tuple[str | None, str]:
    """(day, toolset) of one partition key: a day x toolset key, or a toolset's (no day)."""
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        mk = key if isinstance(key, dg.MultiPartitionKey) else pdef.get_partition_key_from_str(key)
        return mk.keys_by_dimension["day"], mk.keys_by_dimension["toolset"]
    return None, str(key)


class RejectionsIOManager(dg.ConfigurableIOManager):
    """Rejection frames (frames.REJECTIONS_SCHEMA) in and out of the `rejections` table."""

    database: str = Field(description="The DuckDB file (unused when the shared DuckLake is configured).")

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        stage = _stage(context.definition_metadata, context.asset_key)
        others = set(obj["stage"].unique().to_list()) - {stage} if obj.height else set()
        if others:
            raise ValueError(f"{context.asset_key.to_user_string()}: rows of stage(s) {sorted(others)} in the "
                             f"rejections of {stage!r}")
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        if not keys:
            raise ValueError(f"{context.asset_key.to_user_string()}: rejections are stored per partition")
        parts = frames.split_by(obj, ("day", "toolset"))
        written = {_partition(context.asset_partitions_def, k) for k in keys}
        stray = sorted(f"{d}|{t}" for d, t in parts if (d, t) not in written)
        if stray:
            raise ValueError(f"{context.asset_key.to_user_string()}: rejections of {stray} fall outside the "
                             f"output's partitions: refusing to write them")
        rows = 0
        for day, toolset in sorted(written, key=lambda k: (k[0] or "", k[1])):
            part = parts.get((day, toolset), obj.clear())
            rows += storage.replace_rejections(stage, date.fromisoformat(day) if day else None, toolset,
                                               part.select("item_id", "reason", "detail").to_dicts(),
                                               path=self.database)
        context.add_output_metadata({"row_count": rows, "partitions_written": len(written),
                                     "dagster/table_name": "main.rejections", "stage": stage})

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        upstream = context.upstream_output
        md = (upstream.definition_metadata if upstream is not None else None) or {}
        where = None
        if context.has_asset_partitions:
            keys = list(context.asset_partition_keys)
            if not keys:
                return storage.rejections_frame([])
            where = input_where(context.asset_key, context.asset_partitions_def, keys, md.get("partition_expr"))
        return storage.load_rejections(_stage(md, context.asset_key), where, path=self.database)
