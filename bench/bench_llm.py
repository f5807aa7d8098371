"""LLM layer benchmarks P1-P3 against the local test server (run as a separate process).

P1  throughput / (C/L) of LLMClient at C = 16, 64, 256, latency L, N requests; with the ceiling
    N / (ceil(N/C) * L) as a ratio of C/L.
P2  LLMClient vs a bare semaphore-bounded `AsyncOpenAI.chat.completions.create` loop, same server, same
    C and L, alternated in one run: throughput ratio and CPU seconds per request of this (client)
    process (`time.process_time`, all threads, so it includes LLMClient's DuckDB cache writes).
P3  sustained rate of LLMClient (C above capacity) against a server that answers 429 + Retry-After
    above `capacity` concurrent requests, as a fraction of capacity/L; plus the slowest 1-second window
    in the steady part (a stall would show as ~0).
R1  the same client against the R1 fault mix (20% 500, 10% 429 + Retry-After, 5% hangs, 5% malformed,
    5% truncated, all independent of load): throughput and the limiter's window over time (random
    429s must not collapse the window). Not a targets.md figure; written under P3's notes.

    .venv/bin/python bench/bench_llm.py                 # all, 3 runs each, writes docs/benchmarks.md
    .venv/bin/python bench/bench_llm.py --only p2 --runs 1 --no-write
    .venv/bin/python bench/bench_llm.py --only r1 --runs 3 --no-write
    .venv/bin/python bench/bench_llm.py --only pair --runs 3 --no-write   # P1 + P2 side by side at each C
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import openai

import funreason_pipeline.llm.endpoint as endpoint_mod
from funreason_pipeline.llm import LLMClient, LLMRequest, LLMSettings
from funreason_pipeline.llm.limiter import AdaptiveLimiter
from testing.llm_server import R1_FAULTS as R1
from testing.llm_server import ServerConfig, fetch_stats, run_subprocess_server

DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## LLM layer (P1-P3)"
SYSTEM = "You are a careful assistant that writes one natural user request for the given tool call."


def make_requests(n: int, tag: str) -> list[LLMRequest]:
    return [
        LLMRequest(
            role="querying",
            item_id=f"{tag}-{i}",
            messages=[
                {"role": "system", "content": SYSTEM},
                {
                    "role": "user",
                    "content": f"[{tag}] Write the request for call #{i}: get_weather(city='Paris')",
                },
            ],
            prompt_version="bench",
        )
        for i in range(n)
    ]


def run_ours(url: str, c: int, n: int, tag: str, cache: bool = True) -> tuple[float, float, dict]:
    settings = LLMSettings.for_endpoint(url, concurrency=c)
    reqs = make_requests(n, tag)
    with tempfile.TemporaryDirectory() as tmp:
        client = LLMClient(settings, db_path=Path(tmp) / "bench.duckdb", cache=cache)
        c0, t0 = time.process_time(), time.perf_counter()
        res = client.run(reqs)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    assert res.stats.ok == n, res.stats
    return wall, cpu, res.stats.model_dump()


def run_bare(url: str, c: int, n: int, tag: str) -> tuple[float, float, dict]:
    reqs = make_requests(n, tag)
    s = LLMSettings.for_endpoint(url).role("querying")

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=url, api_key="bench")
        sem = asyncio.Semaphore(c)

        async def one(r: LLMRequest) -> str | None:
            async with sem:
                out = await client.chat.completions.create(
                    model=s.model,
                    messages=r.messages,
                    temperature=s.temperature,
                    max_tokens=s.max_tokens,  # type: ignore[arg-type]
                )
                return out.choices[0].message.content

        got = await asyncio.gather(*(one(r) for r in reqs))
        assert all(g is not None for g in got)
        await client.close()

    c0, t0 = time.process_time(), time.perf_counter()
    asyncio.run(main())
    return time.perf_counter() - t0, time.process_time() - c0, {}


def ceiling(n: int, c: int, lat: float) -> float:
    return (n / (math.ceil(n / c) * lat)) / (c / lat)


def p1(args: argparse.Namespace) -> list[str]:
    lines = [
        "### P1 throughput / (C/L)",
        "",
        f"L = {args.latency} s, N = {args.n} requests, LLMClient with its DuckDB cache on (fresh file per run).",
        "",
        "| C | throughput (req/s) | ratio to C/L (median) | runs (ratios) | ceiling N/(ceil(N/C)L) as ratio | ratio / ceiling |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    with run_subprocess_server(ServerConfig(latency=args.latency)) as (url, _):
        run_ours(url, 8, 64, "warm")
        for c in args.c:
            ratios, tputs = [], []
            for r in range(args.runs):
                wall, _, _ = run_ours(url, c, args.n, f"p1-{c}-{r}")
                tputs.append(args.n / wall)
                ratios.append(args.n / wall / (c / args.latency))
                print(f"P1 C={c} run {r}: {ratios[-1]:.3f}", flush=True)
            med = statistics.median(ratios)
            ceil_r = ceiling(args.n, c, args.latency)
            lines.append(
                f"| {c} | {statistics.median(tputs):.1f} | **{med:.3f}** | "
                f"{', '.join(f'{x:.3f}' for x in ratios)} | {ceil_r:.3f} | {med / ceil_r:.3f} |"
            )
    return lines


def p2(args: argparse.Namespace) -> list[str]:
    c = args.p2_c
    rows: dict[str, list[tuple[float, float]]] = {"bare": [], "ours": [], "ours_nocache": []}
    with run_subprocess_server(ServerConfig(latency=args.latency)) as (url, _):
        run_bare(url, 8, 64, "warm")
        run_ours(url, 8, 64, "warm")
        for r in range(args.runs):
            for name in ("bare", "ours", "ours_nocache"):
                if name == "bare":
                    wall, cpu, _ = run_bare(url, c, args.n, f"p2-{name}-{r}")
                else:
                    wall, cpu, _ = run_ours(url, c, args.n, f"p2-{name}-{r}", cache=name == "ours")
                rows[name].append((args.n / wall, cpu / args.n * 1000))
                print(
                    f"P2 run {r} {name}: {rows[name][-1][0]:.1f} req/s, {rows[name][-1][1]:.3f} ms CPU/req",
                    flush=True,
                )
    med = {
        k: (statistics.median(t for t, _ in v), statistics.median(m for _, m in v)) for k, v in rows.items()
    }
    tr = [o[0] / b[0] for o, b in zip(rows["ours"], rows["bare"], strict=True)]
    cr = [o[1] / b[1] for o, b in zip(rows["ours"], rows["bare"], strict=True)]
    lines = [
        "### P2 LLMClient vs a bare semaphore-bounded AsyncOpenAI loop",
        "",
        (
            f"C = {c}, L = {args.latency} s, N = {args.n}; alternated bare / ours / ours without cache "
            "in one process, server in another. CPU = `time.process_time()` of the client process "
            "(all threads: LLMClient's numbers include writing every response to DuckDB)."
        ),
        "",
        "| client | throughput (req/s) | ratio to C/L | CPU ms / request |",
        "| --- | --- | --- | --- |",
    ]
    labels = {
        "bare": "bare `chat.completions.create` loop",
        "ours": "LLMClient (cache on)",
        "ours_nocache": "LLMClient (cache off)",
    }
    for k, (t, m) in med.items():
        lines.append(f"| {labels[k]} | {t:.1f} | {t / (c / args.latency):.3f} | {m:.3f} |")
    lines += [
        "",
        (
            f"Per-run ratios ours/bare: throughput {', '.join(f'{x:.3f}' for x in tr)} "
            f"(median **{statistics.median(tr):.3f}**); CPU per request {', '.join(f'{x:.3f}' for x in cr)} "
            f"(median **{statistics.median(cr):.3f}**)."
        ),
    ]
    return lines


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) of another process so far, from /proc (the test server's share)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pair_n(args: argparse.Namespace, c: int) -> int:
    """Requests per run at concurrency c: about 30 waves (2000 at C = 64), at least 1000."""
    return args.n if args.n_fixed else max(1000, min(4000, 32 * c if c < 64 else args.n * c // 64))


def pair(args: argparse.Namespace) -> list[str]:
    """P1 + P2 side by side: at each C, ours (cache on) and the bare loop alternated in one process
    (the order flips each run), the server in its own; wall, client CPU and server CPU per run."""
    lat = args.latency
    rows: dict[int, dict[str, list[tuple[float, float, float]]]] = {}
    with run_subprocess_server(ServerConfig(latency=lat)) as (url, proc):
        run_bare(url, 8, 64, "warm")
        run_ours(url, 8, 64, "warm")
        for c in args.c:
            n = pair_n(args, c)
            rows[c] = {"bare": [], "ours": []}
            for r in range(args.runs):
                order = ("bare", "ours") if r % 2 == 0 else ("ours", "bare")
                for name in order:
                    s0 = _proc_cpu(proc.pid)
                    tag = f"pair-{name}-{c}-{r}-{time.time_ns()}"
                    fn = run_bare if name == "bare" else run_ours
                    wall, cpu, _ = fn(url, c, n, tag)
                    srv = _proc_cpu(proc.pid) - s0
                    ratio = n / wall / (c / lat)
                    rows[c][name].append((ratio, cpu / n * 1000, srv / n * 1000))
                    print(
                        f"C={c} N={n} run {r} {name}: ratio {ratio:.3f}, client CPU {cpu / n * 1000:.3f} ms/req, "
                        f"server CPU {srv / n * 1000:.3f} ms/req, load {os.getloadavg()[0]:.2f}",
                        flush=True,
                    )
    med = statistics.median
    lines = [
        "### P1 and P2: LLMClient side by side with a bare semaphore-bounded AsyncOpenAI loop",
        "",
        (
            f"L = {lat} s; at each C, `LLMClient.run` (DuckDB cache on, fresh file per run) and a bare "
            "`AsyncOpenAI.chat.completions.create` loop under an `asyncio.Semaphore(C)` (`max_retries=0`) "
            "alternated in one process (order flipped each run), the test server in another. CPU = "
            "`time.process_time()` of the client process (all threads, so ours includes the DuckDB writes); "
            "server CPU from /proc for the same run."
        ),
        "",
        (
            "| C | N | ours: ratio to C/L | bare: ratio | ours / bare throughput | ours: CPU ms/req | bare: CPU ms/req "
            "| ours / bare CPU | server CPU ms/req (ours, bare) | ceiling N/(ceil(N/C)L) |"
        ),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for c, d in rows.items():
        n = pair_n(args, c)
        o, b = d["ours"], d["bare"]
        tr = med(x[0] / y[0] for x, y in zip(o, b, strict=True))
        cr = med(x[1] / y[1] for x, y in zip(o, b, strict=True))
        lines.append(
            f"| {c} | {n} | **{med(x[0] for x in o):.3f}** ({', '.join(f'{x[0]:.3f}' for x in o)}) "
            f"| {med(x[0] for x in b):.3f} ({', '.join(f'{x[0]:.3f}' for x in b)}) | {tr:.3f} "
            f"| **{med(x[1] for x in o):.3f}** ({', '.join(f'{x[1]:.2f}' for x in o)}) "
            f"| {med(x[1] for x in b):.3f} ({', '.join(f'{x[1]:.2f}' for x in b)}) | {cr:.3f} "
            f"| {med(x[2] for x in o):.3f}, {med(x[2] for x in b):.3f} | {ceiling(n, c, lat):.3f} |"
        )
    lines += [
        "",
        (
            "Medians of the runs; per-run figures in brackets. 'ours / bare' columns are medians of the "
            "per-run ratios (each run pair back to back)."
        ),
    ]
    return lines


def p3(args: argparse.Namespace) -> list[str]:
    cap, c, lat = args.capacity, args.p3_c, args.latency
    cfg = ServerConfig(latency=lat, capacity=cap, retry_after=args.retry_after)
    fracs, mins, rl, win_med = [], [], [], []
    with run_subprocess_server(cfg) as (url, _):
        for r in range(args.runs):
            before = fetch_stats(url)["by_outcome"].get("ok", 0)
            samples: list[tuple[float, int]] = []
            windows: list[float] = []
            stop = threading.Event()

            def poll(
                stop: threading.Event, samples: list[tuple[float, int]], made: list, windows: list[float]
            ) -> None:
                while not stop.wait(0.5):
                    samples.append((time.perf_counter(), fetch_stats(url)["by_outcome"].get("ok", 0)))
                    if made:
                        windows.append(made[0].limit)

            with _Recorded() as made:
                th = threading.Thread(target=poll, args=(stop, samples, made, windows), daemon=True)
                th.start()
                wall, _, st = run_ours(url, c, args.n, f"p3-{r}")
                stop.set()
                th.join()
            win_med.append(statistics.median(windows[4:-4] or windows))
            rate = args.n / wall
            fracs.append(rate / (cap / lat))
            rl.append(st["rate_limited_responses"])
            # slowest 1 s window in the steady part (skip the first and last 2 s)
            steady = [s for s in samples if samples[0][0] + 2 <= s[0] <= samples[-1][0] - 2]
            win = [(b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(steady, steady[2:], strict=False)]
            mins.append(min(win) / (cap / lat) if win else float("nan"))
            print(
                f"P3 run {r}: {fracs[-1]:.3f} of capacity, slowest 1s window {mins[-1]:.3f}, "
                f"429s {rl[-1]}, ok before {before}, window median {win_med[-1]:.1f} "
                f"(every 0.5 s: {' '.join(f'{w:.0f}' for w in windows)})",
                flush=True,
            )
    ceil_r = ceiling(args.n, cap, lat)
    return [
        "### P3 sustained rate under a capacity-limited server",
        "",
        (
            f"Server capacity {cap} concurrent requests (429 + `Retry-After: {args.retry_after:g}` above it), "
            f"L = {lat} s, so capacity = {cap / lat:.0f} req/s; LLMClient at C = {c}, N = {args.n}."
        ),
        "",
        "| figure | median | runs |",
        "| --- | --- | --- |",
        f"| sustained rate / capacity | **{statistics.median(fracs):.3f}** | {', '.join(f'{x:.3f}' for x in fracs)} |",
        f"| slowest 1 s window / capacity (steady part) | {statistics.median(mins):.3f} | {', '.join(f'{x:.3f}' for x in mins)} |",
        f"| 429 answers received | {statistics.median(rl):.0f} | {', '.join(str(x) for x in rl)} |",
        f"| limiter window, median of 0.5 s samples (steady part) | {statistics.median(win_med):.1f} | {', '.join(f'{x:.1f}' for x in win_med)} |",
        "",
        f"Ceiling for N = {args.n}: {ceil_r:.3f} of capacity.",
    ]




class _Recorded:
    """Patches the client's AdaptiveLimiter so the bench can sample the window of the one it makes."""

    def __init__(self, **overrides: float) -> None:
        self.made: list[AdaptiveLimiter] = []
        self.overrides = overrides  # e.g. overload_share=0: every 429 counts (the rule before the gate)

    def __enter__(self) -> list[AdaptiveLimiter]:
        def make(*a, **k) -> AdaptiveLimiter:
            lim = AdaptiveLimiter(*a, **{**k, **self.overrides})
            self.made.append(lim)
            return lim

        endpoint_mod.AdaptiveLimiter = make  # type: ignore[assignment,misc]
        return self.made

    def __exit__(self, *exc) -> None:
        endpoint_mod.AdaptiveLimiter = AdaptiveLimiter  # type: ignore[misc]


def r1(args: argparse.Namespace) -> list[str]:
    c, lat, n, to = args.r1_c, args.r1_latency, args.r1_n, args.r1_timeout
    cfg = ServerConfig(latency=lat, seed=7, hang_s=30.0, **R1)
    rows = []
    with run_subprocess_server(cfg) as (url, _):
        for r in range(args.runs):
            settings = LLMSettings.for_endpoint(url, concurrency=c, timeout_s=to)
            over = {} if args.overload_share is None else {"overload_share": args.overload_share}
            with tempfile.TemporaryDirectory() as tmp, _Recorded(**over) as made:
                client = LLMClient(settings, db_path=Path(tmp) / "bench.duckdb")
                samples: list[float] = []
                stop = threading.Event()

                def poll(stop: threading.Event, samples: list[float], made: list[AdaptiveLimiter]) -> None:
                    while not stop.wait(0.1):
                        if made:
                            samples.append(made[0].limit)

                th = threading.Thread(target=poll, args=(stop, samples, made), daemon=True)
                th.start()
                t0 = time.perf_counter()
                res = client.run(make_requests(n, f"r1-{r}-{time.time_ns()}"))
                wall = time.perf_counter() - t0
                stop.set()
                th.join()
                lim = made[0]
            st = res.stats
            q = statistics.quantiles(samples, n=10) if len(samples) >= 2 else [float("nan")] * 9
            rows.append(
                (
                    n / wall,
                    st.ok,
                    statistics.median(samples),
                    q[0],
                    min(samples),
                    lim.decreases,
                    st.rate_limited_responses,
                    wall,
                )
            )
            print(
                f"R1 run {r}: {n / wall:.1f} req/s ({wall:.1f} s), ok {st.ok}/{n}, window median "
                f"{rows[-1][2]:.1f} p10 {q[0]:.1f} min {min(samples):.1f} (of {c}), decreases {lim.decreases}, "
                f"429s {st.rate_limited_responses}, attempts {st.http_attempts}",
                flush=True,
            )
            print("   window every 0.5 s: " + " ".join(f"{x:.0f}" for x in samples[::5]), flush=True)
    med = [statistics.median(x[i] for x in rows) for i in range(len(rows[0]))]
    return [
        "### R1 fault mix: throughput and window (not a target; random 429s must not collapse the window)",
        "",
        (
            f"R1 mix (20% 500, 10% 429 + `Retry-After: 1`, 5% hangs, 5% malformed, 5% truncated; independent "
            f"of load), L = {lat} s, LLMClient at C = {c}, timeout {to:g} s, default retries, N = {n}"
            + ("." if args.overload_share is None else f"; limiter overload_share = {args.overload_share:g}.")
        ),
        "",
        "| figure | median | runs |",
        "| --- | --- | --- |",
        f"| throughput (req/s) | **{med[0]:.1f}** | {', '.join(f'{x[0]:.1f}' for x in rows)} |",
        f"| items ok (of {n}) | {med[1]:.0f} | {', '.join(str(x[1]) for x in rows)} |",
        f"| window, median of 0.1 s samples (of {c}) | {med[2]:.1f} | {', '.join(f'{x[2]:.1f}' for x in rows)} |",
        f"| window, 10th percentile | {med[3]:.1f} | {', '.join(f'{x[3]:.1f}' for x in rows)} |",
        f"| limiter decreases | {med[5]:.0f} | {', '.join(str(x[5]) for x in rows)} |",
        f"| 429 answers | {med[6]:.0f} | {', '.join(str(x[6]) for x in rows)} |",
    ]


NOTES = [
    "### Notes",
    "",
    (
        "- The machine is shared: other sessions' tests and demos ran during these runs (load averages above), "
        "which is why single runs scatter by a few percent; figures are medians of alternated runs."
    ),
    (
        "- P1/P2 (`--only pair`, since 2026-12-07): ours and the bare loop at each C in the same run, "
        "alternated; CPU = `time.process_time()` of the client process, which a loaded machine inflates "
        "less than wall time but still inflates (both clients alike): read the ratios ours / bare first."
    ),
    (
        "- LLMClient's transport (aiohttp installed, no proxy): `AioHttpSender` posts the JSON body on one "
        "`aiohttp.ClientSession` with the openai client's headers read once; the SDK path "
        "(`AsyncOpenAI.post`: `FinalRequestOptions`, URL parse, header merge, httpx2 request / send / "
        "response around the SDK's own aiohttp transport) was ~80% of the client's CPU per request. "
        "Without aiohttp or behind a proxy: `AsyncOpenAI.post(..., cast_to=httpx2.Response)` on httpx2, "
        "as before. 'cache on' includes journalling each response and flushing to DuckDB every 15 s / "
        "4096 rows."
    ),
    (
        "- P3: AIMD with decrease 0.95 x in-flight once per epoch (harder while decreases follow each other "
        "without a success), +1 per window, no growth for Retry-After after a decrease; 429'd requests wait "
        "their Retry-After, so the server is kept full by the others. Decrease 0.9 measured ~0.86. A 429 "
        "counts as overload only while 429s are >= 0.3 of a moving share of recent answers (weight 1/32): "
        "random 429s (R1: 12.5% of 429-or-success answers) do not shrink the window; above capacity the "
        "local server's instant 429s pass 0.3 within ~10 answers, hence ~2.5x the 429 answers of the old "
        "rule in P3 at the same rate. Where a 429 takes as long as a success the window settles at "
        "~1.2-1.4 x capacity instead (simulated), server still full. R1 before the gate: "
        "`--only r1 --overload-share 0`."
    ),
]


def machine() -> str:
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, openai {openai.__version__}"


def write_doc(section: list[str]) -> None:
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    block = "\n".join(section).rstrip() + "\n"
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + block + ("\n" + text[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="p1,p2,p3,r1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--n-fixed", action="store_true", help="pair: N = --n at every C (default: scaled with C)")
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--c", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--p2-c", type=int, default=64)
    ap.add_argument("--capacity", type=int, default=32)
    ap.add_argument("--p3-c", type=int, default=64)
    ap.add_argument("--retry-after", type=float, default=1.0)
    ap.add_argument("--r1-c", type=int, default=32)
    ap.add_argument("--r1-latency", type=float, default=0.2)
    ap.add_argument("--r1-n", type=int, default=600)
    ap.add_argument("--r1-timeout", type=float, default=2.0)
    ap.add_argument(
        "--overload-share", type=float, default=None, help="R1 only; 0 = every 429 counts (the old rule)"
    )
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    only = set(args.only.split(","))
    cmd = "python bench/bench_llm.py " + " ".join(sys.argv[1:])
    section = [
        HEADING,
        "",
        (
            f"Date {date.today().isoformat()}; machine: {machine()}. Command: `{cmd.strip()}`. "
            f"Each figure is the median of {args.runs} run(s); the test server "
            "(`testing.llm_server`, asyncio, uvloop if installed) runs as a separate "
            "process on the same 2 cores."
        ),
        "",
    ]
    for name, fn in (("pair", pair), ("p1", p1), ("p2", p2), ("p3", p3), ("r1", r1)):
        if name in only:
            load0 = os.getloadavg()[0]
            lines = fn(args)
            lines.insert(
                2,
                f"1-min load average before / after: {load0:.1f} / {os.getloadavg()[0]:.1f} "
                "(2 cores; other work on the machine shows up here).",
            )
            lines.insert(3, "")
            section += lines + [""]
    section += NOTES
    print("\n".join(section))
    if not args.no_write:
        write_doc(section)


if __name__ == "__main__":
    main()
