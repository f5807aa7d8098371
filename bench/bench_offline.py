"""P6: offline end to end. Dialogues per second and peak memory at the demo size and at 10x.

    .venv/bin/python bench/bench_offline.py [--toolsets tickets,travel,files_twitter,clinic] [--base 6]

Each size runs `python -m funreason_pipeline.cli demo` in a fresh subprocess with a fresh DuckDB file
and DAGSTER_HOME (workers=1, so the figure is per core), then counts dialogues. Reports the time
ratio of the 10x run to the 1x run (target <= 11).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent


def run(toolsets: str, trajectories: int, workdir: Path) -> tuple[float, int, int]:
    home = workdir / "home"
    home.mkdir(parents=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    env = dict(os.environ, DAGSTER_HOME=str(home), FUNREASON_DB=str(workdir / "bench.duckdb"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--toolsets", toolsets,
                    "--trajectories", str(trajectories), "--workers", "1", "--day", "2026-08-01"],
                   env=env, cwd=ROOT, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    with duckdb.connect(str(workdir / "bench.duckdb"), read_only=True) as con:
        dialogues = con.execute("SELECT count(*) FROM dialogues").fetchone()[0]
    return wall, dialogues, max(peak, before)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toolsets", default="tickets,travel,files_twitter,clinic")
    ap.add_argument("--base", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-offline-"))
    rows = []
    for factor in (1, 10):
        wall, n, peak_kb = run(args.toolsets, args.base * factor, tmp / f"x{factor}")
        rows.append((factor, wall, n, peak_kb))
        print(f"x{factor}: {n} dialogues in {wall:.1f}s = {n / wall:.2f} dialogues/s, peak RSS {peak_kb / 1024:.0f} MiB",
              flush=True)
    (_f1, w1, n1, _), (_f10, w10, n10, _) = rows
    print(f"time ratio x10/x1 = {w10 / w1:.2f} (target <= 11), dialogue ratio {n10 / max(n1, 1):.2f}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
