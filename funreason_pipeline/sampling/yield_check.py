"""No silent success: what a Phase I partition yielded against what was asked, as a verdict with a
message that says what went wrong and what to try (issue 12). Pure: the trajectories asset turns it
into a blocking check and a `yield_below_minimum` rejection, and `cli demo` prints it and exits 1."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass

from funreason_pipeline.graph.build import NO_EDGE_TIPS
from funreason_pipeline.models import Rejection

REASON = "yield_below_minimum"  # the rejection that carries the verdict's message


@dataclass(frozen=True)
class YieldVerdict:
    passed: bool
    message: str
    accepted: int
    asked: int
    targeted: int
    usable: int
    edges: int


def phase1_yield(toolset: str, day: str, asked: int, accepted: int, usable_tools: list[str],
                 targeted: set[str], n_edges: int, rejections: list[Rejection],
                 min_yield: float = 1.0, min_tool_coverage: float = 0.75) -> YieldVerdict:
    """Passes when at least `min_yield` x `asked` trajectories were accepted and `min_tool_coverage`
    of the usable tools were reached as targets; otherwise the message names the shortfall, the most
    common failures (with their errors) and the likely fix."""
    usable = sorted(usable_tools)
    hit = len(targeted & set(usable))
    short = []
    if accepted < min_yield * asked:
        short.append(f"{accepted} of {asked} trajectories accepted (minimum {min_yield:.0%})")
    coverage = hit / len(usable) if usable else 1.0
    if coverage < min_tool_coverage:
        short.append(f"{hit} of {len(usable)} tools reached as targets (minimum {min_tool_coverage:.0%})")
    verdict = {"accepted": accepted, "asked": asked, "targeted": hit, "usable": len(usable), "edges": n_edges}
    if not short:
        return YieldVerdict(True, f"{toolset} {day}: {accepted} of {asked} trajectories, {hit} of {len(usable)} "
                                  "tools targeted", **verdict)
    lines = [f"toolset {toolset!r}, day {day}: " + "; ".join(short) + "."]
    lines += _failures(rejections)
    lines += _advice(n_edges, rejections, hit)
    return YieldVerdict(False, "\n".join(lines), **verdict)


def _failures(rejections: list[Rejection]) -> list[str]:
    errors: Counter[tuple[str, str]] = Counter()
    for r in rejections:
        if r.reason != "tool_error" or not r.detail:
            continue
        try:
            d = json.loads(r.detail)
        except ValueError:
            continue
        errors[(str(d.get("tool")), str(d.get("error"))[:120])] += 1
    if not errors:
        reasons = Counter(r.reason for r in rejections)
        return [f"  rejections: {', '.join(f'{k} {n}' for k, n in reasons.most_common(4)) or 'none'}"]
    total = sum(errors.values())
    top = ", ".join(f"{tool}: {err!r} x{n}" for (tool, err), n in errors.most_common(4))
    return [f"  {total} failed tool calls; most common: {top}"]


def _advice(n_edges: int, rejections: list[Rejection], targeted: int) -> list[str]:
    tips = []
    if targeted == 0:
        tips.append("no target was ever reached: call the tools by hand on a generated scenario "
                    "(docs/user_environments.md step 4) and check what they raise")
    if n_edges == 0:
        tips.append("the API graph has no edges, so no tool leads to another: " + NO_EDGE_TIPS)
    words = " ".join((r.detail or "").lower() for r in rejections if r.reason == "tool_error")
    if any(w in words for w in ("logged in", "credential", "password", "pin", "authenticat", "permission")):
        tips.append("calls fail on authentication: keep the values a user would know (usernames with their "
                    "PINs) in the state, e.g. a {username: pin} mapping or records with named fields, or list "
                    "valid combinations in ARGUMENT_EXAMPLES")
    tips.append("more candidates per partition may help: `cli demo --trajectories N` (4 x N are tried)")
    return ["  try: " + tips[0], *("       " + t for t in tips[1:])]


def yield_rejection(toolset: str, day: str, verdict: YieldVerdict) -> Rejection:
    return Rejection(item_id=f"{toolset}-{day}", reason=REASON, detail=verdict.message)


def recorded_failures(con, day: str, toolsets: list[str]) -> list[str]:
    """The yield messages a run recorded for `day` and these toolsets (a DuckDB connection), plus
    one for each toolset whose trajectories never got stored (its run failed before the check)."""
    from funreason_pipeline import storage  # the sampler's import path stays free of the store, as below

    present = storage.table_names(con)
    if "rejections" not in present:
        return [f"no rejections table: the {day} run of {', '.join(toolsets)} stored nothing"]
    found = dict(con.execute(
        "SELECT toolset, string_agg(detail, chr(10)) FROM rejections WHERE reason = ? AND day = CAST(? AS DATE) "
        "AND list_contains(?, toolset) GROUP BY toolset", [REASON, day, toolsets]).fetchall())
    stored = {r[0] for r in con.execute("SELECT DISTINCT toolset FROM trajectories WHERE day = CAST(? AS DATE)", [day]).fetchall()} \
        if "trajectories" in present else set()
    out = [found[t] for t in toolsets if t in found]
    out += [f"toolset {t!r}, day {day}: no trajectories were stored (the run failed earlier; see `make ui`)"
            for t in toolsets if t not in found and t not in stored]
    return out


def demo_failures(day: str, toolsets: list[str]) -> list[str]:
    """`recorded_failures` on the pipeline's database (what `cli demo` prints before exiting 1)."""
    from funreason_pipeline import config, storage

    if not config.db_path().exists():
        return [f"no database at {config.db_path()}: the {day} run stored nothing"]
    with storage.connect(read_only=True) as con:
        return recorded_failures(con, day, toolsets)
