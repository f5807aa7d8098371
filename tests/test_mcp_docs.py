"""docs/mcp_servers.md, verbatim: every `<!-- run -->` block in a copy of the tracked files (a fresh
clone plus this checkout's .venv and installed .mcp servers), with no FUNREASON_* or DAGSTER_HOME set."""

from __future__ import annotations

import re

from tests.cli_helpers import run_docs_verbatim
from tests.mcp_helpers import ROOT, require_servers

DOCS = ROOT / "docs" / "mcp_servers.md"


def test_mcp_docs_run_verbatim_in_a_fresh_copy(tmp_path):
    require_servers()
    # .mcp: installed once by `make mcp-servers`; the first block checks it
    outputs = run_docs_verbatim(DOCS, tmp_path / "clone", ROOT, links=(".venv", ".mcp"))
    assert len(outputs) == 3
    assert "9 tools" in outputs[1] and "copy differs: True" in outputs[1]
    assert re.search(r"^data \w+ -> \w+", outputs[1], re.MULTILINE)
    accepted = int(re.search(r"(\d+) trajectories accepted", outputs[2]).group(1))
    assert accepted >= 4 and "replay problems: []" in outputs[2]
    assert "replay problems: [" not in outputs[2].replace("replay problems: []", "")
