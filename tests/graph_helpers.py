"""Probing a toolset's classes (graph.build.build_edges) once per test session.

Probing runs every tool of a toolset on several scenarios and is the slow part of building a graph;
many tests ask for the same toolset's graph with the same seeds. The result depends only on the
toolset's configuration, the scenarios' seeds and the probing seed, so it is computed once per test
session: in memory per process, and shared by the xdist workers through a pickle in the session's
temporary directory (conftest.py sets `SHARED_DIR`; a file lock makes the second worker wait for the
first instead of probing again). Each caller gets its own copy: a test that alters the tools or edges
it got cannot change what another test sees.
"""

from __future__ import annotations

import copy
import fcntl
import hashlib
import pickle
from pathlib import Path

from funreason_pipeline.environments.toolsets import generate_scenario, toolset_by_name, toolset_tools
from funreason_pipeline.graph.build import build_edges
from funreason_pipeline.seeds import stable_seed

_CACHE: dict[tuple, tuple] = {}
SHARED_DIR: Path | None = None  # set by conftest.py for the session; None: this process only


def _build(ts, scenario_seeds: tuple[int, ...], seed: int) -> tuple:
    tools = toolset_tools(ts)
    report: dict = {}
    edges = build_edges(ts, tools, [generate_scenario(ts, s) for s in scenario_seeds], seed=seed, report=report)
    return tools, edges, report


def _shared(key: tuple, ts) -> tuple:
    if SHARED_DIR is None:
        return _build(ts, key[1], key[2])
    path = SHARED_DIR / f"probed-{hashlib.sha256(repr(key).encode()).hexdigest()[:24]}.pickle"
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            return pickle.loads(path.read_bytes())
        out = _build(ts, key[1], key[2])
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(pickle.dumps(out))
        tmp.rename(path)
        return out


def probed(ts, scenario_seeds, seed: int):
    """(tools, edges, report) of `build_edges(ts, toolset_tools(ts), scenarios, seed=seed, report=...)`
    with `scenarios = [generate_scenario(ts, s) for s in scenario_seeds]`, probed once per session."""
    # keyed by the toolset's whole configuration (name, classes, environment options), not the object
    key = (ts.model_dump_json(), tuple(scenario_seeds), seed)
    if key not in _CACHE:
        _CACHE[key] = _shared(key, ts)
    return copy.deepcopy(_CACHE[key])


def probe_seeds(name: str, n: int = 4) -> list[int]:
    """The probe scenarios the pipeline and most tests use: `stable_seed("probe", name, i)`."""
    return [stable_seed("probe", name, i) for i in range(n)]


def user_edges(ts):
    """A user toolset's graph as its graph stage builds it: 4 probe scenarios, the probe-args seed."""
    return probed(ts, probe_seeds(ts.name), stable_seed("probe-args", ts.name))


def bfcl_graph(name: str):
    """(ts, tools, edges) of a BFCL toolset: 4 probe scenarios, seed 1 (the tests' usual graph)."""
    ts = toolset_by_name(name)
    tools, edges, _ = probed(ts, probe_seeds(name), 1)
    return ts, tools, edges
