"""A wall-clock limit for one call into user code (a tool, a scenario loader) in this process.

User tools run in-process (they need the live object), so a tool stuck in a loop would hang the
whole stage. On POSIX, in the main thread (where Dagster's step processes and the CLI run), a
SIGALRM interval timer interrupts it; the call then fails with a clear error like any other tool
error, and the trajectory's replay check drops anything the half-done call left behind. Elsewhere
(a worker thread, Windows) no limit is enforced, and that is logged once.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
_warned = False


class CallTimeout(BaseException):
    """Raised inside the timed call. A BaseException, so a tool's own `except Exception` around its
    loop cannot swallow it."""


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextmanager
def deadline(seconds: float | None, what: str) -> Iterator[None]:
    """Raise CallTimeout in the body after `seconds` (None: no limit). An interval timer someone
    else already set (a test runner's own timeout) is left alone: then no limit is enforced."""
    global _warned
    if seconds is None:
        yield
        return
    if not _can_alarm() or signal.getitimer(signal.ITIMER_REAL)[0] > 0:
        if not _warned:
            _warned = True
            log.warning("no time limit on %s: only the main thread without another interval timer can "
                        "interrupt a call", what)
        yield
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise CallTimeout(f"{what} took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

