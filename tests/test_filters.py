"""Filters: exact dedup, MinHash near-duplicate queries, BFCL decontamination, length."""

from __future__ import annotations

import json

from funreason_pipeline.environments.decontamination import (
    bfcl_test_configs,
    bfcl_user_questions,
    shared_bfcl_ngram,
    tokenize,
)
from funreason_pipeline.filtering.filters import (
    decontaminate,
    exact_dedup,
    jaccard,
    length_filter,
    near_dup_queries,
    near_duplicate_rate,
    shingles,
)


def _sample(sid, query, reply="Done.", did=None):
    return {
        "sample_id": sid,
        "dialogue_id": did or f"d-{sid}",
        "turn_index": 0,
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": query},
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [
                    {"id": "call_0_0", "type": "function", "function": {"name": "ls", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_0_0", "name": "ls", "content": '{"files": []}'},
            {"role": "assistant", "content": reply},
        ],
        "tools": [],
        "train_from": 2,
    }


def _ids(items, key="sample_id"):
    return [i[key] if isinstance(i, dict) else i[0] for i in items]


# --------------------------------------------------------------------------------------------------
def test_exact_dedup_keeps_first_and_records_reason():
    a = _sample("a", "List my files.")
    b = _sample("b", "List my files.")  # same messages, other ids
    c = _sample("c", "List my files.", reply="Here they are.")
    # key order inside messages and JSON-text storage do not hide a duplicate
    d = dict(
        _sample("d", "x"), messages=json.dumps([{k: m[k] for k in reversed(list(m))} for m in a["messages"]])
    )
    kept, rejected = exact_dedup([a, b, c, d])
    assert _ids(kept) == ["a", "c"]
    assert rejected == [
        {"item_id": "b", "reason": "exact_duplicate", "detail": "same messages as a"},
        {"item_id": "d", "reason": "exact_duplicate", "detail": "same messages as a"},
    ]


BASE = (
    "Please move the quarterly budget spreadsheet from the drafts folder into the archive folder, "
    "then show me the first ten lines of the summary file so I can check the totals."
)


def test_near_duplicates_rejected_distinct_kept():
    near = BASE.replace("ten lines", "10 lines")  # a small edit
    moderate = BASE.replace("quarterly budget spreadsheet", "signed vendor contract").replace(
        "totals", "dates"
    )
    distinct = "Book me a flight from Boston to Denver next Tuesday and tell me the fare in euros."
    assert jaccard(shingles(BASE), shingles(near)) >= 0.9  # precondition
    assert 0.5 < jaccard(shingles(BASE), shingles(moderate)) < 0.9
    items = [("q1", BASE), ("q2", near), ("q3", distinct), ("q4", moderate), ("q5", BASE.upper())]
    kept, rejected = near_dup_queries(items, threshold=0.9, num_perm=128, seed=3)
    assert _ids(kept) == ["q1", "q3", "q4"]
    assert [r["item_id"] for r in rejected] == ["q2", "q5"]
    assert all(
        r["reason"] == "near_duplicate_query" and r["detail"].startswith("near-duplicate of q1")
        for r in rejected
    )
    # deterministic: same input and seed, same output
    assert near_dup_queries(items, seed=3) == (kept, rejected)


def test_near_duplicate_only_against_kept_items():
    # q2 ~ q1 (rejected); q3 ~ q2 but not ~ q1: q3 is compared with kept items only, so it stays
    q1 = BASE
    q2 = BASE.replace("ten lines", "10 lines")
    q3 = q2.replace("archive folder", "archive dir")
    sh = {k: shingles(v) for k, v in {"q1": q1, "q2": q2, "q3": q3}.items()}
    assert jaccard(sh["q1"], sh["q2"]) >= 0.9 and jaccard(sh["q2"], sh["q3"]) >= 0.9
    assert jaccard(sh["q1"], sh["q3"]) < 0.9
    kept, rejected = near_dup_queries([("q1", q1), ("q2", q2), ("q3", q3)])
    assert _ids(kept) == ["q1", "q3"] and [r["item_id"] for r in rejected] == ["q2"]


def test_near_duplicate_rate():
    texts = [BASE, BASE.replace("ten", "10"), "Book me a flight from Boston to Denver next Tuesday please."]
    assert near_duplicate_rate(texts) == 1 / 3
    assert near_duplicate_rate([]) == 0.0
    assert near_duplicate_rate(texts[1:]) == 0.0


def test_word_shingles_option():
    assert shingles("A b  c d", kind="word") == {"a b c", "b c d"}
    assert shingles("Hi", kind="char") == {"hi"}


def _bfcl_question():
    return next(q for q in bfcl_user_questions() if len(tokenize(q)) >= 20)


def test_decontaminate_queries_and_scenarios():
    question = _bfcl_question()
    fresh = (
        "Please look through the quarterly greenhouse sensor readings and tell me which of the three "
        "tomato beds had the warmest night in late September, then draft a short note."
    )
    gfs_config = bfcl_test_configs("GorillaFileSystem")[0]
    items = [
        {"dialogue_id": "copied", "queries": ["Hi there. " + question + " Thanks!"]},
        {
            "dialogue_id": "fresh",
            "queries": [fresh],
            "scenario": {"MathAPI": {}},
        },  # stateless: not contamination
        {
            "dialogue_id": "from_messages",
            "messages": json.dumps(
                [{"role": "system", "content": "s"}, {"role": "user", "content": question}]
            ),
        },
        {
            "dialogue_id": "bfcl_state",
            "queries": [fresh],
            "scenario": json.dumps({"GorillaFileSystem": gfs_config}),
        },
        {
            "dialogue_id": "fresh_state",
            "queries": [fresh],
            "scenario": {
                "GorillaFileSystem": {"root": {"synthetic_root": {"type": "directory", "contents": {}}}}
            },
        },
    ]
    kept, rejected = decontaminate(items)
    assert [i["dialogue_id"] for i in kept] == ["fresh", "fresh_state"]
    by_id = {r["item_id"]: r for r in rejected}
    assert by_id["copied"]["reason"] == "contaminated_query"
    assert (
        by_id["copied"]["detail"] == shared_bfcl_ngram(question)
        and len(by_id["copied"]["detail"].split()) == 13
    )
    assert by_id["from_messages"]["reason"] == "contaminated_query"
    assert by_id["bfcl_state"]["reason"] == "contaminated_scenario"
    assert "GorillaFileSystem" in by_id["bfcl_state"]["detail"]
    assert len(rejected) == 3


def test_length_filter():
    short = _sample("short", "List files.")
    long_text = _sample("long_text", "x" * 5000)
    many = _sample("many", "List files.")
    many["messages"] = many["messages"] + many["messages"][1:] * 10
    kept, rejected = length_filter([short, long_text, many], max_chars=2000, max_messages=20)
    assert _ids(kept) == ["short"]
    assert [(r["item_id"], r["reason"]) for r in rejected] == [
        ("long_text", "too_long"),
        ("many", "too_long"),
    ]
    assert "max_chars=2000" in rejected[0]["detail"] and "max_messages=20" in rejected[1]["detail"]
