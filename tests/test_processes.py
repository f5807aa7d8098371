"""processes.map_calls: results in the calls' order, the biggest partitions started first."""

from __future__ import annotations

import os
import time

from funreason_pipeline import processes


class Rows:
    """Stands for a frame: map_calls sizes a partition by its frames' `height`."""

    def __init__(self, height: int):
        self.height = height


def started(name: str, rows: Rows, pause: float) -> tuple[str, int, int]:
    begin = time.monotonic_ns()
    time.sleep(pause)
    return name, begin, os.getpid()


def test_results_keep_the_calls_order_and_the_biggest_start_first():
    calls = [(("small",), {"rows": Rows(1), "pause": 0.3}), (("big",), {"rows": Rows(50), "pause": 0.3}),
             (("middle",), {"rows": Rows(10), "pause": 0.3})]
    out = processes.map_calls(started, calls, workers=2)
    assert [o[0] for o in out] == ["small", "big", "middle"]  # the calls' order
    begin = {name: t for name, t, _ in out}
    # two workers: big and middle are taken first; small waits for one of them to finish
    assert begin["small"] > max(begin["big"], begin["middle"])
    assert len({pid for *_, pid in out}) == 2 and os.getpid() not in {pid for *_, pid in out}


def test_one_worker_runs_in_this_process_in_order():
    calls = [((n,), {"rows": Rows(h), "pause": 0.0}) for n, h in (("a", 1), ("b", 9))]
    assert [(o[0], o[2]) for o in processes.map_calls(started, calls, workers=1)] == [("a", os.getpid()), ("b", os.getpid())]
