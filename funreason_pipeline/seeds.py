"""Stable seeds: the same partition and config give the same seed on every machine and run
(Python's hash() is salted per process, so it is never used for this)."""

from __future__ import annotations

import hashlib


def stable_seed(*parts: object) -> int:
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:6], "big")


def short_hash(text: str, n: int = 12) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]
