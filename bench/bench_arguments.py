"""Argument meaning and failure shapes in a sampled day (issue "Turns a user would ask for", 2-3).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_arguments.py [--trajectories 12] [--day 2026-12-01] [--repeats 3]

Per toolset: build the graph (probe scenarios, as the asset does), sample a day's trajectories
offline (timed), then count in the accepted trajectories: calls with one value in two parameters,
message/status/error text as an argument, ids/dates/numbers in free-text parameters, values out of
their described format, no-op calls, and calls kept whose result reports a failure.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter

from funreason_pipeline.environments.failures import failure_of
from funreason_pipeline.environments.toolsets import generate_scenario, load_toolsets, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.matching.formats import described_format, in_format
from funreason_pipeline.matching.meaning import is_free_text, is_message_text, is_no_op, looks_like_id
from funreason_pipeline.models import used_edges
from funreason_pipeline.sampling.phase1 import sample_partition
from funreason_pipeline.seeds import stable_seed


def _scalars(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _scalars(v)
    elif isinstance(value, list):
        for v in value:
            yield from _scalars(v)
    else:
        yield value


def count(trajectories, specs) -> tuple[Counter, list[str]]:
    c: Counter = Counter()
    examples: list[str] = []
    for t in trajectories:
        for call in t.flat_calls():
            spec = specs[call.tool]
            props = spec.properties
            args = call.arguments
            c["calls"] += 1
            c["arguments"] += len(args)
            seen: dict = {}
            dup = False
            for name, value in args.items():
                if isinstance(value, (str, int, float)) and not isinstance(value, bool):
                    if value in seen and seen[value] != name:
                        dup = True
                    seen.setdefault(value, name)
            if dup:
                c["same_value_two_params"] += 1
                examples.append(f"dup {call.tool}({json.dumps(args, default=str)[:120]})")
            for name, value in args.items():
                schema = props.get(name, {})
                if any(is_message_text(v) for v in _scalars(value)):
                    c["message_text_value"] += 1
                    examples.append(f"msg {call.tool}.{name}={str(value)[:80]!r}")
                if is_free_text(name, schema):
                    c["free_text_args"] += 1
                    if looks_like_id(value):
                        c["id_in_free_text"] += 1
                        examples.append(f"id-in-text {call.tool}.{name}={str(value)[:60]!r}")
                fmt = described_format(name, schema)
                if fmt:
                    c["formatted_args"] += 1
                    if not in_format(fmt, value):
                        c["format_violations"] += 1
                        examples.append(f"format {call.tool}.{name} ({fmt})={str(value)[:40]!r}")
                if "first" in name and value == args.get(name.replace("first", "last")):
                    c["first_equals_last"] += 1
            if is_no_op(call.tool, props, spec.required, args):
                c["no_op_calls"] += 1
                examples.append(f"no-op {call.tool}({json.dumps(args, default=str)[:100]})")
            if failure_of(call.result, call.tool):
                c["failed_results_kept"] += 1
                examples.append(f"failed {call.tool} -> {json.dumps(call.result, default=str)[:100]}")
    return c, examples


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trajectories", type=int, default=12)
    ap.add_argument("--day", default="2026-12-01")
    ap.add_argument("--toolsets", default="")
    ap.add_argument("--examples", type=int, default=0, help="print up to N offending examples per toolset")
    ap.add_argument("--repeats", type=int, default=1, help="time sampling this many times, keep the fastest")
    args = ap.parse_args()
    chosen = set(filter(None, args.toolsets.split(",")))
    total: Counter = Counter()
    sample_s = graph_s = 0.0
    for ts in load_toolsets():
        if chosen and ts.name not in chosen:
            continue
        tools = toolset_tools(ts)
        specs = {t.name: t for t in tools}
        t0 = time.perf_counter()
        scenarios = [generate_scenario(ts, stable_seed("probe", ts.name, i)) for i in range(4)]
        edges = build_edges(ts, tools, scenarios, seed=1)
        graph_s += time.perf_counter() - t0
        s = float("inf")
        for _ in range(args.repeats):  # deterministic: every repeat samples the same trajectories
            t0 = time.perf_counter()
            res = sample_partition(ts, tools, edges, args.day, args.trajectories)
            s = min(s, time.perf_counter() - t0)
        sample_s += s
        c, examples = count(res.trajectories, specs)
        c["trajectories"] += len(res.trajectories)
        c["failed_attempts"] += sum(r.reason == "tool_error" for r in res.rejections)
        c["uncovered_targets"] += len(res.uncovered)
        graph_edges = {(e.src_tool, e.dst_tool) for e in edges}
        used = set().union(*(used_edges([t.model_dump() for t in tr.turns]) for tr in res.trajectories))
        c["graph_edges"] += len(graph_edges)
        c["edges_exercised"] += len(used & graph_edges)
        c["calls_fed_by_earlier_results"] += sum(bool(call.sources) for tr in res.trajectories for call in tr.flat_calls())
        total += c
        print(f"{ts.name:<24} {s:5.2f}s " + " ".join(f"{k}={v}" for k, v in sorted(c.items())), flush=True)
        for e in examples[: args.examples]:
            print("    " + e)
    print(f"\nTOTAL sampling {sample_s:.1f}s graphs {graph_s:.1f}s")
    for k, v in sorted(total.items()):
        print(f"  {k}: {v}")
    if total["formatted_args"]:
        share = 1 - total["format_violations"] / total["formatted_args"]
        print(f"  format share: {share:.3f}")


if __name__ == "__main__":
    main()
