"""Per-partition work spread over processes inside one step (no Dagster here): a run that covers
several toolsets calls a stage once per partition, in `workers` processes."""

from __future__ import annotations

import atexit
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

_pools: dict[tuple, ProcessPoolExecutor] = {}


def _pool(workers: int) -> ProcessPoolExecutor:
    # one pool per size for the life of the process: the CLI runs several steps in-process, and a
    # worker's start (importing the environments) costs seconds each time. Workers keep the
    # environment they started with, so a changed environment (where the database is) gets new ones.
    key = (workers, tuple(sorted(os.environ.items())))
    if key not in _pools:
        shutdown()
        # spawn, not fork: the parent has run polars/DuckDB threads, and a forked child can deadlock
        # on a lock one of those threads held at the fork
        _pools[key] = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    return _pools[key]


@atexit.register
def shutdown() -> None:
    for pool in _pools.values():
        pool.shutdown(wait=True, cancel_futures=True)
    _pools.clear()


def map_calls(fn: Callable[..., Any], calls: Sequence[tuple[tuple, dict]], workers: int) -> list[Any]:
    """fn(*args, **kwargs) for each (args, kwargs) of `calls`, results in the calls' order: in this
    process when `workers` <= 1 or there is one call, else in a pool of `workers` processes (`fn`
    and its arguments must then pickle)."""
    if workers <= 1 or len(calls) <= 1:
        return [fn(*args, **kwargs) for args, kwargs in calls]
    # the biggest partitions first (longest job first), so the largest toolset does not start last
    # and leave one worker idle at the end; results come back in the calls' order all the same
    order = sorted(range(len(calls)), key=lambda i: -size(calls[i][1]))
    futures = {i: _pool(workers).submit(_call, (fn, *calls[i])) for i in order}
    return [futures[i].result() for i in range(len(calls))]


def size(kwargs: dict[str, Any]) -> int:
    """A partition's size: the rows of the frames it is given (tools, edges, trajectories, ...)."""
    return sum(getattr(v, "height", 0) for v in kwargs.values())


def _call(job: tuple[Callable[..., Any], tuple, dict]) -> Any:
    fn, args, kwargs = job
    return fn(*args, **kwargs)
