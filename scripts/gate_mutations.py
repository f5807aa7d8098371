"""Mutation check of the gates: remove one comparison at a time from verify_turn, the trajectory replay
and the sample replay, run tests/test_gates.py, and require it to fail; the file is restored after each.

    .venv/bin/python scripts/gate_mutations.py      # exits 1 if some removal leaves the tests green

Run it on a tree nobody is editing: it rewrites funreason_pipeline/verify/*.py for a few seconds each.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXECUTION = "funreason_pipeline/verify/execution.py"
REPLAY = "funreason_pipeline/verify/replay.py"

# name -> (file, the comparison as written, the same line with the comparison gone)
MUTATIONS = {
    "verify_turn: state comparison": (
        EXECUTION, "same_state = world.snapshot() == gt_world.snapshot()", "same_state = True"),
    "verify_turn: response comparison": (
        EXECUTION, '    if missing:\n        problems.append(f"response_mismatch',
        '    if False:\n        problems.append(f"response_mismatch'),
    "replay_trajectory: end-state comparison": (
        REPLAY, "elif turn.end_state is not None and digest != turn.end_state:", "elif False:"),
    "replay_trajectory: result comparison": (
        REPLAY, "elif canonical(res.value) != canonical(call.result):", "elif False:"),
    "replay_sample: tool-message comparison": (
        REPLAY, "            if canonical(shown) != canonical(got):", "            if False:"),
    "replay_sample: state comparison": (REPLAY, "if digest is None or digest != states[turn]:", "if False:"),
    "replay_sample: response comparison": (
        REPLAY, '        if missing:\n            problems.append(f"response_mismatch',
        '        if False:\n            problems.append(f"response_mismatch'),
    "replay_sample: injected-error check": (REPLAY, '            if c["id"] in injected:', "            if False:"),
}


def main() -> int:
    survived = []
    for name, (rel, old, new) in MUTATIONS.items():
        path = ROOT / rel
        original = path.read_text()
        if original.count(old) != 1:
            print(f"{name}: the comparison is not in {rel} as expected; update this script")
            return 2
        try:
            path.write_text(original.replace(old, new))
            run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                  "tests/test_gates.py"], check=False, cwd=ROOT, capture_output=True,
                                 text=True)
        finally:
            path.write_text(original)
        failed = sorted({line.split(" ")[1] for line in run.stdout.splitlines() if line.startswith("FAILED ")})
        print(f"removed {name}: {len(failed)} test(s) fail")
        for test in failed:
            print(f"    {test}")
        if run.returncode == 0:
            survived.append(name)
    if survived:
        print("NOT caught:", ", ".join(survived))
        return 1
    print("every removal was caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
