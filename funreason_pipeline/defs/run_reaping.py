"""Runs executed in a CLI process (in-process execution, not through a run launcher) carry the
process's identity, so a later run can mark those of killed processes failed and free their pool slots."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

PROCESS_TAG = "funreason/process"  # host:pid:start time of the process a run executes in


def _start_time(pid: int) -> str | None:
    """A live process's start time (Linux /proc; elsewhere "0" if the pid exists), None if it is gone."""
    if not Path("/proc/self/stat").exists():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return "0"
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return None


def run_tags() -> dict[str, str]:
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"}


def reap_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed the runs executed in processes of this host that are gone (kill -9, OOM), and free
    the pool slots their steps held. Such a run stays STARTED for good and keeps its `llm` pool slots,
    so after a few crashes every later run waits on the pool forever. Dagster's run monitoring only
    watches runs its run launcher started (its 1.13 docs: it detects run workers that crash), not
    in-process executions like these (tests/test_crash_duckdb.py)."""
    host, reaped = socket.gethostname(), []
    live = [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=live)):
        tag = run.tags.get(PROCESS_TAG, "")
        h, _, rest = tag.partition(":")
        pid, _, start = rest.partition(":")
        if h != host or not pid.isdigit() or _start_time(int(pid)) == start:
            continue
        instance.report_run_failed(run, f"its process ({tag}) is gone (killed); its pool slots are freed")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        reaped.append(run.run_id)
    return reaped
