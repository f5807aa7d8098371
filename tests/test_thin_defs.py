"""defs/ holds Dagster only (issue 15 item 6): every asset calls exactly one stage function from
funreason_pipeline.stages; no module under defs/ builds or reads frames (polars appears only in type
annotations), holds SQL, or imports what row building and statistics need; and no stage module
imports Dagster. The IO managers are exempt from the SQL, polars and import rules: reading and writing
the asset tables, the rejections and the export files is their job (Dagster's storage, not a stage).

And the stages return data: no module under stages/ opens a file, a database or the environment, or
imports the storage and configuration modules that would (stages_io)."""

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "funreason_pipeline"
DEFS = PACKAGE / "defs"
# the IO managers: the asset tables, the `rejections` table, the export files
STORAGE_ADAPTERS = {"io_manager.py", "rejections_io.py", "exports_io.py"}
SQL = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE)\b[\s\S]*\b(FROM|INTO|SET|TABLE|VIEW)\b")
# what row building, hashing and statistics import; defs/ has no use for them
FORBIDDEN_IMPORTS = {"json", "hashlib", "collections", "statistics", "duckdb", "funreason_pipeline.frames",
                     "funreason_pipeline.quality", "funreason_pipeline.storage"}
# reading or reshaping a frame's rows is stage work too
FRAME_METHODS = {"iter_rows", "rows", "to_list", "to_dicts", "row", "height", "select", "filter", "with_columns",
                 "group_by", "partition_by", "join", "sum", "mean"}
ALLOWED_IMPORTS = {"resources.py": {"funreason_pipeline.storage"}}  # Store: graph tables, lineage view


def _imports(tree: ast.AST) -> set[str]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names}
    return out


def _annotation_nodes(tree: ast.AST) -> set[int]:
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg) and node.annotation is not None:
            roots.append(node.annotation)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
    return {id(n) for r in roots for n in ast.walk(r)}


def _is_asset(fn: ast.FunctionDef) -> bool:
    for d in fn.decorator_list:
        target = d.func if isinstance(d, ast.Call) else d
        if isinstance(target, ast.Attribute) and target.attr in ("asset", "multi_asset"):
            return True
    return False


def stage_logic(source: str, name: str) -> list[str]:
    """What in one defs/ module is stage logic (empty: none)."""
    tree = ast.parse(source)
    problems = []
    if name not in STORAGE_ADAPTERS:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                problems.append(f"{name}:{node.lineno}: SQL text")
        in_annotation = _annotation_nodes(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id == "pl" and id(node) not in in_annotation:
                problems.append(f"{name}:{node.lineno}: polars used outside a type annotation")
            if isinstance(node, ast.Attribute) and node.attr in FRAME_METHODS:
                problems.append(f"{name}:{node.lineno}: .{node.attr} (frame handling)")
        forbidden = FORBIDDEN_IMPORTS - ALLOWED_IMPORTS.get(name, set())
        problems += [f"{name}: imports {mod}" for mod in sorted(_imports(tree) & forbidden)]
    stage_names = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").startswith("funreason_pipeline.stages") for a in node.names}
    for fn in ast.walk(tree):
        if isinstance(fn, ast.FunctionDef) and _is_asset(fn):
            calls = [c.func.id for c in ast.walk(fn) if isinstance(c, ast.Call) and isinstance(c.func, ast.Name)
                     and c.func.id in stage_names]
            if len(calls) != 1:
                problems.append(f"{name}: asset {fn.name} calls {len(calls)} stage functions ({calls}), not one")
    return problems


def test_defs_holds_no_stage_logic():
    problems = [p for f in sorted(DEFS.glob("*.py")) for p in stage_logic(f.read_text(), f.name)]
    assert problems == []


def test_every_asset_module_is_checked():
    """The rule sees the assets (a decorator it did not recognise would pass every module)."""
    assets = [fn.name for f in DEFS.glob("*.py") for fn in ast.walk(ast.parse(f.read_text()))
              if isinstance(fn, ast.FunctionDef) and _is_asset(fn)]
    assert sorted(assets) == ["api_graph", "day_export", "dialogues", "llm_stages", "rl_samples", "sft_samples",
                              "tool_catalog", "trajectories"]


def test_stage_logic_would_be_seen():
    bad = '''
import json
import dagster as dg
import polars as pl
from funreason_pipeline.stages.graph import catalog_stage, graph_stage

Q = "SELECT toolset, count(*) FROM rejections"

@dg.asset()
def a(context, frame: pl.DataFrame) -> pl.DataFrame:
    rows = [r for r in frame.iter_rows(named=True)]
    return pl.DataFrame(rows)

@dg.asset(name="b")
def b(context, tool_catalog):
    return graph_stage(context.partition_key, catalog_stage(context.partition_key).frame)
'''
    problems = stage_logic(bad, "bad.py")
    assert any("SQL text" in p for p in problems)
    assert any("bad.py:12: polars used outside" in p for p in problems)
    assert any("imports json" in p for p in problems)
    assert any("bad.py:11: .iter_rows" in p for p in problems)
    assert any("asset a calls 0 stage functions" in p for p in problems)
    assert any("asset b calls 2 stage functions" in p for p in problems)
    assert not any(":11: polars" in p for p in problems)  # the annotations are fine


def test_stages_and_the_core_import_no_dagster():
    """Only the Dagster layer (defs/, definitions.py) and the CLI that drives it import dagster."""
    allowed = {DEFS, PACKAGE / "definitions.py", PACKAGE / "cli.py"}
    importers = []
    for f in PACKAGE.rglob("*.py"):
        if f in allowed or DEFS in f.parents:
            continue
        if any(m == "dagster" or m.startswith(("dagster.", "dagster_")) for m in _imports(ast.parse(f.read_text()))):
            importers.append(str(f.relative_to(PACKAGE)))
    assert importers == []
    assert any((PACKAGE / "stages").glob("*.py"))


STAGES = PACKAGE / "stages"
# file and database access, and the environment: the IO managers' and resources' business
IO_CALLS = {"open", "read_text", "write_text", "read_bytes", "write_bytes", "connect", "getenv", "putenv",
            "mkdir", "unlink", "touch", "write_parquet", "write_csv", "write_ndjson", "read_parquet", "read_csv",
            "write_rl_parquet", "write_exports", "write_files", "read_files"}
IO_MODULES = {"duckdb", "funreason_pipeline.storage", "funreason_pipeline.config", "os", "shutil", "tempfile",
              "pathlib", "sqlite3", "funreason_pipeline.export.files"}


def stages_io(source: str, name: str) -> list[str]:
    """Where one stages/ module reads or writes outside its arguments (empty: nowhere)."""
    tree = ast.parse(source)
    problems = [f"{name}: imports {m}" for m in sorted(_imports(tree))
                if m in IO_MODULES or any(m.startswith(f"{io}.") for io in IO_MODULES)]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if called in IO_CALLS:
                problems.append(f"{name}:{node.lineno}: calls {called}")
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            problems.append(f"{name}:{node.lineno}: reads the environment ({node.attr})")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "storage":
            problems.append(f"{name}:{node.lineno}: storage.{node.attr}")
    return problems


def test_stages_return_data_only():
    problems = [p for f in sorted(STAGES.glob("*.py")) for p in stages_io(f.read_text(), f.name)]
    assert problems == []
    assert len(list(STAGES.glob("*.py"))) >= 9  # the rule saw the stages


def test_stage_io_would_be_seen():
    bad = '''
import os
from pathlib import Path
from funreason_pipeline import storage, config
from funreason_pipeline.storage import connect

def stage(day, exports):
    root = os.environ.get("FUNREASON_EXPORTS") or config.exports_dir()
    (Path(root) / day / "README.md").write_text("card")
    with storage.connect(config.db_path()) as con:
        con.execute("SELECT 1")
    data = open("x").read()
    return Path(root).read_bytes(), os.getenv("X")
'''
    problems = stages_io(bad, "bad.py")
    for expected in ("bad.py: imports os", "bad.py: imports pathlib", "bad.py: imports funreason_pipeline.storage",
                     "bad.py: imports funreason_pipeline.config", "bad.py:8: reads the environment (environ)",
                     "bad.py:9: calls write_text", "bad.py:10: calls connect", "bad.py:10: storage.connect",
                     "bad.py:12: calls open", "bad.py:13: calls read_bytes", "bad.py:13: calls getenv"):
        assert expected in problems, (expected, problems)
    assert stages_io("import polars as pl\n\ndef stage(frame):\n    return frame.height\n", "good.py") == []
