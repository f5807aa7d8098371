"""No orphans: every server process ends with its owner, also when the owner is SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from funreason_pipeline.environments.mcp_server import close_servers, runtime_root, sweep_runtime_root
from funreason_pipeline.environments.toolsets import World, generate_scenario
from tests.mcp_helpers import MCP_TOOLSETS, ROOT, mcp_toolset, our_server_pids

CHILD = f"""
import sys
from funreason_pipeline.environments.toolsets import load_toolsets, World, generate_scenario
pids = []
for ts in load_toolsets({str(MCP_TOOLSETS)!r}):
    if ts.name in ("mcp_memory", "mcp_files", "mcp_sqlite"):
        w = World.from_scenario(ts, generate_scenario(ts, 0))
        pids.append(ts.factory(ts.classes[0]).server().pid)
print(" ".join(map(str, pids)), flush=True)
import time
while True:  # a run in the middle of its work
    w.copy().call("list_tables", {{}})
    time.sleep(0.01)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


def test_a_sigkilled_run_leaves_no_server_process():
    mcp_toolset("mcp_memory")  # servers installed
    child = subprocess.Popen([sys.executable, "-c", CHILD], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        line = child.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 3 and all(_alive(p) for p in pids), line
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in pids if _alive(p)] == []
    # the killed run could not remove its servers' folders; the next run that starts a server does
    assert list(runtime_root().glob(f"*-{child.pid}-*"))
    sweep_runtime_root()
    assert list(runtime_root().glob(f"*-{child.pid}-*")) == []


def test_closing_ends_every_server_this_process_started():
    ts = mcp_toolset("mcp_files")
    World.from_scenario(ts, generate_scenario(ts, 0))
    assert our_server_pids()
    close_servers()
    deadline = time.monotonic() + 5
    while our_server_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert our_server_pids() == []
