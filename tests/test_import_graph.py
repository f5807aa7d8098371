"""The package's subpackages import each other without cycles (issue 15: sampling/ and graph/ used
to import each other; what both need lives in matching/)."""

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "funreason_pipeline"


def package_imports() -> nx.DiGraph:
    """Subpackage (or top-level module) -> the ones it imports, from every `import` in the source,
    including imports inside functions."""
    g = nx.DiGraph()
    for f in PACKAGE.rglob("*.py"):
        parts = f.relative_to(PACKAGE).parts
        here = parts[0] if len(parts) > 1 else parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(f.read_text())):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("funreason_pipeline."):
                    there = name.split(".")[1]
                    if there != here:
                        g.add_edge(here, there)
    return g


def test_subpackages_import_each_other_without_cycles():
    g = package_imports()
    assert g.has_edge("sampling", "graph") and g.has_edge("graph", "matching")  # the graph is real
    assert list(nx.simple_cycles(g)) == []


def test_a_cycle_would_be_seen():
    g = package_imports()
    g.add_edge("graph", "sampling")
    assert list(nx.simple_cycles(g))
