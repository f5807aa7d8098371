"""README.md and docs/*.md: every relative link resolves to a file (and heading) in the repository, no
pointer to files outside it, no issue numbers, and every target code used is defined in docs/benchmarks.md."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# docs/benchmarks.md's pointers are checked by their own test below
POINTER_EXEMPT = {"docs/benchmarks.md"}

FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
OUTSIDE = re.compile(r"\.\./shared\b|\bshared/[\w.-]+/|\btargets\.md\b|\barchitecture\.md\b")
ISSUE = re.compile(r"(?i)\b(?:issues?|PR)\s*#?\d+\b|(?<![\w&/#`])#\d+\b")
CODE = re.compile(r"\b[PQRE]\d{1,2}\b")


def pages(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def slugs(text: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1, -2 for repeats."""
    seen: dict[str, int] = {}
    out = set()
    for title in HEADING.findall(FENCE.sub("", text)):
        s = re.sub(r"[^\w\- ]", "", title.replace("`", "").strip().lower()).replace(" ", "-")
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(root: Path) -> list[str]:
    problems = []
    for page in pages(root):
        text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            where = f"{page.relative_to(root)}: {target}"
            if not dest.is_relative_to(root.resolve()):
                problems.append(f"{where} points outside the repository")
            elif not dest.exists():
                problems.append(f"{where} does not exist")
            elif anchor and dest.suffix == ".md" and anchor not in slugs(dest.read_text()):
                problems.append(f"{where}: no heading with that anchor")
    return problems


def bad_pointers(root: Path, exempt: set[str] = frozenset()) -> list[str]:
    problems = []
    for page in pages(root):
        rel = page.relative_to(root).as_posix()
        if rel in exempt:
            continue
        for n, line in enumerate(page.read_text().splitlines(), 1):
            for rx, what in ((OUTSIDE, "points outside the repository"), (ISSUE, "names an issue number")):
                if m := rx.search(line):
                    problems.append(f"{rel}:{n} {what}: {m.group(0)!r}")
    return problems


def undefined_codes(root: Path) -> list[str]:
    bench = (root / "docs" / "benchmarks.md").read_text()
    start = bench.index("## Target codes")
    end = bench.find("\n## ", start + 1)
    defined = set(CODE.findall(bench[start:end if end > 0 else None]))
    return [f"{page.relative_to(root)}: {code} is not defined at the top of docs/benchmarks.md"
            for page in pages(root) for code in sorted(set(CODE.findall(page.read_text())) - defined)]


def test_relative_links_resolve():
    assert broken_links(ROOT) == []


def test_no_outside_pointers_or_issue_numbers():
    assert bad_pointers(ROOT, POINTER_EXEMPT) == []


def test_no_outside_pointers_or_issue_numbers_in_benchmarks():
    assert [p for p in bad_pointers(ROOT) if p.startswith("docs/benchmarks.md")] == []


def test_every_target_code_is_defined():
    assert undefined_codes(ROOT) == []


def test_the_checks_can_fail(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "benchmarks.md").write_text("# B\n\n## Target codes\n\n| P1 | x |\n\n## Other\n\nQ9\n")
    (tmp_path / "docs" / "ok.md").write_text("# Ok\n\n## A `code` heading\n\nBack to [the top](../README.md).\n")
    (tmp_path / "README.md").write_text(
        "# R\n\n[fine](docs/ok.md#a-code-heading) [gone](docs/missing.md) [bad anchor](docs/ok.md#nope)\n"
        "[out](../elsewhere.md) see ../shared/design/architecture.md and targets.md (issue 21, #21)\n"
        "codes P1 and Q3\n```\n[in code](nowhere.md)\n```\n")
    links = broken_links(tmp_path)
    assert len(links) == 3 and "missing.md does not exist" in links[0] and "no heading" in links[1]
    assert "outside" in links[2]
    pointers = bad_pointers(tmp_path)
    assert any("outside" in p for p in pointers) and sum("issue number" in p for p in pointers) == 1
    assert undefined_codes(tmp_path) == ["README.md: Q3 is not defined at the top of docs/benchmarks.md",
                                         "docs/benchmarks.md: Q9 is not defined at the top of docs/benchmarks.md"]
