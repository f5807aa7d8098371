"""Command line: `python -m funreason_pipeline.cli demo` materializes today's partition of every
toolset (offline unless an endpoint is configured) through the day's runs (defs/day.py) and prints a
summary. It launches and reports; the order of the work is Dagster's definition of the day."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date

import dagster as dg

from funreason_pipeline import config, quality, storage
from funreason_pipeline.environments.toolsets import load_toolsets
from funreason_pipeline.sampling.yield_check import demo_failures

TABLES = ["tool_catalog", "api_graph", "trajectories", "queries", "cot_traces", "dialogues", "sft_samples", "rl_samples",
          "day_export", "rejections", "llm_calls"]


def run_demo(day: str, toolsets: list[str], instance: dg.DagsterInstance | None = None, workers: int = 1,
             run_config: dict | None = None, rebuild_graph: bool = False) -> bool:
    """Materialize `day` for every toolset through the day's runs (defs/day.py: the same definition
    the nightly sensor and backfills use), with `workers` processes per step."""
    from funreason_pipeline.defs.day import run_day

    cfg = {**(run_config or {}), "resources": {"processes": {"config": {"workers": workers}}}}
    report = run_day(day, toolsets, instance=instance, run_config=cfg, rebuild_graph=rebuild_graph)
    for what in report.failed:
        print(f"  {what}: run failed (see `make ui` for logs)")
    t = report.timings
    print(f"materialized {len(toolsets)} toolsets for {day} in {t['total_s']:.1f}s ({t['runs']} runs)")
    print("timings " + json.dumps(t))  # machine-readable: bench/bench_e2e.py reads it
    return report.ok


def summary() -> str:
    lines = [f"database: {config.db_path()}", f"exports:  {config.exports_dir()}", "rows per table:"]
    if not config.db_path().exists():
        return "\n".join(lines + ["  (no database yet)"])
    with storage.connect(read_only=True) as con:
        present = storage.table_names(con)
        for t in TABLES:
            if t in present:
                n = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                lines.append(f"  {t:<14} {n:>8}")
        if {"trajectories", "dialogues", "tool_catalog"} <= present:
            lines += quality.summary_lines(quality.quality_stats(quality.from_database(con)))
        if "rejections" in present:
            lines.append("rejections by stage and reason:")
            for stage, reason, n in con.execute(
                "SELECT stage, reason, count(*) FROM rejections GROUP BY ALL ORDER BY 1, 3 DESC"
            ).fetchall():
                lines.append(f"  {stage:<14} {reason:<24} {n:>6}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="funreason")
    sub = parser.add_subparsers(dest="cmd", required=True)
    demo = sub.add_parser("demo", help="materialize one day's partition of every toolset")
    demo.add_argument("--day", default=date.today().isoformat())
    demo.add_argument("--toolsets", default="", help="comma-separated subset (default: all)")
    demo.add_argument("--workers", type=int, default=2, help="processes a step spreads the toolsets over")
    demo.add_argument("--trajectories", type=int, help="accepted trajectories per partition (default 6)")
    demo.add_argument("--k-max", type=int, help="Phase III attempts per turn (default 3)")
    demo.add_argument("--seed", type=int, help="base seed (default 0)")
    demo.add_argument("--min-turns", type=int)
    demo.add_argument("--max-turns", type=int)
    demo.add_argument("--edge-target", type=float,
                      help="sample extra trajectories until this share of graph edges is exercised (Q3: 0.9)")
    demo.add_argument("--rebuild-graph", action="store_true",
                      help="build every tool catalog and API graph anew (default: reuse those built from the same "
                      "environment code, toolset config and graph code)")
    sub.add_parser("summary", help="rows per table and where things are")
    args = parser.parse_args(argv)
    if args.cmd == "summary":
        print(summary())
        return 0
    names = [t.name for t in load_toolsets()]
    chosen = [t for t in args.toolsets.split(",") if t] or names
    unknown = sorted(set(chosen) - set(names))
    if unknown:
        parser.error(f"unknown toolsets: {unknown}; known: {names}")
    if args.edge_target is not None and not 0 < args.edge_target <= 1:
        parser.error("--edge-target must be in (0, 1]")
    from funreason_pipeline.defs.day import day_run_config

    cfg = day_run_config(args.trajectories, args.k_max, args.seed, args.min_turns, args.max_turns, args.edge_target)
    config.ensure_dagster_home()
    ok = run_demo(args.day, chosen, workers=args.workers, run_config=cfg, rebuild_graph=args.rebuild_graph)
    print(summary())
    print("\nOpen the Dagster UI with `make ui` (dg dev, DAGSTER_HOME under data/).")
    problems = demo_failures(args.day, chosen)  # no silent success: the Phase I yield verdicts
    for p in problems:
        print(f"\nFAILED {p}", file=sys.stderr)
    return 0 if ok and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
