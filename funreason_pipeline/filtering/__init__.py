"""Sample filters; each returns (kept, rejections) with a reason per rejected item."""

from funreason_pipeline.filtering.filters import (
    decontaminate,
    exact_dedup,
    jaccard,
    length_filter,
    near_dup_queries,
    near_duplicate_rate,
    shingles,
)

__all__ = [
    "decontaminate",
    "exact_dedup",
    "jaccard",
    "length_filter",
    "near_dup_queries",
    "near_duplicate_rate",
    "shingles",
]
