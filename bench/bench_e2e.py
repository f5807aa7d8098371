"""Whole-run benchmarks (targets.md P7, P8, P4-new): `cli demo` as a user runs it, against the test
server as a separate process, with the client alone measured against the same server beside it.

E1  whole-run throughput / (C/L) over the LLM phase (first to last request the server saw), answers
    the stages accept (bench/scripted_agents.py), C = 64, L = 0.5 s; max in flight.
E2  the same with answers no stage can use (every turn rejected).
E3  R1's fault mix plus 5% requests that never answer: wall time vs E1's, every turn accounted for.
P4  Phase I's share of the end-to-end wall time of E1 (cli's own timings line). The tool catalogs and
    API graphs are per toolset and reused from day to day (cli demo rebuilds one only when its inputs
    changed), so E1-E3 start from a home where they are built, as a nightly run does; `e1cold` is E1
    on a new home, building every graph in the run (a project's first day).
    client alone: LLMClient.run of N requests at the same C against the same server process.

    .venv/bin/python bench/bench_e2e.py                      # all, writes docs/benchmarks.md
    .venv/bin/python bench/bench_e2e.py --only e1 --no-write --trajectories 6
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.llm_server import R1_FAULTS, ServerConfig, TestServer, fetch_stats

DOC = ROOT / "docs" / "benchmarks.md"
HEADING = "## Whole run (P7, P8, P4)"
DAY = "2026-11-26"


# --- the server process --------------------------------------------------------------------------
def serve(mode: str, latency: float, capacity: int | None, faults: dict) -> None:
    """Run as `bench_e2e.py --serve MODE`: a test server with the scripted agents, until killed."""
    from bench.scripted_agents import ChainAgents

    srv = TestServer(ServerConfig(latency=latency, capacity=capacity, responder=ChainAgents(mode), seed=11,
                                  **faults))
    srv.start()
    print(f"READY {srv.url}", flush=True)
    threading.Event().wait()


class Server:
    def __init__(self, mode: str, latency: float, capacity: int | None, faults: dict | None = None):
        cmd = [sys.executable, __file__, "--serve", mode, "--latency", str(latency),
               "--faults", json.dumps(faults or {})]
        if capacity:
            cmd += ["--capacity", str(capacity)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"server did not start: {line!r}")
        self.url = line.split()[1]
        self.samples: list[tuple[float, int, int]] = []  # (t, total, in_flight)
        self._stop = threading.Event()
        self._poll = threading.Thread(target=self._sample, daemon=True)
        self._poll.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            try:
                st = fetch_stats(self.url)
            except OSError:
                continue
            self.samples.append((time.monotonic(), st["total"], st["in_flight"]))

    def stop(self) -> dict:
        self._stop.set()
        self._poll.join()
        st = fetch_stats(self.url)
        self.proc.terminate()
        self.proc.wait(10)
        return st

    def mean_in_flight(self) -> float:
        """Requests in flight at the server, averaged over the samples of the LLM phase."""
        total = self.samples[-1][1] if self.samples else 0
        during = [f for _, n, f in self.samples if 0 < n < total]
        return round(sum(during) / len(during), 1) if during else 0.0

    def llm_phase(self) -> tuple[float, int]:
        """(seconds from the first request to the last, requests): from the 0.2 s samples."""
        first = next((t for t, n, _ in self.samples if n > 0), None)
        total = self.samples[-1][1] if self.samples else 0
        last = next((t for t, n, _ in self.samples if n >= total), None)
        if first is None or last is None:
            return 0.0, 0
        return max(last - first, 1e-9), total


# --- runs ----------------------------------------------------------------------------------------
def graph_home() -> Path:
    """A DAGSTER_HOME + database holding every toolset's catalog and graph (offline, untimed): the
    state a nightly run starts from. Each warm scenario starts from a copy of it."""
    home = Path(tempfile.mkdtemp(prefix="bench-e2e-graphs-"))
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNREASON_LLM")}
    env.update(DAGSTER_HOME=str(home), FUNREASON_DB=str(home / "x.duckdb"), FUNREASON_EXPORTS=str(home / "exports"))
    # the day's graph step alone (defs/day.py): one run over every toolset
    code = ("import sys, dagster as dg; from funreason_pipeline.definitions import defs; "
            "from funreason_pipeline.defs.day import execute, graph_runs; "
            "from funreason_pipeline.environments.toolsets import load_toolsets; d, i = defs(), dg.DagsterInstance.get(); "
            "sys.exit(0 if all([execute(d, i, r).success for r in graph_runs([t.name for t in load_toolsets()])]) else 1)")
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True, capture_output=True)
    return home


def demo(url: str, trajectories: int, concurrency: int, env_extra: dict | None = None,
         template: Path | None = None) -> dict:
    home = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    if template is not None:
        shutil.copytree(template, home, dirs_exist_ok=True)
    (home / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    env = {**os.environ, "DAGSTER_HOME": str(home), "FUNREASON_DB": str(home / "x.duckdb"),
           "FUNREASON_EXPORTS": str(home / "exports"), "FUNREASON_LLM_BASE_URL": url,
           "FUNREASON_LLM_MODEL": "bench-model", "FUNREASON_LLM_CONCURRENCY": str(concurrency), **(env_extra or {})}
    t0, cpu0 = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--day", DAY,
                          "--trajectories", str(trajectories), "--workers", "2"],
                         env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    wall = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)  # the demo and its workers
    timings = next((json.loads(line.split(" ", 1)[1]) for line in out.stdout.splitlines()
                    if line.startswith("timings ")), {})
    import duckdb

    with duckdb.connect(str(home / "x.duckdb"), read_only=True) as con:
        turns = con.execute("SELECT coalesce(sum(n_turns), 0) FROM trajectories").fetchone()[0]
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        samples = con.execute("SELECT count(*) FROM sft_samples").fetchone()[0] if "sft_samples" in tables else 0
        # each turn once: a sample, or a rejection of a later stage (trajectories' own are about calls)
        rejected = con.execute(
            "SELECT count(DISTINCT regexp_replace(replace(item_id, 'dlg-', ''), ':([0-9]+)$', '/\\1')) "
            "FROM rejections WHERE stage IN "
            "('queries', 'cot_traces', 'dialogues', 'sft_samples') AND regexp_matches(item_id, '[/:][0-9]+$')"
        ).fetchone()[0]
        by_reason = dict(con.execute("SELECT stage || ':' || reason, count(*) FROM rejections WHERE stage IN "
                                     "('queries', 'cot_traces') GROUP BY ALL ORDER BY 2 DESC").fetchall())
    return {"rc": out.returncode, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "timings": timings, "turns": int(turns),
            "samples": int(samples), "turn_rejections": int(rejected), "rejections": by_reason,
            "stderr_tail": out.stderr[-800:] if out.returncode else ""}


def client_alone(url: str, n: int, concurrency: int) -> dict:
    from funreason_pipeline.llm import LLMClient, LLMRequest, LLMSettings

    client = LLMClient(LLMSettings.for_endpoint(url, concurrency=concurrency), cache=False)
    reqs = [LLMRequest(role="critic", item_id=f"c{i}", messages=[{"role": "user", "content": f"alone {i}"}])
            for i in range(n)]
    t0 = time.perf_counter()
    res = client.run(reqs)
    wall = time.perf_counter() - t0
    return {"requests": n, "ok": res.stats.ok, "wall_s": round(wall, 2)}


def scenario(name: str, mode: str, faults: dict | None, args, template: Path | None = None) -> dict:
    srv = Server(mode, args.latency, args.capacity, faults)
    try:
        run = demo(srv.url, args.trajectories, args.concurrency, template=template)
    finally:
        st = srv.stop()
    seconds, total = srv.llm_phase()
    ideal = args.concurrency / args.latency
    run.update(name=name, requests=total, llm_phase_s=round(seconds, 2),
               throughput=round(total / seconds, 1) if seconds else 0.0,
               ratio=round(total / seconds / ideal, 3) if seconds else 0.0,
               ceiling=round(total / (math.ceil(total / args.concurrency) * args.latency) / ideal, 3) if total else 0,
               max_in_flight=st["max_in_flight"], mean_in_flight=srv.mean_in_flight(), by_outcome=st["by_outcome"])
    print(json.dumps(run), flush=True)
    return run


def write(results: dict, args) -> None:
    e1, e2, e3, alone = (results.get(k) for k in ("e1", "e2", "e3", "alone"))
    lines = [HEADING, "",
             (f"{date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores (shared with other "
             f"work: figures are one run each). `cli demo --trajectories {args.trajectories} --workers 2` "
             f"(16 toolsets) against `bench/bench_e2e.py`'s test server in its own process, C = "
             f"{args.concurrency}, L = {args.latency} s. Command: `.venv/bin/python bench/bench_e2e.py`."), "",
             ("| run | requests | LLM phase s | throughput / (C/L) | ceiling | max in flight | wall s | "
             "Phase I s (share) | graphs built | turns | samples | turn rejections | every turn accounted |"),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (e1, e2, e3, results.get("e1cold")):
        if r is None:
            continue
        t = r["timings"]
        share = t.get("phase1_s", 0) / t["total_s"] if t.get("total_s") else 0
        lines.append(f"| {r['name']} | {r['requests']:,} | {r['llm_phase_s']} | **{r['ratio']}** | {r['ceiling']} | "
                     f"{r['max_in_flight']} | {r['wall_s']} | {t.get('phase1_s')} ({share:.2f}) | "
                     f"{t.get('graphs_built', 'all')} | {r['turns']:,} | "
                     f"{r['samples']:,} | {r['turn_rejections']:,} | "
                     f"{'yes' if r['samples'] + r['turn_rejections'] == r['turns'] else 'NO'} |")
    if alone:
        ideal = args.concurrency / args.latency
        lines += ["", (f"Client alone against the same server process: {alone['requests']:,} requests in "
                  f"{alone['wall_s']} s = **{alone['requests'] / alone['wall_s'] / ideal:.3f}** of C/L.")]
    if e1 and e3:
        lines += ["", (f"E3 / E1 wall time: **{e3['wall_s'] / e1['wall_s']:.2f}** (target <= 2). "
                  f"E3 outcomes at the server: {json.dumps(e3['by_outcome'])}.")]
    for r in (e1, e2, e3):
        if r:
            lines += ["", f"{r['name']} rejections (queries/cot_traces): {json.dumps(r['rejections'])}"]
    block = "\n".join(lines) + "\n"
    text = DOC.read_text()
    if HEADING in text:
        head, _, rest = text.partition(HEADING)
        nxt = rest.find("\n## ")
        text = head + block + (rest[nxt + 1:] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + block
    DOC.write_text(text)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--serve", choices=["accept", "garbage"])
    p.add_argument("--faults", default="{}")
    p.add_argument("--only", default="e1,e2,e3,e1cold,alone")
    p.add_argument("--trajectories", type=int, default=24)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--latency", type=float, default=0.5)
    p.add_argument("--capacity", type=int, default=None)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.latency, args.capacity, json.loads(args.faults))
        return
    only = set(args.only.split(","))
    results = {}
    if "alone" in only:
        srv = Server("accept", args.latency, args.capacity)
        try:
            results["alone"] = client_alone(srv.url, 2000, args.concurrency)
        finally:
            srv.stop()
        print(json.dumps(results["alone"]), flush=True)
    warm = graph_home() if only & {"e1", "e2", "e3"} else None
    if "e1" in only:
        results["e1"] = scenario("E1 accepted answers", "accept", None, args, warm)
    if "e2" in only:
        results["e2"] = scenario("E2 unusable answers", "garbage", None, args, warm)
    if "e3" in only:
        faults = {**R1_FAULTS, "rate_timeout": R1_FAULTS["rate_timeout"] + 0.05, "hang_s": 3600.0}
        results["e3"] = scenario("E3 R1 faults + 5% never answer", "accept", faults, args, warm)
    if "e1cold" in only:
        results["e1cold"] = scenario("E1, graphs built in the run", "accept", None, args)
    out = ROOT / "data" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "e2e.json"  # a partial rerun (--only) keeps the other scenarios' last figures
    if saved.exists():
        results = {**json.loads(saved.read_text()), **results}
    saved.write_text(json.dumps(results, indent=1))
    if not args.no_write:
        write(results, args)


if __name__ == "__main__":
    main()
