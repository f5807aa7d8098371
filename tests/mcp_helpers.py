"""Shared by tests/test_mcp_*.py: the real servers `make mcp-servers` installs, and their toolsets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from funreason_pipeline.environments.toolsets import ToolsetConfig, load_toolsets, parse_toolsets

ROOT = Path(__file__).resolve().parent.parent
MCP_TOOLSETS = ROOT / "data" / "mcp_toolsets.yaml"
BAD_SERVER = ROOT / "tests" / "envs" / "mcp_bad_server.py"
SERVER_BINARIES = {
    "memory": ROOT / ".mcp/npm/node_modules/.bin/mcp-server-memory",
    "files": ROOT / ".mcp/npm/node_modules/.bin/mcp-server-filesystem",
    "sqlite": ROOT / ".mcp/venvs/sqlite/bin/mcp-server-sqlite",
}
# toolset -> (class, number of tools the server declares)
REAL = {"mcp_memory": ("mcp:memory", 9), "mcp_files": ("mcp:files", 14), "mcp_sqlite": ("mcp:sqlite", 6)}


def require_servers() -> None:
    """Fail (never skip) with the fix when the servers are not installed."""
    missing = [str(p.relative_to(ROOT)) for p in SERVER_BINARIES.values() if not p.exists()]
    if missing:
        pytest.fail(f"MCP servers not installed ({', '.join(missing)} missing): run `make mcp-servers`")


def mcp_toolset(name: str) -> ToolsetConfig:
    require_servers()
    return {t.name: t for t in load_toolsets(MCP_TOOLSETS)}[name]


def bad_toolset(mode: str, name: str = "bad", state_file: str = "{state_dir}/state.json",
                **extra: str) -> ToolsetConfig:
    """A toolset whose server is tests/envs/mcp_bad_server.py misbehaving as `mode`."""
    lines = "".join(f"        {k}: {v}\n" for k, v in {"env": f"{{STATE_FILE: '{state_file}'}}", **extra}.items())
    text = (f"toolsets:\n  - name: {name}\n    classes: ['mcp:bad']\n    servers:\n      bad:\n"
            f"        command: {sys.executable}\n        args: [{str(BAD_SERVER)!r}, {mode}]\n"
            f"        state: {{kind: json, path: '{{state_dir}}/state.json'}}\n"
            f"        scenarios: {ROOT / 'tests/envs/mcp_bad_scenarios.json'}\n{lines}")
    return parse_toolsets(text, source="<test>", base_dir=ROOT)[0]


def our_server_pids() -> list[int]:
    """Live processes carrying this process's owner mark (servers it started and did not end)."""
    mark = f"FUNREASON_MCP_OWNER={os.getpid()}".encode()
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if mark in (d / "environ").read_bytes().split(b"\0"):
                    found.append(int(d.name))
            except OSError:
                continue
    return found
