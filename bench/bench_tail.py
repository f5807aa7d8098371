"""The whole run's LLM traffic without the pipeline: N chains of K structured calls each, every chain one
call at a time (a trajectory's turns), all chains on one session. A chain stops at its first failed
call, as the flow does. Fault-free vs E3's fault mix (R1 + 5% more requests that never answer), the
server in its own process. A quick stand-in for bench_e2e.py's E1 / E3 while working on the client;
the reported P8 figure is bench_e2e.py's.

    .venv/bin/python bench/bench_tail.py --chains 384 --calls 18
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import BaseModel

from funreason_pipeline.llm import ClientOptions, LLMClient, LLMRequest, LLMSettings
from funreason_pipeline.llm.structured import acall_structured
from testing.llm_server import R1_FAULTS, ServerConfig, fetch_stats, run_subprocess_server

E3_FAULTS = {**R1_FAULTS, "rate_timeout": R1_FAULTS["rate_timeout"] + 0.05, "hang_s": 3600.0}
ROLES = ["tooling", "querying", "reasoning", "critic"]


class Echo(BaseModel):
    echo: str


async def chains(url: str, n: int, k: int, concurrency: int, trace_path: str | None = None,
                 settings: dict | None = None, options: dict | None = None) -> dict:
    client = LLMClient(LLMSettings.for_endpoint(url, concurrency=concurrency, **(settings or {})), cache=False,
                       options=ClientOptions(**(options or {})))
    failed: Counter[str] = Counter()
    done = [0]
    ends: list[float] = []
    durations: list[tuple] = []  # (seconds, chain, call, started at)
    t0, c0 = time.perf_counter(), time.process_time()

    async def chain(i: int) -> None:
        for j in range(k):
            role = ROLES[j % len(ROLES)]
            req = LLMRequest(role=role, item_id=f"c{i}/{j}",
                             messages=[{"role": "user", "content": f"chain {i} call {j} {t0}"}])
            c0 = time.perf_counter()
            res = await acall_structured(session, req, Echo)
            durations.append((round(time.perf_counter() - c0, 1), i, j, round(c0 - t0, 1)))
            if not res.ok:
                failed[res.reason or "?"] += 1
                break
            done[0] += 1
        ends.append(time.perf_counter() - t0)

    trace: list[tuple] = []

    async def sample() -> None:  # the limiter's window, its slots taken, its queue; copies on the wire
        while True:
            await asyncio.sleep(1.0)
            for ep in session.endpoints.values():
                lim = ep.limiter
                trace.append((round(time.perf_counter() - t0, 1), round(lim.limit, 1), lim.in_flight,
                              len(lim._waiters), session.in_flight, n - len(ends)))

    async with client.session() as session:
        sampler = asyncio.ensure_future(sample())
        await asyncio.gather(*(chain(i) for i in range(n)))
        sampler.cancel()
        st = session.snapshot()
        delays = {role: session.hedge_delay(ep, client.settings.role(role))
                  for ep in session.endpoints.values() for role in ROLES}
    if trace_path:
        Path(trace_path).write_text("t limit slots queued on_wire chains_left\n"
                                    + "\n".join(" ".join(map(str, r)) for r in trace) + "\n")
    ends.sort()
    return {"wall_s": round(time.perf_counter() - t0, 1), "calls_ok": done[0], "chains_failed": dict(failed),
            "p50_chain_end_s": round(ends[len(ends) // 2], 1), "p99_chain_end_s": round(ends[int(0.99 * len(ends))], 1),
            "attempts": st.http_attempts, "hedges": st.hedges, "sent": st.sent,
            "max_in_flight": st.max_in_flight, "hedges_replaced": st.hedges_replaced,
            "decreases": sum(ep.limiter.decreases for ep in session.endpoints.values()), "cpu_s": round(time.process_time() - c0, 1),
            "hedge_delays": {r: round(d, 2) if d else d for r, d in delays.items()},
            "slowest_calls": sorted(durations, reverse=True)[:8]}


def run(faults: dict, args) -> dict:
    cfg = ServerConfig(latency=args.latency, seed=args.seed, **faults)
    with run_subprocess_server(cfg) as (url, _proc):
        samples: list[int] = []
        stop = threading.Event()

        def poll() -> None:
            while not stop.wait(0.5):
                try:
                    samples.append(fetch_stats(url)["in_flight"])
                except OSError:
                    pass

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        out = asyncio.run(chains(url, args.chains, args.calls, args.concurrency,
                                 args.trace and f"{args.trace}.{'faults' if faults else 'clean'}",
                                 json.loads(args.settings), json.loads(args.options)))
        stop.set()
        th.join()
        st = fetch_stats(url)
    out["server_outcomes"] = st["by_outcome"]
    out["server_max_in_flight"] = st["max_in_flight"]
    out["mean_server_in_flight"] = round(sum(samples) / max(1, len(samples)), 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--chains", type=int, default=384)
    p.add_argument("--calls", type=int, default=18)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--only", default="clean,faults")
    p.add_argument("--settings", default="{}", help="RoleSettings overrides as JSON (hedge_factor, ...)")
    p.add_argument("--options", default="{}", help="ClientOptions overrides as JSON (max_attempts, ...)")
    p.add_argument("--trace", default=None, help="write the limiter's state each second to TRACE.clean / .faults")
    args = p.parse_args()
    res = {}
    if "clean" in args.only:
        res["clean"] = run({}, args)
        print("clean ", json.dumps(res["clean"]), flush=True)
    if "faults" in args.only:
        res["faults"] = run(E3_FAULTS, args)
        print("faults", json.dumps(res["faults"]), flush=True)
    if "clean" in res and "faults" in res:
        print(f"faults / clean wall: {res['faults']['wall_s'] / res['clean']['wall_s']:.2f}")


if __name__ == "__main__":
    main()
