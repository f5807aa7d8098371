"""Partitions: day (nightly) x toolset (static, from data/toolsets.yaml)."""


import dagster as dg

from funreason_pipeline.environments.toolsets import load_toolsets

START_DATE = "2026-01-01"
OWNERS = ["team:data-synthesis"]

toolset_partitions = dg.StaticPartitionsDefinition([t.name for t in load_toolsets()])
# end_offset=1: today's partition exists today, so `make demo` can build it
day_partitions = dg.DailyPartitionsDefinition(start_date=START_DATE, end_offset=1)
day_toolset_partitions = dg.MultiPartitionsDefinition({"day": day_partitions, "toolset": toolset_partitions})

# downstream day x toolset assets read their toolset's slice of per-toolset assets
per_toolset = dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="toolset")

DAY_TOOLSET_EXPR = {"day": "day", "toolset": "toolset"}


def split_key(context: dg.AssetExecutionContext) -> tuple[str, str]:
    keys = context.partition_key.keys_by_dimension
    return keys["day"], keys["toolset"]


def day_toolset_keys(context: dg.AssetExecutionContext) -> list[tuple[str, str]]:
    """(day, toolset) of every partition in the run: one, or a range (BackfillPolicy.single_run)."""
    out = []
    for k in context.partition_keys:
        mk = k if isinstance(k, dg.MultiPartitionKey) else day_toolset_partitions.get_partition_key_from_str(k)
        dims = mk.keys_by_dimension
        out.append((dims["day"], dims["toolset"]))
    return out
