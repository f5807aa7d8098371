"""cProfile of one LLMClient run (or the bare loop) against the test server in its own process.

Prints the top functions by cumulative and by own CPU time (`time.thread_time`) of the client's main thread (the DuckDB
cache writes run in a worker thread and are not in the profile; `time.process_time` covers them).

    .venv/bin/python bench/profile_llm.py --c 256 --n 4000             # ours
    .venv/bin/python bench/profile_llm.py --c 256 --n 4000 --bare      # the bare AsyncOpenAI loop
    .venv/bin/python bench/profile_llm.py --c 256 --n 4000 --out /tmp/ours.prof   # keep the stats
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_llm import run_bare, run_ours

from testing.llm_server import ServerConfig, run_subprocess_server


def component(fn: str, name: str) -> str:
    """Which layer a profiled function belongs to (for the table in docs/benchmarks.md)."""
    if "funreason_pipeline/llm" in fn:
        return "funreason_pipeline.llm (session, hedging, limiter, transport, cache)"
    for pkg, label in (("openai/", "openai SDK"), ("httpx2/", "httpx2"), ("aiohttp/", "aiohttp (+ yarl, multidict)"),
                       ("yarl/", "aiohttp (+ yarl, multidict)"), ("multidict/", "aiohttp (+ yarl, multidict)"),
                       ("pydantic", "pydantic"), ("/json/", "json"), ("asyncio/", "asyncio event loop"),
                       ("selectors.py", "asyncio event loop")):
        if pkg in fn:
            return label
    if fn == "~":
        if any(k in name for k in ("epoll", "Context' objects", "socket")):
            return "asyncio event loop"
        if "json" in name or "sha256" in name:
            return "json"
    return "other (builtins, stdlib helpers)"


def summary(prof: cProfile.Profile | str) -> str:
    """Markdown: share of the main thread's CPU by layer (own time of its functions)."""
    st = pstats.Stats(prof)
    acc: dict[str, float] = {}
    for (fn, _line, name), (_cc, _nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        key = component(fn, name)
        acc[key] = acc.get(key, 0.0) + tt
    total = sum(acc.values())
    lines = ["| layer | share of the main thread's CPU |", "| --- | --- |"]
    for k, v in sorted(acc.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {k} | {100 * v / total:.0f}% |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--c", type=int, default=256)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--bare", action="store_true")
    ap.add_argument("--no-profile", action="store_true", help="just the CPU per request, no cProfile")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--out", default=None, help="write the pstats file here")
    ap.add_argument("--summary", default=None, help="only print the layer table of this pstats file")
    args = ap.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    fn = run_bare if args.bare else run_ours
    with run_subprocess_server(ServerConfig(latency=args.latency)) as (url, _):
        fn(url, 8, 64, "warm")
        # timed by the main thread's CPU clock, not wall time: other work on a shared machine would
        # otherwise land on whatever function was running when this process was descheduled
        prof = None if args.no_profile else cProfile.Profile(time.thread_time)
        if prof is not None:
            prof.enable()
        c0 = time.process_time()
        wall, cpu, st = fn(url, args.c, args.n, f"prof-{time.time_ns()}")
        if prof is not None:
            prof.disable()
        print(
            f"{'bare' if args.bare else 'ours'} C={args.c} N={args.n}: ratio {args.n / wall / (args.c / args.latency):.3f}, "
            f"CPU {cpu / args.n * 1000:.3f} ms/req ({(time.process_time() - c0) / args.n * 1000:.3f} with the profiler's share)"
        )
        if st:
            print({k: st[k] for k in ("sent", "http_attempts", "hedges", "hedges_replaced", "max_in_flight", "cache_flushes")})
    if prof is None:
        return
    if args.out:
        prof.dump_stats(args.out)
    print(summary(prof))
    for key in ("cumulative", "tottime"):
        s = io.StringIO()
        pstats.Stats(prof, stream=s).strip_dirs().sort_stats(key).print_stats(args.top)
        print(f"--- by {key} ---")
        print(s.getvalue())


if __name__ == "__main__":
    main()
