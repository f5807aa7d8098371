"""Run BFCL's own multi-turn checker on every dialogue of a day's BFCL toolsets (issue 13's parity).

Per dialogue: its assistant calls, step by step, are the model's answer; the trajectory's turns (its
verified prefix) are the ground truth; the trajectory's scenario is the initial config. Calls are
rendered as BFCL's Python-call strings with each tool's method name.

    .venv/bin/python scripts/bfcl_parity.py --db data/funreason.duckdb --day 2026-12-02

prints `<passed> of <total> dialogues pass` and one line per failure; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

from funreason_pipeline.environments.bfcl import BFCL_CLASSES
from funreason_pipeline.environments.toolsets import load_toolsets, toolset_tools
from funreason_pipeline.export.formats import render_pythonic_calls

BFCL_TOOLSETS = [t.name for t in load_toolsets() if all(c in BFCL_CLASSES for c in t.classes)]


def _bfcl_calls(methods: dict[str, str], calls: list[tuple[str, dict]]) -> list[str]:
    return [render_pythonic_calls([{"name": methods[n], "arguments": a}])[1:-1] for n, a in calls]


def check_day(db: str | Path, day: str, toolsets: list[str] | None = None) -> tuple[dict[str, int], list[tuple]]:
    """(dialogues per toolset, failures as (dialogue_id, error_type, error_message))."""
    by_name = {t.name: t for t in load_toolsets()}
    seen, failures = {}, []
    with duckdb.connect(str(db), read_only=True) as con:
        for name in toolsets or BFCL_TOOLSETS:
            ts = by_name[name]
            methods = {t.name: t.method for t in toolset_tools(ts)}
            dialogues = con.execute(
                "SELECT d.dialogue_id, d.messages, t.scenario, t.turns, d.n_turns FROM dialogues d "
                "JOIN trajectories t USING (day, trajectory_id) WHERE d.day = ? AND d.toolset = ? ORDER BY 1",
                [day, name]).fetchall()
            seen[name] = len(dialogues)
            for dialogue_id, messages, scenario, turns, n_turns in dialogues:
                model: list[list[list[str]]] = []
                for m in json.loads(messages):
                    if m["role"] == "user":
                        model.append([])
                    elif m["role"] == "assistant" and m.get("tool_calls"):
                        model[-1].append(_bfcl_calls(methods, [
                            (c["function"]["name"], json.loads(c["function"]["arguments"])) for c in m["tool_calls"]]))
                truth = [_bfcl_calls(methods, [(c["tool"], c["arguments"]) for c in t["calls"]])
                         for t in json.loads(turns)[:n_turns]]
                # a unique id per dialogue: the checker caches instances in globals() by model name + id
                entry = {"id": f"fr_{dialogue_id}".replace("-", "_"), "initial_config": json.loads(scenario),
                         "involved_classes": ts.classes}
                verdict = multi_turn_checker(model, truth, entry, "multi_turn_base", "parity")
                if not verdict["valid"]:
                    failures.append((dialogue_id, verdict["error_type"], verdict.get("error_message")))
    return seen, failures


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", default="data/funreason.duckdb")
    ap.add_argument("--day", required=True)
    ap.add_argument("--toolsets", default="", help="comma-separated (default: every BFCL toolset)")
    args = ap.parse_args()
    seen, failures = check_day(args.db, args.day, [t for t in args.toolsets.split(",") if t] or None)
    total = sum(seen.values())
    print(f"{total - len(failures)} of {total} dialogues pass BFCL's multi_turn_checker "
          f"({len(seen)} toolsets: {', '.join(f'{k} {v}' for k, v in seen.items())})")
    for f in failures:
        print("  FAIL", *f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
