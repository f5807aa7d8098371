"""Phase II validation: information completeness and no leaked intermediate values."""

from __future__ import annotations

import re

from funreason_pipeline.agents.advanced_tool import AdvancedTool, leak_candidates, mentionable


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def check_query(query: str, tool: AdvancedTool, intermediates: list) -> list[str]:
    """Problems with a query; empty when valid."""
    problems = []
    q = _norm(query)
    if len(q) < 8:
        problems.append("query too short")
    for inp in tool.inputs:
        for s in mentionable(inp.value):
            if _norm(s) not in q:
                problems.append(f"missing user input {inp.name}={s!r}")
    supplied = {_norm(s) for i in tool.inputs for s in mentionable(i.value)}
    for s in leak_candidates(intermediates):
        n = _norm(s)
        if any(n in sup for sup in supplied) or (n.isalpha() and n.islower() and " " not in n):
            continue  # part of what the user gives ("rxu39" in "@rxu39") or a plain word ("first")
        if re.search(rf"(?<!\w){re.escape(n)}(?!\w)", q):
            problems.append(f"leaks intermediate value {s!r}")
    return problems
