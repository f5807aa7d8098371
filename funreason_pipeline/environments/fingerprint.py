"""A toolset's graph fingerprint: what the tool catalog and the API graph are built from.

The graph assets are per toolset, not per day, and probing costs far more than a day's Phase I
(files_messages_tickets: ~15 s of probing against ~1.5 s of sampling). A run that finds a graph
built from the same inputs reuses it. The inputs are: the toolset's entry in the config, the
source of every module its classes come from (user classes, BFCL's installed version), the files
its options name (scenarios, schema files), and our own code that turns them into a graph
(environments/, graph/, matching/, models.py). Any change to one of them gives a new fingerprint.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
from pathlib import Path

from funreason_pipeline.environments.bfcl import BFCL_CLASSES
from funreason_pipeline.environments.user_scenarios import import_object, is_import_path

_PACKAGE = Path(__file__).resolve().parent.parent
# the core code whose output is the catalog and the graph
_GRAPH_CODE = ("environments", "graph", "matching", "models.py", "seeds.py", "frames.py", "stages/graph.py",
               "defs/phase1_assets.py")


def _code_files() -> list[Path]:
    files: list[Path] = []
    for part in _GRAPH_CODE:
        p = _PACKAGE / part
        files += sorted(p.rglob("*.py")) if p.is_dir() else [p] if p.exists() else []
    return files


def _module_files(ref: str) -> list[Path]:
    """The source file of a user class's (or scenario generator's) module and of its package's other
    modules: a helper module it imports from its package changes what it does too."""
    if ref in BFCL_CLASSES or not is_import_path(ref):
        return []
    source = inspect.getsourcefile(import_object(ref, "environment class or generator"))
    if source is None:
        return []
    here = Path(source).resolve()
    return sorted(here.parent.glob("*.py")) if (here.parent / "__init__.py").exists() else [here]


def graph_fingerprint(ts) -> str:
    """A short hash of everything the toolset's catalog and graph depend on (`ts`: a ToolsetConfig)."""
    h = hashlib.sha256(ts.model_dump_json().encode())
    if any(c in BFCL_CLASSES for c in ts.classes):
        h.update(f"bfcl-eval {importlib.metadata.version('bfcl-eval')}".encode())
    files = _code_files()
    for cls in ts.classes:
        server = ts.server_options(cls)
        if server is not None:  # an MCP server: its name and version as it reports them, its scenarios
            info = ts.factory(cls).server_info()
            h.update(f"mcp {cls} {info.get('name')} {info.get('version')}".encode())
            files += [Path(server.scenarios)] if server.scenarios else []
            continue
        files += _module_files(cls)
        opts = ts.environments.get(cls)
        for ref in (getattr(opts, "scenarios", None), getattr(opts, "schema_file", None)):
            if ref:
                files += _module_files(ref) if is_import_path(ref) else [Path(ref)]
    for f in files:
        h.update(str(f.name).encode())
        h.update(f.read_bytes() if f.exists() else b"<missing>")
    return h.hexdigest()[:16]
