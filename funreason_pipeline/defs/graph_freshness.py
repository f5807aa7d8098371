"""Which toolsets' catalog and graph are out of date (defs/day.py rebuilds those, for `cli demo` and
the nightly sensor).

The graph assets are per toolset, not per day: the nightly run reuses them. They are out of date
when never built, or built from other inputs (`graph_fingerprint`: the environment classes' source,
the files their options name, the toolset entry, BFCL's version, our graph code), or, when the
caller knows the stored row counts, when the database no longer holds what the run recorded.
"""

import dagster as dg

from funreason_pipeline.environments.fingerprint import graph_fingerprint
from funreason_pipeline.environments.toolsets import toolset_by_name


def _built_from(instance: dg.DagsterInstance, toolset: str) -> dict:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("api_graph"), asset_partitions=[toolset]), limit=1).records
    md = {k: getattr(v, "value", None) for k, v in (records[0].asset_materialization.metadata if records else {}).items()}
    # a run over several toolsets records one metadata for all of them, each toolset's figures inside
    return (md.get("per_partition") or {}).get(toolset, md)


def outdated_graphs(instance: dg.DagsterInstance, toolsets: list[str],
                    stored: dict[tuple[str, str], int] | None = None) -> dict[str, tuple[str, str]]:
    """{toolset: (why its graph must be (re)built, its current fingerprint)} for the toolsets of
    `toolsets` that need it. `stored`: rows per (table, toolset) in the database, to catch a graph
    the database lost."""
    out = {}
    for ts in toolsets:
        built = _built_from(instance, ts)
        fingerprint = graph_fingerprint(toolset_by_name(ts))
        if not built:
            out[ts] = ("never built", fingerprint)
        elif built.get("graph_fingerprint") != fingerprint:
            out[ts] = (f"inputs changed (fingerprint {built.get('graph_fingerprint')} -> {fingerprint})", fingerprint)
        elif stored is not None and (
                stored.get(("tool_catalog", ts)) != built.get("nodes")
                or stored.get(("api_graph", ts), 0) != (built.get("data_edges") or 0) + (built.get("state_edges") or 0)):
            out[ts] = ("the database does not hold the graph its last run built", fingerprint)
    return out
