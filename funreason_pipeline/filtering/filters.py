"""Sample filters: exact dedup, near-duplicate queries, BFCL decontamination, length.

Every filter returns ``(kept, rejections)``; a rejection is ``{"item_id", "reason", "detail"}``
(``models.Rejection`` as a dict), so nothing is dropped silently. Filters keep the input order and
keep the *first* item of a duplicate group, so the result depends only on the input (and the seed).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Literal, TypeVar

from datasketch import MinHash, MinHashLSH

from funreason_pipeline.environments.decontamination import (
    DEFAULT_NGRAM,
    canonical_json,
    is_contaminated_config,
    shared_bfcl_ngram,
)
from funreason_pipeline.models import Rejection

T = TypeVar("T")

REASON_EXACT_DUPLICATE = "exact_duplicate"
REASON_NEAR_DUPLICATE = "near_duplicate_query"
REASON_CONTAMINATED_QUERY = "contaminated_query"
REASON_CONTAMINATED_SCENARIO = "contaminated_scenario"
REASON_TOO_LONG = "too_long"

# Classes whose only state is `{}`: BFCL's tests use `{}` too, which is not contamination.
STATELESS_CLASSES: tuple[str, ...] = ("MathAPI",)


def _reject(item_id: Any, reason: str, detail: str) -> dict[str, str]:
    return Rejection(item_id=str(item_id), reason=reason, detail=detail).model_dump()


def _json_value(value: Any) -> Any:
    """Columns hold JSON text (architecture data contract); accept parsed values too."""
    return json.loads(value) if isinstance(value, str) else value


# --------------------------------------------------------------------------------------------------
# Exact duplicates
# --------------------------------------------------------------------------------------------------
def messages_key(sample: Mapping[str, Any]) -> str:
    """Canonical JSON of the sample's messages (key order and JSON-vs-text storage do not matter)."""
    return canonical_json(_json_value(sample["messages"]))


def exact_dedup(
    samples: Iterable[T],
    key: Callable[[T], str] = messages_key,  # type: ignore[assignment]
    id_key: str = "sample_id",
) -> tuple[list[T], list[dict[str, str]]]:
    """Keep the first sample of every group with an equal ``key``; reject the rest (``exact_duplicate``)."""
    kept: list[T] = []
    rejections: list[dict[str, str]] = []
    first: dict[str, Any] = {}
    for s in samples:
        k = key(s)
        sid = s[id_key]  # type: ignore[index]
        if k in first:
            rejections.append(_reject(sid, REASON_EXACT_DUPLICATE, f"same messages as {first[k]}"))
        else:
            first[k] = sid
            kept.append(s)
    return kept, rejections


# --------------------------------------------------------------------------------------------------
# Near-duplicate queries (MinHash LSH)
# --------------------------------------------------------------------------------------------------
_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")


def shingles(text: str, kind: Literal["char", "word"] = "char", k: int | None = None) -> set[str]:
    """Shingles of ``text`` after lower-casing and collapsing whitespace.

    Default: character 5-grams. Queries are short (10-60 words): with word 3-shingles one changed word
    out of 12 flips 3 of 10 shingles (Jaccard ~0.54), so a 0.9 threshold would only ever catch
    texts that are identical up to case; character 5-grams resolve small edits (a changed file name
    in an otherwise identical sentence scores ~0.8-0.9) and ignore tokenisation differences.
    ``kind="word"`` (k=3 by default) is there for long texts.
    """
    norm = _SPACE.sub(" ", text.lower()).strip()
    if kind == "char":
        k = k or 5
        if len(norm) <= k:
            return {norm}
        return {norm[i : i + k] for i in range(len(norm) - k + 1)}
    if kind == "word":
        k = k or 3
        words = _WORD.findall(norm)
        if len(words) <= k:
            return {" ".join(words)}
        return {" ".join(words[i : i + k]) for i in range(len(words) - k + 1)}
    raise ValueError(f"kind must be 'char' or 'word', got {kind!r}")


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


@lru_cache(maxsize=64)
def _lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """The (bands, rows) MinHashLSH chooses for a threshold: it integrates the false positive and
    negative rates over every split of num_perm each time it is made; the answer never changes."""
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    return lsh.b, lsh.r


def near_dup_queries(
    items: Sequence[tuple[Any, str]],
    threshold: float = 0.9,
    num_perm: int = 128,
    seed: int = 1,
    kind: Literal["char", "word"] = "char",
    k: int | None = None,
) -> tuple[list[tuple[Any, str]], list[dict[str, str]]]:
    """Reject every ``(item_id, query)`` whose query is a near-duplicate of an earlier *kept* one.

    MinHash (``num_perm``, ``seed``) + MinHashLSH find candidates; the LSH index is built at a lower
    threshold (``threshold - 0.1``) to cut its false negatives, and every candidate is then confirmed
    with the exact Jaccard of the shingle sets, so a rejection always means Jaccard >= ``threshold``
    and the outcome is deterministic for a given seed. Greedy in input order: the first item of a
    near-duplicate cluster is kept; later items within ``threshold`` of a kept one are rejected
    (reason ``near_duplicate_query``, detail names the kept item and the Jaccard).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    lsh = MinHashLSH(threshold=max(0.05, threshold - 0.1), num_perm=num_perm,
                     params=_lsh_bands(max(0.05, threshold - 0.1), num_perm))
    empty = MinHash(num_perm=num_perm, seed=seed)  # copies share its permutations (their setup dominates)
    kept: list[tuple[Any, str]] = []
    kept_shingles: list[set[str]] = []
    rejections: list[dict[str, str]] = []
    for item_id, text in items:
        sh = shingles(text, kind, k)
        mh = empty.copy()
        mh.update_batch([s.encode("utf-8") for s in sorted(sh)])
        best: tuple[float, int] | None = None
        for key in sorted(lsh.query(mh)):  # keys are indices into `kept`: sorted = earliest first
            j = jaccard(sh, kept_shingles[key])
            if j >= threshold and (best is None or j > best[0]):
                best = (j, key)
        if best is not None:
            rejections.append(
                _reject(
                    item_id,
                    REASON_NEAR_DUPLICATE,
                    f"near-duplicate of {kept[best[1]][0]} (jaccard={best[0]:.3f})",
                )
            )
            continue
        lsh.insert(len(kept), mh)
        kept.append((item_id, text))
        kept_shingles.append(sh)
    return kept, rejections


def near_duplicate_rate(
    texts: Sequence[str],
    threshold: float = 0.9,
    num_perm: int = 128,
    seed: int = 1,
    kind: Literal["char", "word"] = "char",
) -> float:
    """Share of ``texts`` that ``near_dup_queries`` would reject (0.0 for no texts); Q5 wants <= 0.02."""
    if not texts:
        return 0.0
    _, rejected = near_dup_queries(list(enumerate(texts)), threshold, num_perm, seed, kind)
    return len(rejected) / len(texts)


# --------------------------------------------------------------------------------------------------
# Decontamination against BFCL's multi-turn test data
# --------------------------------------------------------------------------------------------------
def user_queries(item: Mapping[str, Any]) -> list[str]:
    """The item's user queries: ``item["queries"]`` if present, else its user messages' contents."""
    if item.get("queries") is not None:
        return [q for q in _json_value(item["queries"]) if isinstance(q, str)]
    messages = _json_value(item.get("messages") or [])
    return [m["content"] for m in messages if m.get("role") == "user" and isinstance(m.get("content"), str)]


def decontaminate(
    items: Iterable[Mapping[str, Any]],
    *,
    id_key: str = "dialogue_id",
    n: int = DEFAULT_NGRAM,
    stateless_classes: Sequence[str] = STATELESS_CLASSES,
) -> tuple[list[Mapping[str, Any]], list[dict[str, str]]]:
    """Reject items that overlap BFCL's multi-turn *test* data (target Q2).

    * ``contaminated_query``: a user query shares a word ``n``-gram (13) with a BFCL test question;
      detail = the shared n-gram.
    * ``contaminated_scenario``: ``item["scenario"]`` (``{class_name: initial config}``, dict or JSON
      text; optional) gives some class exactly a BFCL test initial config; detail = the class. Classes
      in ``stateless_classes`` are skipped: their state is ``{}`` in BFCL too.

    Queries come from ``item["queries"]`` or the user messages of ``item["messages"]``. An item gets
    at most one rejection (the query check runs first).
    """
    kept: list[Mapping[str, Any]] = []
    rejections: list[dict[str, str]] = []
    for item in items:
        item_id = item[id_key]
        reason = None
        for query in user_queries(item):
            gram = shared_bfcl_ngram(query, n)
            if gram is not None:
                reason = (REASON_CONTAMINATED_QUERY, gram)
                break
        if reason is None and item.get("scenario") is not None:
            scenario = _json_value(item["scenario"])
            for class_name in sorted(scenario):
                if class_name in stateless_classes:
                    continue
                if is_contaminated_config(class_name, scenario[class_name]):
                    reason = (
                        REASON_CONTAMINATED_SCENARIO,
                        f"{class_name} initial config equals a BFCL test config",
                    )
                    break
        if reason is None:
            kept.append(item)
        else:
            rejections.append(_reject(item_id, *reason))
    return kept, rejections


# --------------------------------------------------------------------------------------------------
# Length
# --------------------------------------------------------------------------------------------------
def length_filter(
    samples: Iterable[Mapping[str, Any]],
    max_chars: int = 48_000,
    max_messages: int = 128,
    id_key: str = "sample_id",
) -> tuple[list[Mapping[str, Any]], list[dict[str, str]]]:
    """Reject samples over ``max_messages`` messages or ``max_chars`` characters (reason ``too_long``).

    Characters are those of the messages' JSON text (roughly 3-4 per token for English), a
    tokenizer-free proxy for the training ``max_length``; tools are not counted (constant per toolset).
    """
    kept: list[Mapping[str, Any]] = []
    rejections: list[dict[str, str]] = []
    for s in samples:
        messages = _json_value(s["messages"])
        chars = len(json.dumps(messages, ensure_ascii=False))
        problems = []
        if len(messages) > max_messages:
            problems.append(f"{len(messages)} messages > max_messages={max_messages}")
        if chars > max_chars:
            problems.append(f"{chars} chars > max_chars={max_chars}")
        if problems:
            rejections.append(_reject(s[id_key], REASON_TOO_LONG, "; ".join(problems)))
        else:
            kept.append(s)
    return kept, rejections
