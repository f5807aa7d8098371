"""Keep BFCL's multi-turn *test* data out of what we synthesise.

Two checks, both against the four ``BFCL_v4_multi_turn_*.json`` files shipped inside ``bfcl_eval``:

* scenarios: a generated initial state must not be *exactly* one of BFCL's test initial configs
  (compared as canonical JSON, so key order and int-vs-float noise in dict order do not matter);
* text: a generated user question must not share a long word n-gram (13 by default, the usual
  benchmark-contamination window) with any BFCL test user question.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import cache, lru_cache
from importlib import resources
from typing import Any

BFCL_TEST_FILES = (
    "BFCL_v4_multi_turn_base.json",
    "BFCL_v4_multi_turn_miss_func.json",
    "BFCL_v4_multi_turn_miss_param.json",
    "BFCL_v4_multi_turn_long_context.json",
)

DEFAULT_NGRAM = 13

_TOKEN_RE = re.compile(r"[a-z0-9]+")


@lru_cache(maxsize=1)
def _load_entries() -> tuple[dict[str, Any], ...]:
    data_dir = resources.files("bfcl_eval").joinpath("data")
    entries: list[dict[str, Any]] = []
    for name in BFCL_TEST_FILES:
        # The files are JSON Lines despite the .json suffix.
        text = data_dir.joinpath(name).read_text(encoding="utf-8")
        entries.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return tuple(entries)


def load_bfcl_test_entries() -> list[dict]:
    """All BFCL multi-turn test entries (base, miss_func, miss_param, long_context).

    Returns a new list each call (the entries themselves are shared: do not mutate them).
    """
    return list(_load_entries())


def _str_keys(value: Any) -> Any:
    # json.dumps(sort_keys=True) fails on mixed int/str keys; JSON would stringify them anyway.
    if isinstance(value, dict):
        return {str(k): _str_keys(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_str_keys(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    """One string per value regardless of dict key order, for exact-equality checks."""
    return json.dumps(
        _str_keys(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )


@cache
def _config_index(class_name: str) -> tuple[tuple[dict, ...], frozenset[str]]:
    configs = tuple(
        entry["initial_config"][class_name]
        for entry in _load_entries()
        if class_name in entry.get("initial_config", {})
    )
    return configs, frozenset(canonical_json(c) for c in configs)


def bfcl_test_configs(class_name: str) -> list[dict]:
    """Every BFCL test initial config given for ``class_name`` (duplicates kept, shared objects)."""
    return list(_config_index(class_name)[0])


def is_contaminated_config(class_name: str, scenario: dict) -> bool:
    """True if ``scenario`` equals (as canonical JSON) a BFCL test initial config for that class.

    Note that canonical JSON turns int dict keys into strings, so ``{0: x}`` and ``{"0": x}``
    compare equal: both load into the same BFCL state for the classes that convert keys.
    """
    return canonical_json(scenario) in _config_index(class_name)[1]


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words; punctuation and quoting differences are ignored."""
    return _TOKEN_RE.findall(text.lower())


def bfcl_user_questions() -> list[str]:
    """Contents of every user message in every turn of every BFCL multi-turn test entry."""
    out: list[str] = []
    for entry in _load_entries():
        for turn in entry.get("question", []):
            for message in turn:
                if message.get("role") == "user" and isinstance(message.get("content"), str):
                    out.append(message["content"])
    return out


class NgramIndex:
    """A set of word n-grams (stored as tuple hashes: small, fast; collisions are ~2**-64 rare)."""

    def __init__(self, n: int = DEFAULT_NGRAM, texts: Iterable[str] = ()) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self._hashes: set[int] = set()
        for text in texts:
            self.add(text)

    def _ngrams(self, text: str) -> Iterable[tuple[str, ...]]:
        tokens = tokenize(text)
        for i in range(len(tokens) - self.n + 1):
            yield tuple(tokens[i : i + self.n])

    def add(self, text: str) -> None:
        self._hashes.update(hash(g) for g in self._ngrams(text))

    def shared_ngram(self, text: str) -> str | None:
        """The first n-gram of ``text`` that also occurs in the index (space-joined), else None."""
        for gram in self._ngrams(text):
            if hash(gram) in self._hashes:
                return " ".join(gram)
        return None

    def __contains__(self, text: object) -> bool:
        return isinstance(text, str) and self.shared_ngram(text) is not None

    def __len__(self) -> int:
        return len(self._hashes)


@cache
def _question_index(n: int) -> NgramIndex:
    return NgramIndex(n, bfcl_user_questions())


def bfcl_question_index(n: int = DEFAULT_NGRAM) -> NgramIndex:
    """Index of all BFCL multi-turn test user questions; built once per ``n`` (shared: don't add)."""
    # Normalised before the cache so that f() and f(13) hit the same entry.
    return _question_index(int(n))


def shared_bfcl_ngram(text: str, n: int = DEFAULT_NGRAM) -> str | None:
    """Convenience: the first n-gram ``text`` shares with a BFCL test question, or None."""
    return bfcl_question_index(n).shared_ngram(text)
