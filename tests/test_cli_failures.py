"""`cli demo` when nothing gets through Phase I: exit 1 with the yield message, no day export of an
empty day (it used to crash reading an SFT table that no run had made)."""

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import clean_env

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.heavy  # a CLI demo in a new process, end to end by nature (like the other CLI demos)
def test_demo_of_only_a_broken_toolset_fails_clearly_without_exporting(tmp_path):
    env = clean_env()
    env.update(FUNREASON_TOOLSETS_EXTRA=str(ROOT / "tests" / "envs" / "toolsets.yaml"),
               FUNREASON_DB=str(tmp_path / "db.duckdb"), DAGSTER_HOME=str(tmp_path / "home"),
               FUNREASON_EXPORTS=str(tmp_path / "exports"))
    proc = subprocess.run([sys.executable, "-m", "funreason_pipeline.cli", "demo", "--day", "2026-11-27",
                           "--toolsets", "broken", "--workers", "1"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out[-3000:]
    assert "day export of 2026-11-27 skipped: no toolset reached its SFT set in this run" in proc.stdout
    assert "FAILED toolset 'broken'" in proc.stderr
    assert "Traceback" not in out and "does not exist" not in out, out[-3000:]
    assert not (tmp_path / "exports" / "2026-11-27").exists()
