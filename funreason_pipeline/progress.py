"""Progress reporting for long stages: items done / total, rate and ETA, at most every few seconds."""

from __future__ import annotations

import time
from collections.abc import Callable


class Progress:
    def __init__(self, label: str, total: int, log: Callable[[str], None] | None, every_s: float = 2.0):
        self.label, self.total, self.log, self.every_s = label, total, log, every_s
        self.done = 0
        self.started = self.last = time.monotonic()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.log and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            self.log(self.line(now))

    def line(self, now: float | None = None) -> str:
        elapsed = (now or time.monotonic()) - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total >= self.done else 0.0
        return f"{self.label}: {self.done}/{self.total} ({rate:.1f}/s, ETA {eta:.0f}s)"
