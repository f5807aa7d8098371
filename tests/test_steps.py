"""Steps of a turn (export/steps.py) and the figures the card and the quality statistics show."""

from __future__ import annotations

import json

from funreason_pipeline import quality
from funreason_pipeline.export.steps import step_counts, step_figures, turn_steps


def _a(calls, content=""):
    return {"role": "assistant", "content": content, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": n, "arguments": json.dumps(a)}} for i, n, a in calls]}


def _t(i, value):
    return {"role": "tool", "tool_call_id": i, "name": "x", "content": json.dumps(value)}


MESSAGES = [
    {"role": "system", "content": "s"},
    # turn 0: an injected error on step 0's first call, its retry, then a second step of two calls
    {"role": "user", "content": "q0"},
    _a([("c0", "login", {"u": "ann"}), ("c1", "ls", {})]),
    _t("c0", {"error": "Request timed out."}), _t("c1", {"files": []}),
    _a([("c0r", "login", {"u": "ann"})], "<think>\nretry\n</think>"), _t("c0r", {"ok": True}),
    _a([("c2", "post", {"t": "hi"}), ("c3", "post", {"t": "yo"})]), _t("c2", {"id": 1}), _t("c3", {"id": 2}),
    {"role": "assistant", "content": "done"},
    # turn 1: one step; turn 2: no call
    {"role": "user", "content": "q1"}, _a([("d0", "ls", {})]), _t("d0", {"files": []}),
    {"role": "assistant", "content": "done"},
    {"role": "user", "content": "q2"}, {"role": "assistant", "content": "nothing to do"},
]


def test_a_retry_after_an_error_stays_in_its_step():
    steps = turn_steps(MESSAGES, 1, 11)
    assert [s["messages"] for s in steps] == [[2, 5], [7]]
    assert [[c["id"] for c in s["calls"]] for s in steps] == [["c1", "c0r"], ["c2", "c3"]]
    assert step_counts(MESSAGES) == [[2, 2], [1], []]


def test_a_repeated_call_after_a_success_is_a_new_step():
    msgs = [{"role": "user", "content": "q"}, _a([("a", "ls", {})]), _t("a", {"files": []}),
            _a([("b", "ls", {})]), _t("b", {"files": []})]
    assert step_counts(msgs) == [[1, 1]]


def test_step_figures():
    figures = step_figures(step_counts(MESSAGES))
    assert figures == {"turns_with_calls": 2, "mean_steps_per_turn": 1.5, "mean_calls_per_step": 1.667,
                       "multi_step_turn_share": 0.5, "turns_by_steps": {"1": 1, "2": 1}}
    assert step_figures([])["mean_steps_per_turn"] == 0.0


def test_quality_stats_carry_the_step_figures():
    stats = quality.quality_stats(quality.QualityInput(turn_steps=step_counts(MESSAGES)))
    assert stats["steps"]["multi_step_turn_share"] == 0.5
    assert any("steps per turn 1.50, calls per step 1.67, multi-step turns 0.500 of 2" in line
               for line in quality.summary_lines(stats))
