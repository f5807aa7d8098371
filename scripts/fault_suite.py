"""The full fault suite (targets R1 and R2), at a larger size than the test suite's fast variants.

    make faults                       # = .venv/bin/python scripts/fault_suite.py
    .venv/bin/python scripts/fault_suite.py --toolsets tickets,messages --trajectories 4 --points committed

Every run is the real pipeline (`python -m funreason_pipeline.cli demo ...` in a subprocess, its own
FUNREASON_DB and DAGSTER_HOME) with its LLM roles pointed at the local OpenAI-compatible test server
(testing/llm_server.py), which runs in this process with a deterministic stand-in model
(`Agents`: right answers derived from the requests; a third of the reasoner's first attempts wrong,
so the critic loop runs).

R1  faults. The server injects 20% HTTP 500, 10% 429 (Retry-After), 5% timeouts (hangs past the client
    timeout), 5% malformed JSON bodies and 5% truncated answers (finish_reason=length), on every request,
    retries included. Checks: the run completes (exit 0) and the client's circuit breaker refused no
    request (a flaky endpoint is not a dead one: the default seed, 7, draws 10 breaker-counted failures
    in a row at draws 125-135, which the old 10-in-a-row breaker took for a dead endpoint whenever one
    batch got them all); every fault kind really happened; per stage
    and partition, items in = accepted + rejected, disjoint, every rejection with a reason:
      queries      turns of the trajectories      -> query rows | rejections(queries)
      cot_traces   query rows                     -> passed traces | rejections(cot_traces)
      dialogues    trajectories                   -> dialogues | rejections(dialogues, no_verified_turn)
      dialogue turns  turns of the trajectories   -> turns in a dialogue | rejections(turn_not_verified)
      sft_samples  user turns of the dialogues    -> samples | rejections(sft_samples)
      rl_samples   SFT samples                    -> RL rows | rejections(rl_samples)
    and the dialogue turns are exactly the verified turns; the planted API key is nowhere in the
    database, the exports or the log (R6). Prints the per-stage figures and the transport counters.
R2  crash mid LLM stage. No faults, a slower server: an uninterrupted reference run into a fresh
    database, then a run SIGKILLed (whole process group) once half of the reference's reasoning
    requests are answered, then a rerun. Checks: every table (row content hashes) equals the
    reference; no duplicate ids or cached requests; the rerun re-sent no finished request (at most
    the few in flight at the kill) and the two runs together sent exactly the reference's requests.
R2  crash during DuckDB writes. On copies of that finished database: for every table the IO manager
    writes x every stop point (after_delete, after_insert, committed: scripts/crash_points.py), a
    rerun is SIGKILLed there; plus, per Dagster step that writes one of them (`queries` and
    `cot_traces` are one step, `llm_stages`), a kill at the first moment a .wal file exists after the
    step starts (those runs log at DEBUG, where Dagster's STEP_START lines are). After each kill the file must open and every table must equal the reference
    (a committed write survives, an interrupted one leaves the old rows whole); after a final rerun
    too. No LLM request may be sent again (everything comes from the cache).

Exits 1 on any violation. 9-22 minutes on 2 cores with the defaults, depending on the machine's load
(figures in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this tree's package (also from a `git worktree` copy), as the subprocesses use
_spec = importlib.util.spec_from_file_location("crash_points", ROOT / "scripts" / "crash_points.py")
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)
e2e = cp.e2e

import duckdb

from bench.scripted_agents import stepwise_answer
from funreason_pipeline.agents.advanced_tool import mentionable
from funreason_pipeline.agents.prompts import prompt
from funreason_pipeline.llm.structured import REPAIR_PROMPT
from testing.llm_server import R1_FAULTS, ServerConfig, TestServer

DAY = "2026-06-01"
PLANTED_KEY = "sk-faultsuite-PLANTED-5f2c9e0d41"
FAULT_OUTCOMES = ("ok", "error_500", "rate_limited", "timeout", "malformed", "truncated")
WRONG_FIRST = "I will just look around first."
FEEDBACK = "Feedback on your previous attempt"
REPAIR_PREFIX = REPAIR_PROMPT.split("{")[0][:40]
WRITTEN_TABLES = ["tool_catalog", "api_graph", *cp.PARTITION_TABLES, "day_export"]  # by the IO manager


# --- the stand-in model ----------------------------------------------------------------------------
class Agents:
    """The test server's responder: deterministic answers derived from each request.

    tooling   names the turn's advanced tool `op_<letters>` (a hash of the request) and remembers the
              turn's calls, which the tooling request carries, under that name
    querying  a query holding every user-supplied value, naming the tool (so the reasoner can find it)
    reasoning the remembered calls (found through the hint's tool name), step by step; wrong (no calls)
              on the first attempt for a third of the turns, right after the critic's feedback; closing replies
    critic    a critique without the answer
    Requests are recorded per `label` (a phase of the suite) by a hash of (role, messages).
    """

    _token = re.compile(r"amounts to `(op_[a-p]+)`")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: dict[str, list | None] = {}
        self.label = "-"
        self.seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
        self.repairs: Counter = Counter()  # structured-output repair retries seen, per label
        self.reply_prefix = prompt("reply")[:40]

    def count(self, label: str, role: str | None = None) -> int:
        with self.lock:
            return sum(1 for r, _ in self.seen[label] if role is None or r == role)

    def keys(self, label: str) -> set[str]:
        with self.lock:
            return {k for _, k in self.seen[label]}

    def __call__(self, role: str, body: dict) -> dict:
        msgs = body.get("messages") or []
        key = hashlib.sha256(json.dumps([role, msgs], sort_keys=True).encode()).hexdigest()
        last = msgs[-1].get("content") if msgs else ""
        with self.lock:
            self.seen[self.label].append((role, key))
            if isinstance(last, str) and last.startswith(REPAIR_PREFIX):
                self.repairs[self.label] += 1
        try:
            if role == "reasoning" and not (msgs and msgs[0]["content"].startswith(self.reply_prefix)):
                return self._reason(msgs, body)
            return {"content": json.dumps(self._answer(role, msgs))}
        except Exception as exc:  # noqa: BLE001 - a request it cannot read gets a useless answer
            return {"content": f"I could not read that request ({type(exc).__name__})."}

    def _answer(self, role: str, msgs: list[dict]) -> dict:
        users = [m["content"] for m in msgs if m["role"] == "user"]
        if role == "tooling":  # messages: system, user (+ assistant, repair prompt on a repair retry)
            token = "op_" + "".join(chr(97 + int(c, 16)) for c in hashlib.sha1(users[0].encode()).hexdigest()[:12])
            try:
                calls = json.loads(users[0])["calls"]
            except (ValueError, KeyError):  # the request was cut at its size limit
                calls = None
            with self.lock:
                self.calls[token] = calls
            return {"name": token, "description": "Carries out the user's request with the environment's tools."}
        if role == "querying":
            spec = json.loads(users[0])
            values = [s for v in spec["user_supplied_values"].values() for s in mentionable(v)]
            return {"query": f"Please run {spec['advanced_tool']['name']} for me with these details: "
                             + "; ".join(values) + "."}
        if role == "critic":
            return {"critique": "Your calls did not change anything the request asked for."}
        return {"reply": "All done."}

    def _reason(self, msgs: list[dict], body: dict) -> dict:
        """One step of the turn (bench/scripted_agents.stepwise_answer: native tool calls, or the JSON
        answer when the request has no tools)."""
        users = [m["content"] for m in msgs if m["role"] == "user"]
        hints = [t for m in msgs if m["role"] == "system" for t in self._token.findall(m["content"])]
        with self.lock:
            calls = self.calls.get(hints[-1]) if hints else None
        wrong_first = bool(hints) and int(hashlib.sha1(hints[-1].encode()).hexdigest(), 16) % 3 == 0
        if calls is None or (wrong_first and not any(u.startswith(FEEDBACK) for u in users)):
            # an answer without calls: the turn fails verification
            if not body.get("tools"):
                return {"content": json.dumps({"reasoning": WRONG_FIRST, "calls": []})}
            return {"content": f"<think>{WRONG_FIRST}</think>I am done."}
        return stepwise_answer([{"name": c["tool"], "arguments": c["arguments"], "result": c.get("result")}
                                for c in calls], body)


# --- helpers ---------------------------------------------------------------------------------------
class Report:
    def __init__(self) -> None:
        self.violations: list[str] = []
        self.figures: dict = {}

    def check(self, ok: bool, what: str) -> bool:
        if not ok:
            self.violations.append(what)
            print(f"  VIOLATION: {what}", flush=True)
        return ok


def llm_env(base: dict, url: str, concurrency: int, timeout_s: float) -> dict:
    return {**base, "FUNREASON_LLM_BASE_URL": url, "FUNREASON_LLM_MODEL": "test-model",
            "FUNREASON_LLM_API_KEY": PLANTED_KEY, "FUNREASON_LLM_TIMEOUT": str(timeout_s),
            "FUNREASON_LLM_CONCURRENCY": str(concurrency)}


def demo_args(toolsets: str, trajectories: int, workers: int) -> list[str]:
    return ["demo", "--day", DAY, "--toolsets", toolsets, "--trajectories", str(trajectories),
            "--workers", str(workers)]


def rows(con, sql: str, args: list | None = None) -> list[dict]:
    cur = con.execute(sql, args or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def account(db: Path, rep: Report) -> dict:
    """R1 accounting per stage and partition: items in = accepted + rejected (disjoint, with reasons)."""
    stages: dict[str, dict] = {}

    def add(stage: str, part: str, items: set, accepted: set, rejected: set, reasons: Counter) -> None:
        s = stages.setdefault(stage, {"in": 0, "accepted": 0, "rejected": 0, "reasons": Counter()})
        s["in"] += len(items)
        s["accepted"] += len(accepted)
        s["rejected"] += len(rejected)
        s["reasons"] += reasons
        rep.check(not accepted & rejected, f"{stage} {part}: {len(accepted & rejected)} items both accepted and "
                                           f"rejected, e.g. {sorted(accepted & rejected)[:3]}")
        rep.check(accepted | rejected == items,
                  f"{stage} {part}: {len(items - accepted - rejected)} items neither accepted nor rejected "
                  f"(e.g. {sorted(items - accepted - rejected)[:3]}), {len((accepted | rejected) - items)} unknown "
                  f"(e.g. {sorted((accepted | rejected) - items)[:3]})")

    with duckdb.connect(str(db), read_only=True) as con:
        parts = con.execute("SELECT DISTINCT strftime(day, '%Y-%m-%d'), toolset FROM trajectories ORDER BY ALL").fetchall()
        no_reason = con.execute("SELECT count(*) FROM rejections WHERE coalesce(reason, '') = '' "
                                "OR coalesce(item_id, '') = ''").fetchone()[0]
        rep.check(no_reason == 0, f"{no_reason} rejections without a reason or an item id")
        for day, ts in parts:
            part = f"{day}|{ts}"
            w = "WHERE strftime(day, '%Y-%m-%d') = ? AND toolset = ?"

            def rej(stage: str, *, _w=w, _day=day, _ts=ts) -> list[dict]:
                return rows(con, f"SELECT item_id, reason FROM rejections {_w} AND stage = ?", [_day, _ts, stage])

            trajs = rows(con, f"SELECT trajectory_id, n_turns FROM trajectories {w}", [day, ts])
            turns = {f"{t['trajectory_id']}/{k}" for t in trajs for k in range(t["n_turns"])}
            # Phase II
            queries = {f"{r['trajectory_id']}/{r['turn_index']}"
                       for r in rows(con, f"SELECT trajectory_id, turn_index FROM queries {w}", [day, ts])}
            r2 = rej("queries")
            add("queries", part, turns, queries, {r["item_id"] for r in r2}, Counter(r["reason"] for r in r2))
            # Phase III: a failed trace is a rejection (verification_failed / reply_failed)
            traces = rows(con, f"SELECT trajectory_id, turn_index, passed FROM cot_traces {w}", [day, ts])
            passed = {f"{r['trajectory_id']}/{r['turn_index']}" for r in traces if r["passed"]}
            failed = {f"{r['trajectory_id']}/{r['turn_index']}" for r in traces if not r["passed"]}
            r3 = rej("cot_traces")
            rejected3 = {r["item_id"] for r in r3}
            add("cot_traces", part, queries, passed, rejected3, Counter(r["reason"] for r in r3))
            rep.check(failed <= rejected3, f"cot_traces {part}: failed traces without a rejection: "
                                           f"{sorted(failed - rejected3)[:3]}")
            # Phase IV, per trajectory and per turn
            dlg = rows(con, f"SELECT dialogue_id, trajectory_id, n_turns FROM dialogues {w}", [day, ts])
            r4 = rej("dialogues")
            add("dialogues", part, {t["trajectory_id"] for t in trajs}, {d["trajectory_id"] for d in dlg},
                {r["item_id"] for r in r4 if "/" not in r["item_id"]},
                Counter(r["reason"] for r in r4 if "/" not in r["item_id"]))
            in_dialogue = {f"{d['trajectory_id']}/{k}" for d in dlg for k in range(d["n_turns"])}
            add("dialogue turns", part, turns, in_dialogue, {r["item_id"] for r in r4 if "/" in r["item_id"]},
                Counter(r["reason"] for r in r4 if "/" in r["item_id"]))
            rep.check(in_dialogue == passed, f"dialogues {part}: dialogue turns differ from the verified turns "
                                             f"({len(in_dialogue ^ passed)} differ)")
            # SFT: one sample per user turn; a rejection names a sample or a whole dialogue
            samples_in = {f"{d['dialogue_id']}:{k}" for d in dlg for k in range(d["n_turns"])}
            kept = {r["sample_id"] for r in rows(con, f"SELECT sample_id FROM sft_samples {w}", [day, ts])}
            r5 = rej("sft_samples")
            by_dialogue = {d["dialogue_id"]: {f"{d['dialogue_id']}:{k}" for k in range(d["n_turns"])} for d in dlg}
            rejected5 = set().union(*[by_dialogue.get(r["item_id"], {r["item_id"]}) for r in r5]) if r5 else set()
            add("sft_samples", part, samples_in, kept, rejected5, Counter(r["reason"] for r in r5))
            # RL: one row per SFT sample that replays to its recorded results
            rl = {r["sample_id"] for r in rows(con, f"SELECT sample_id FROM rl_samples {w}", [day, ts])}
            r6 = rej("rl_samples")
            add("rl_samples", part, kept, rl, {r["item_id"] for r in r6}, Counter(r["reason"] for r in r6))
    return stages


def print_stages(stages: dict) -> None:
    print(f"  {'stage':<15} {'items in':>8} {'accepted':>9} {'rejected':>9}  rejections by reason")
    for name, s in stages.items():
        reasons = ", ".join(f"{k} {v}" for k, v in s["reasons"].most_common()) or "-"
        print(f"  {name:<15} {s['in']:>8} {s['accepted']:>9} {s['rejected']:>9}  {reasons}")


def client_stats(home: Path) -> dict:
    """The LLM client's batch statistics, summed over the materializations of the LLM assets."""
    import dagster as dg

    total: Counter = Counter()
    kinds: Counter = Counter()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        seen_runs = set()  # the LLM stages are one multi-asset: every materialization of a run has the
        for asset in ("queries", "cot_traces"):  # run's session figures, so count each run once
            for rec in instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records:
                if rec.run_id in seen_runs:
                    continue
                seen_runs.add(rec.run_id)
                md = rec.asset_materialization.metadata
                for k in ("items", "cache_hits", "sent", "http_attempts", "retries", "ok", "failed",
                          "rate_limited_responses"):
                    if k in md:
                        total[k] += int(md[k].value)
                if "failures_by_kind" in md:
                    kinds.update(json.loads(md["failures_by_kind"].value))
    return {**total, "failures_by_kind": dict(kinds)}


def source_hash() -> str:
    """What the runs execute: the package's code and prompts, the toolset config. Comparisons between
    runs mean nothing if this changes during the suite (someone editing the tree)."""
    h = hashlib.sha256()
    files = sorted([*(ROOT / "funreason_pipeline").rglob("*.py"), *(ROOT / "funreason_pipeline").rglob("*.md"),
                    ROOT / "data" / "toolsets.yaml"])
    for f in files:
        h.update(str(f.relative_to(ROOT)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def key_leaks(paths: list[Path]) -> list[str]:
    """Files under `paths` containing the planted API key (R6)."""
    hits = []
    for root in paths:
        for f in [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]:
            if PLANTED_KEY.encode() in f.read_bytes():
                hits.append(str(f))
    return hits


# --- the parts -------------------------------------------------------------------------------------
def part_r1(args, work: Path, rep: Report) -> None:
    print(f"\n== R1: fault mix through the pipeline ({args.toolsets}, {args.trajectories} trajectories each) ==",
          flush=True)
    agents = Agents()
    agents.label = "r1"
    cfg = ServerConfig(responder=agents, latency=0.02, retry_after=0.2, hang_s=6.0, seed=args.seed, **R1_FAULTS)
    db, log = work / "r1.duckdb", work / "r1.log"
    env = e2e.isolated_env(work / "r1", db)
    t0 = time.monotonic()
    with TestServer(cfg) as srv:
        env = llm_env(env, srv.url, concurrency=16, timeout_s=2.0)
        try:
            cp.run_to_completion(demo_args(args.toolsets, args.trajectories, args.workers), env, log, timeout_s=3600)
            completed = True
        except AssertionError as exc:
            completed = False
            print(str(exc)[-3000:])
        outcomes = srv.stats()["by_outcome"]
    wall = time.monotonic() - t0
    breaker = "EndpointUnavailableError" in log.read_text(errors="replace")
    rep.check(completed, "R1: the run did not complete under the fault mix"
              + (" (the client's circuit breaker declared the endpoint dead: EndpointUnavailableError in "
                 f"{log})" if breaker else ""))
    if not completed:
        return
    stages = account(db, rep)
    client = client_stats(work / "r1" / "dagster_home")
    print(f"  run completed in {wall:.0f}s; server outcomes: {dict(sorted(outcomes.items()))}")
    print(f"  client: sent {client.get('sent', 0)} requests, {client.get('http_attempts', 0)} HTTP attempts, "
          f"{client.get('retries', 0)} retries, {client.get('rate_limited_responses', 0)} 429s waited out, "
          f"{client.get('failed', 0)} failed after retries {client.get('failures_by_kind', {})}; "
          f"{agents.repairs['r1']} structured-output repair requests answered")
    print_stages(stages)
    for o in FAULT_OUTCOMES:
        rep.check(outcomes.get(o, 0) > 0, f"R1: no '{o}' outcome happened at the server: {outcomes}")
    refused = client.get("failures_by_kind", {}).get("circuit_open", 0)
    rep.check(not refused, f"R1: the circuit breaker refused {refused} requests to a flaky but live endpoint")
    for name in ("queries", "cot_traces", "sft_samples", "rl_samples"):
        rep.check(stages.get(name, {}).get("accepted", 0) > 0, f"R1: nothing accepted at {name}")
    leaks = key_leaks([db, work / "r1" / "exports", log])
    rep.check(not leaks, f"R6: the planted API key is in {leaks}")
    total = sum(outcomes.values())
    rep.figures["r1"] = {
        "toolsets": args.toolsets, "trajectories_per_partition": args.trajectories, "wall_s": round(wall, 1),
        "server_requests": total, "server_outcomes": outcomes,
        "fault_share": round(1 - outcomes.get("ok", 0) / total, 3) if total else 0.0,
        "client": client, "repair_requests_answered": agents.repairs["r1"],
        "stages": {k: {**v, "reasons": dict(v["reasons"])} for k, v in stages.items()},
    }


def part_llm_crash(args, work: Path, rep: Report, agents: Agents, url: str) -> tuple[Path, Path, dict] | None:
    print(f"\n== R2: SIGKILL mid LLM stage, rerun ({args.crash_toolsets}, {args.crash_trajectories} trajectories each) ==",
          flush=True)
    cli = demo_args(args.crash_toolsets, args.crash_trajectories, 1)
    ref_db, db = work / "ref.duckdb", work / "crash.duckdb"
    ref_env = llm_env(e2e.isolated_env(work / "ref", ref_db), url, concurrency=4, timeout_s=30)
    env = llm_env(e2e.isolated_env(work / "crash", db), url, concurrency=4, timeout_s=30)

    agents.label = "ref"
    t0 = time.monotonic()
    cp.run_to_completion(cli, ref_env, work / "ref.log")
    ref_s = time.monotonic() - t0
    want = cp.snapshot(ref_db, cp.ALL_TABLES)
    n_reasoning, ref_keys = agents.count("ref", "reasoning"), agents.keys("ref")
    print(f"  reference: {len(ref_keys)} requests ({n_reasoning} reasoning) in {ref_s:.0f}s; rows "
          f"{ {t: len(v) for t, v in want.items()} }")
    rep.check(all(want[t] for t in cp.PARTITION_TABLES), "R2: the reference run made no rows somewhere")

    agents.label = "run1"
    log1 = work / "crash1.log"
    proc = e2e.spawn(cp.cli_cmd(cli), env, log1)
    killed = False
    try:
        while proc.poll() is None:
            if agents.count("run1", "reasoning") >= n_reasoning // 2:
                cp._kill_group_now(proc)
                killed = True
                break
            time.sleep(0.005)
    finally:
        if proc.poll() is None:
            e2e.kill_group(proc, grace_s=0)
    answered1 = agents.keys("run1")
    rep.check(killed, f"R2: the run ended (rc {proc.returncode}) before half of the reasoning requests")
    if not killed:
        return None
    journal = list((work / "crash.duckdb.llm-journal").glob("*.jsonl"))
    with duckdb.connect(str(db), read_only=True) as con:
        flushed = con.execute("SELECT count(*) FROM llm_calls").fetchone()[0]
    print(f"  killed after {len(answered1)} answered requests ({agents.count('run1', 'reasoning')} reasoning); "
          f"{flushed} in llm_calls, {len(journal)} journal file(s) left")

    agents.label = "run2"
    cp.run_to_completion(cli, env, work / "crash2.log")
    answered2 = agents.keys("run2")
    got = cp.snapshot(db, cp.ALL_TABLES)
    resent = answered1 & answered2
    print(f"  rerun sent {len(answered2)} requests; {len(resent)} of them had been answered before the kill")
    rep.check(got == want, "R2 (LLM stage): rows after the rerun differ from the uninterrupted run:\n"
              + cp.diff(got, want))
    dup = cp.duplicates(db)
    rep.check(not any(dup.values()), f"R2 (LLM stage): duplicates {dup}")
    left = cp.leftover_runs(work / "crash" / "dagster_home")
    rep.check(not any(left.values()), f"R2 (LLM stage): the killed run is left over {left}")
    rep.check(answered1 | answered2 == ref_keys,
              f"R2 (LLM stage): the two runs sent {len(answered1 | answered2)} distinct requests, the reference "
              f"{len(ref_keys)} ({len((answered1 | answered2) ^ ref_keys)} differ)")
    # answered by the server but not yet journalled by the client at the kill: at most those in flight
    rep.check(len(resent) <= 4, f"R2 (LLM stage): {len(resent)} finished requests were sent again (> C = 4)")
    with duckdb.connect(str(db), read_only=True) as c1, duckdb.connect(str(ref_db), read_only=True) as c2:
        h1 = {r[0] for r in c1.execute("SELECT request_hash FROM llm_calls").fetchall()}
        h2 = {r[0] for r in c2.execute("SELECT request_hash FROM llm_calls").fetchall()}
    rep.check(h1 == h2, f"R2 (LLM stage): cached requests differ from the reference's ({len(h1 ^ h2)})")
    rep.figures["r2_llm"] = {"toolsets": args.crash_toolsets, "reference_requests": len(ref_keys),
                             "answered_before_kill": len(answered1), "in_llm_calls_at_kill": flushed,
                             "journal_files_at_kill": len(journal), "rerun_sent": len(answered2),
                             "resent_after_kill": len(resent), "reference_run_s": round(ref_s, 1)}
    return ref_db, db, want


def _kill_chain(name: str, plan: list[tuple], cli: list[str], base_db: Path, work: Path, url: str,
                want: dict) -> list[tuple[str, bool, str]]:
    """One database copy: each planned kill (then a snapshot check), then a run to completion."""
    d = work / f"chain-{name}"
    db = d / "chain.duckdb"
    env = llm_env(e2e.isolated_env(d, db), url, concurrency=4, timeout_s=30)
    shutil.copy(base_db, db)
    out = []
    for i, (kind, a, b) in enumerate(plan):
        log = d / f"kill{i}-{a}-{b}.log"
        label = f"{a}:{b}" if kind == "point" else f"wal after {a} starts"
        try:
            if kind == "point":
                wal = cp.run_and_kill(cli, env, log, a, b, db)
                note = "wal left" if wal else "no wal"
            else:  # Dagster logs STEP_START at DEBUG
                hit = cp.run_and_kill_on_wal(cli, {**env, "FUNREASON_LOG_LEVEL": "DEBUG"}, log, cp.step_start(a), db)
                note = "killed with a .wal present" if hit else "run ended first"
            got = cp.snapshot(db, cp.ALL_TABLES)
            ok = got == want
            out.append((label, ok, note if ok else note + "; " + cp.diff(got, want)))
        except Exception as exc:  # noqa: BLE001 - reported as a violation, the chain goes on
            out.append((label, False, f"{type(exc).__name__}: {str(exc)[-1500:]}"))
        print(f"  [{name}] {label:<28} {'ok' if out[-1][1] else 'VIOLATION'}  {out[-1][2]}", flush=True)
    try:
        cp.run_to_completion(cli, env, d / "final.log")
        got = cp.snapshot(db, cp.ALL_TABLES)
        dup = cp.duplicates(db)
        left = cp.leftover_runs(d / "dagster_home")
        ok = got == want and not any(dup.values()) and not any(left.values())
        out.append(("final rerun", ok, "equal to the reference, no duplicates, no run or pool slot left over"
                    if ok else f"{cp.diff(got, want)} {dup} {left}"))
        with duckdb.connect(str(db)) as con:
            con.execute("CHECKPOINT")
    except Exception as exc:  # noqa: BLE001
        out.append(("final rerun", False, f"{type(exc).__name__}: {str(exc)[-1500:]}"))
    print(f"  [{name}] {out[-1][0]:<28} {'ok' if out[-1][1] else 'VIOLATION'}  {out[-1][2]}", flush=True)
    return out


def part_duckdb_crash(args, work: Path, rep: Report, agents: Agents, url: str, base_db: Path, want: dict) -> None:
    points = [p for p in args.points.split(",") if p]
    plan = [("point", t, p) for t in WRITTEN_TABLES for p in points]
    steps = dict.fromkeys(cp.step_names(WRITTEN_TABLES).values())  # queries, cot_traces: one step
    plan += [("wal", s, "") for s in steps] if args.wal_kills else []
    print(f"\n== R2: SIGKILL during DuckDB writes ({len(plan)} kills on {args.parallel} database copies) ==", flush=True)
    cli = demo_args(args.crash_toolsets, args.crash_trajectories, 1)
    agents.label = "duckdb"
    chains = [plan[i::args.parallel] for i in range(args.parallel)]
    t0 = time.monotonic()
    with ThreadPoolExecutor(args.parallel) as pool:
        results = [r for rs in pool.map(lambda ic: _kill_chain(str(ic[0]), ic[1], cli, base_db, work, url, want),
                                        enumerate(chains)) for r in rs]
    wall = time.monotonic() - t0
    for label, ok, note in results:
        rep.check(ok, f"R2 (DuckDB write) {label}: {note}")
    resent = agents.count("duckdb")
    rep.check(resent == 0, f"R2 (DuckDB write): {resent} LLM requests sent again (all were cached)")
    print(f"  {sum(ok for _, ok, _ in results)}/{len(results)} checks passed in {wall:.0f}s; "
          f"LLM requests sent: {resent}")
    rep.figures["r2_duckdb"] = {"kills": len(plan), "checks": len(results),
                                "passed": sum(ok for _, ok, _ in results), "wall_s": round(wall, 1),
                                "wal_left_at_committed": sum(1 for lb, _, n in results
                                                             if lb.endswith(":committed") and n.startswith("wal left")),
                                "wal_kills_landed": sum(1 for lb, _, n in results
                                                        if lb.startswith("wal after") and n.startswith("killed")),
                                "llm_requests_resent": resent}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--toolsets", default="tickets,messages,travel,vehicle,trading",
                   help="R1: toolsets (one partition each)")
    p.add_argument("--trajectories", type=int, default=10, help="R1: accepted trajectories per partition")
    p.add_argument("--workers", type=int, default=2, help="R1: partitions in parallel processes")
    p.add_argument("--crash-toolsets", default="tickets,messages", help="R2 runs: toolsets")
    p.add_argument("--crash-trajectories", type=int, default=6, help="R2 runs: trajectories per partition")
    p.add_argument("--points", default=",".join(cp.POINTS), help="R2 DuckDB stop points (comma-separated)")
    p.add_argument("--no-wal-kills", dest="wal_kills", action="store_false", help="skip the WAL-timed kills")
    p.add_argument("--parallel", type=int, default=2, help="R2 DuckDB kills: database copies in parallel")
    p.add_argument("--seed", type=int, default=7, help="fault RNG seed")
    p.add_argument("--skip-r1", action="store_true")
    p.add_argument("--skip-crash", action="store_true")
    p.add_argument("--workdir", type=Path, help="keep everything here (default: a temporary directory, "
                                                 "removed when the suite passes)")
    p.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = p.parse_args(argv)
    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        del os.environ[k]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="funreason-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"fault suite: work directory {work}", flush=True)
    rep = Report()
    t0 = time.monotonic()
    src = source_hash()
    if not args.skip_r1:
        part_r1(args, work, rep)
    if not args.skip_crash:
        agents = Agents()
        with TestServer(ServerConfig(responder=agents, latency=0.1)) as srv:
            base = part_llm_crash(args, work, rep, agents, srv.url)
            if base is not None:
                _, crash_db, want = base
                part_duckdb_crash(args, work, rep, agents, srv.url, crash_db, want)
    rep.check(source_hash() == src, "the source tree changed while the suite ran, so runs made before and after "
              "the change are not comparable: run it on a quiet tree (e.g. `git worktree add /tmp/w HEAD`)")
    rep.figures["wall_s"] = round(time.monotonic() - t0, 1)
    rep.figures["violations"] = rep.violations
    if args.json:
        args.json.write_text(json.dumps(rep.figures, indent=2, default=str))
    print(f"\nfault suite: {len(rep.violations)} violation(s) in {rep.figures['wall_s']:.0f}s")
    for v in rep.violations:
        print(f"  - {v[:500]}")
    if not rep.violations and not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    elif rep.violations:
        print(f"logs and databases kept in {work}")
    return 1 if rep.violations else 0


if __name__ == "__main__":
    sys.exit(main())
