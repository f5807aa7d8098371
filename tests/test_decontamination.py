"""Decontamination against BFCL's multi-turn test data: exact configs and 13-gram question overlap."""

from __future__ import annotations

import json

import pytest

from funreason_pipeline.environments.bfcl_classes import generate_scenario
from funreason_pipeline.environments.decontamination import (
    NgramIndex,
    bfcl_question_index,
    bfcl_test_configs,
    bfcl_user_questions,
    canonical_json,
    is_contaminated_config,
    load_bfcl_test_entries,
    tokenize,
)

STATEFUL = [
    "GorillaFileSystem",
    "MessageAPI",
    "TwitterAPI",
    "TicketAPI",
    "TradingBot",
    "TravelAPI",
    "VehicleControlAPI",
]


def _long_question() -> str:
    # A real BFCL user question long enough to contain several 13-grams.
    return next(q for q in bfcl_user_questions() if len(tokenize(q)) >= 20)


def test_loads_all_four_files():
    entries = load_bfcl_test_entries()
    prefixes = {e["id"].rsplit("_", 1)[0] for e in entries}
    assert prefixes == {
        "multi_turn_base",
        "multi_turn_miss_func",
        "multi_turn_miss_param",
        "multi_turn_long_context",
    }
    assert all("question" in e and "initial_config" in e for e in entries)
    # A fresh list each call, so callers cannot corrupt the cache by appending.
    entries.append({})
    assert len(load_bfcl_test_entries()) == len(entries) - 1


def test_tokenize_lowercases_and_drops_punctuation():
    assert tokenize("Move 'final_report.pdf' to TEMP, now!") == [
        "move",
        "final",
        "report",
        "pdf",
        "to",
        "temp",
        "now",
    ]


def test_bfcl_question_is_detected_even_reformatted():
    index = bfcl_question_index()
    q = _long_question()
    assert index.shared_ngram(q) == " ".join(tokenize(q)[:13])
    # Case, punctuation and surrounding text do not hide a copied span.
    disguised = "Hello there!! " + q.upper().replace(" ", "  ,") + " Thanks a lot."
    assert index.shared_ngram(disguised) is not None


def test_fresh_sentence_is_not_detected():
    index = bfcl_question_index()
    fresh = (
        "Please look through the quarterly greenhouse sensor readings and tell me which of the "
        "three tomato beds had the warmest night in late September, then draft a short note."
    )
    assert len(tokenize(fresh)) > 13
    assert index.shared_ngram(fresh) is None
    # Anything shorter than n words can never share an n-gram.
    assert index.shared_ngram("move the file") is None


def test_index_is_cached_per_n():
    assert bfcl_question_index() is bfcl_question_index(13)
    small = bfcl_question_index(8)
    assert small is not bfcl_question_index() and small.n == 8
    assert len(small) > 0


def test_ngram_index_returns_first_shared_gram():
    index = NgramIndex(3, ["the quick brown fox jumps"])
    assert index.shared_ngram("a very quick brown fox") == "quick brown fox"
    assert index.shared_ngram("the quick red fox") is None
    assert "so the quick brown dog" in index
    assert "brown fox" not in index
    with pytest.raises(ValueError):
        NgramIndex(0)


@pytest.mark.parametrize("class_name", STATEFUL)
def test_bfcl_config_is_detected(class_name):
    configs = bfcl_test_configs(class_name)
    assert configs, class_name
    config = configs[-1]
    assert is_contaminated_config(class_name, config)
    # Key order and a JSON round trip do not matter.
    reordered = json.loads(json.dumps(dict(reversed(list(config.items())))))
    assert is_contaminated_config(class_name, reordered)
    # ...but any real change does.
    changed = dict(config, _extra_marker=1)
    assert not is_contaminated_config(class_name, changed)


@pytest.mark.parametrize("class_name", STATEFUL)
def test_generated_config_is_not_detected(class_name):
    assert not is_contaminated_config(class_name, generate_scenario(class_name, 12345))


def test_config_check_is_per_class():
    gfs = bfcl_test_configs("GorillaFileSystem")[0]
    assert is_contaminated_config("GorillaFileSystem", gfs)
    assert not is_contaminated_config("VehicleControlAPI", gfs)
    assert bfcl_test_configs("NoSuchClass") == []


def test_canonical_json_tolerates_int_keys():
    assert canonical_json({1: "a", "b": 2}) == canonical_json({"b": 2, "1": "a"})
