"""docs/mcp_servers.md, verbatim: every `<!-- run -->` block in a copy of the tracked files (a fresh
clone plus this checkout's .venv and installed .mcp servers), with no FUNREASON_* or DAGSTER_HOME set."""

from __future__ import annotations

import re
import shutil
import subprocess

from tests.cli_helpers import clean_env
from tests.mcp_helpers import ROOT, require_servers

DOCS = ROOT / "docs" / "mcp_servers.md"


def test_mcp_docs_run_verbatim_in_a_fresh_copy(tmp_path):
    require_servers()
    clone = tmp_path / "clone"
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (ROOT / rel).is_file() and not rel.startswith(("tests/", "bench/")):
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, clone / rel)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    (clone / ".mcp").symlink_to(ROOT / ".mcp")  # installed once by `make mcp-servers`; the first block checks it
    text = DOCS.read_text()
    for path, body in re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", text, re.DOTALL):
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).write_text(body)
    blocks = re.findall(r"<!-- run -->\n```bash\n(.*?)```", text, re.DOTALL)
    assert len(blocks) == 3
    outputs = []
    for block in blocks:
        proc = subprocess.run(["bash", "-e", "-c", block], cwd=clone, env=clean_env(), capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    assert "9 tools" in outputs[1] and "copy differs: True" in outputs[1]
    assert re.search(r"^data \w+ -> \w+", outputs[1], re.MULTILINE)
    accepted = int(re.search(r"(\d+) trajectories accepted", outputs[2]).group(1))
    assert accepted >= 4 and "replay problems: []" in outputs[2]
    assert "replay problems: [" not in outputs[2].replace("replay problems: []", "")
