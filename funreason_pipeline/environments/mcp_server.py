"""One running MCP server per worker process and entry, shared by instances that take turns on it.

A server that re-reads its state on every call can serve any number of instances: before a call the
instance's state blob is restored into the server's private folder, after it the new state is read
back (mcp_state.py). Copies of an environment are then free and no two instances share state. That
a server really re-reads is proved once at start-up (`self_test`): a write must reach the declared
state path, and a restored state must be seen by the server's own reads; otherwise the toolset is
refused with the reason.

The private folder ({state_dir}) also holds the server's HOME and temp folder, so nothing lands in
the real HOME or in the server's package folder.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from funreason_pipeline.environments.base import EnvironmentConfigError, ToolResult
from funreason_pipeline.environments.mcp_catalog import call_result, catalog
from funreason_pipeline.environments.mcp_client import McpProcess, McpServerError, McpToolError
from funreason_pipeline.environments.mcp_config import PASSED_ENV, McpCall, McpServerOptions, expand
from funreason_pipeline.environments.mcp_state import (
    Blob,
    McpStateError,
    canonical,
    capture,
    empty_blob,
    mask_fields,
    replace_text,
    restore,
)

OWNER_VAR = "FUNREASON_MCP_OWNER"  # marks our server processes (tests look for leftovers by it)
_UNKNOWN = object()  # the blob on disk is not known (fresh start, after a crash)


def runtime_root() -> Path:
    root = Path(os.environ.get("FUNREASON_MCP_RUNTIME") or Path(tempfile.gettempdir()) / "funreason-mcp")
    root.mkdir(parents=True, exist_ok=True)
    return root


def sweep_runtime_root() -> None:
    """Remove the state folders of owners that are gone (a killed run cannot clean up after itself;
    its servers died with it, by their death signal). Folders are named `<server>-<owner pid>-...`."""
    for d in runtime_root().iterdir():
        parts = d.name.split("-")
        if len(parts) < 3 or not parts[-2].isdigit():
            continue
        try:
            os.kill(int(parts[-2]), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # someone else's live process
            continue


class McpServer:
    """A started, self-tested server with its catalog."""

    def __init__(self, class_ref: str, options: McpServerOptions, setup: list[McpCall],
                 shared: bool = True) -> None:
        self.class_ref, self.options = class_ref, options
        self.label = f"MCP server {class_ref}"
        self.kind = options.state.kind
        self.shared = shared
        self.root = Path(os.path.realpath(tempfile.mkdtemp(prefix=f"{class_ref[4:]}-{os.getpid()}-",
                                                               dir=runtime_root())))
        self.state_dir = str(self.root / "state")
        self.state_path = Path(expand(options.state.path, self.state_dir)) if options.state.path else None
        # real folder <-> the folder calls and results show (stable across workers and runs)
        self.to_real = (options.visible_state_dir, self.state_dir)
        self.to_visible = (self.state_dir, options.visible_state_dir)
        self.lock = threading.RLock()
        self.proc: McpProcess | None = None
        self.on_disk: Any = _UNKNOWN
        self.starts = 0
        try:
            self._start()
            self.specs, self.hints = catalog(self.proc.list_tools(options.start_timeout_s), class_ref, self.label,
                                             translate=self.to_visible)
        except McpServerError as exc:
            self.close()
            raise EnvironmentConfigError(str(exc)) from exc
        except BaseException:
            self.close()
            raise
        self.by_method = {s.method: s for s in self.specs}
        self.server_info = dict(self.proc.server_info)
        unknown = sorted(set(options.exclude_tools) - set(self.by_method))
        if unknown:
            self.close()
            raise EnvironmentConfigError(f"{self.label}: exclude_tools names tools the server does not have: {unknown}")
        if not shared:  # a process of one instance: nothing to isolate it from
            return
        try:
            self.self_test(setup)
        except BaseException:
            self.close()
            raise

    # ---- process -----------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        home = Path(self.state_dir) / "home"
        tmp = Path(self.state_dir) / "tmp"
        home.mkdir(parents=True, exist_ok=True)
        tmp.mkdir(parents=True, exist_ok=True)
        env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
        env.update({"HOME": str(home), "TMPDIR": str(tmp), "TMP": str(tmp), "TEMP": str(tmp),
                    "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
                    "XDG_DATA_HOME": str(home / ".local/share"), "npm_config_cache": str(home / ".npm"),
                    "PYTHONDONTWRITEBYTECODE": "1", OWNER_VAR: str(os.getpid())})
        env.update({k: expand(v, self.state_dir) for k, v in self.options.env.items()})
        return env

    def _start(self) -> None:
        if self.state_path is not None:
            restore(self.kind, self.state_path, empty_blob(self.kind))  # a dir the server serves must exist
            self.on_disk = empty_blob(self.kind)
        self.starts += 1
        self.proc = McpProcess(self.options.command_line(self.state_dir), self._env(), cwd=self.state_dir,
                               start_timeout_s=self.options.start_timeout_s, label=self.label)

    def close(self) -> None:
        if self.proc is not None:
            self.proc.close()
            self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    # ---- calls -------------------------------------------------------------------------------

    def call(self, blob: Blob, method: str, arguments: dict[str, Any]) -> tuple[ToolResult, Blob]:
        """Run one call on the state `blob`; returns its result and the state after it."""
        with self.lock:
            if (self.proc is None or not self.proc.alive()) and not self.shared:
                # an instance's own process held its state in memory: a new one would silently start empty
                return ToolResult(None, f"{method}: the server process of this instance has ended; its state "
                                        "is gone"), blob
            if self.proc is None or not self.proc.alive():
                if self.proc is not None:
                    self.proc.close()
                try:
                    self._start()
                except McpServerError as exc:
                    self.proc = None
                    return ToolResult(None, f"{method}: the server could not be restarted: {exc}"), blob
            if self.state_path is not None and self.on_disk is not blob:
                known = None if self.on_disk is _UNKNOWN else self.on_disk
                restore(self.kind, self.state_path, blob, known)
                self.on_disk = blob
            try:
                answer = self.proc.call_tool(method, replace_text(arguments, *self.to_real),
                                             self.options.call_timeout_s)
                result = call_result(method, answer, self.options.error_patterns)
            except McpToolError as exc:  # a JSON-RPC error answer: bad arguments, unknown tool
                result = ToolResult(None, f"{method}: {exc}")
            except McpServerError as exc:  # crashed, hung or broke the protocol: a fresh process next call
                self.proc.close()
                self.proc = None
                result = ToolResult(None, f"{method} failed: {exc}")
            after = self._read_state(blob)
            value = mask_fields(replace_text(result.value, *self.to_visible), self.options.mask,
                                self.options.mask_patterns)
            error = replace_text(result.error, *self.to_visible) if result.error else None
            return ToolResult(value, error), after

    def _read_state(self, before: Blob) -> Blob:
        if self.state_path is None:
            return before
        try:
            after = capture(self.kind, self.state_path)
        except OSError as exc:
            raise EnvironmentConfigError(f"{self.label}: cannot read its state at {self.state_path}: {exc}") from exc
        after = before if after == before else after  # keep the object: the next call skips its restore
        self.on_disk = after
        return after

    # ---- the start-up proof ------------------------------------------------------------------

    def default_reads(self) -> list[McpCall]:
        return [McpCall(tool=s.method) for s in self.specs
                if self.hints.get(s.method, {}).get("readOnlyHint") and not s.required
                and s.method not in self.options.exclude_tools]

    def self_test(self, setup: list[McpCall]) -> None:
        """Prove that instances cannot see each other: a write lands in the declared state path, and
        the server's reads follow a state restored under it (empty, then the written one)."""
        if self.kind == "none":
            return
        reads = list(self.options.probe_reads) or self.default_reads()
        where = f"{self.label} self-test"
        if not setup:
            raise EnvironmentConfigError(f"{where}: a stateful server needs a scenario with calls (`scenarios`) "
                                         "to prove its state can be restored")
        if not reads:
            raise EnvironmentConfigError(f"{where}: no read call to check restored state with: declare "
                                         "probe_reads (the server marks no argument-free tool readOnlyHint)")
        empty = empty_blob(self.kind)

        def run_reads(blob: Blob) -> list[Any]:
            self.on_disk = _UNKNOWN  # force the restore being tested
            out = []
            for r in reads:
                res, blob = self.call(blob, r.tool, dict(r.arguments))
                out.append((res.value, res.error))
            return out

        before = run_reads(empty)
        state = empty
        for c in setup:
            res, state = self.call(state, c.tool, dict(c.arguments))
            if not res.ok:
                raise EnvironmentConfigError(f"{where}: scenario call {c.tool}({c.arguments}) failed: {res.error}")
        if state == empty:
            raise EnvironmentConfigError(
                f"{where}: the scenario's writes did not reach the declared state path "
                f"{self.options.state.path}: the server keeps its state elsewhere (shared with other instances?) "
                "- point the server at the state path (its env or args)")
        written = run_reads(state)
        if written == before:
            raise EnvironmentConfigError(f"{where}: the probe reads answer the same before and after the "
                                         "scenario, so restored state cannot be checked: declare probe_reads")
        if run_reads(empty) != before or run_reads(state) != written:
            raise EnvironmentConfigError(
                f"{where}: a restored state is not seen by the server (it keeps state in memory): such a server "
                "cannot be shared between instances: set `isolation: process` (a process per instance)")
        try:  # the written state must also read as its declared kind
            canonical(self.kind, state)
        except McpStateError as exc:
            raise EnvironmentConfigError(f"{where}: {exc}") from exc


_servers: dict[tuple[int, str, str], McpServer] = {}
_servers_lock = threading.Lock()


def server_for(class_ref: str, options: McpServerOptions, setup: list[McpCall], shared: bool = True) -> McpServer:
    """This process's server for an entry (started and, when shared, self-tested on first use)."""
    key = (os.getpid(), class_ref, options.key())
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            if not any(pid == os.getpid() for pid, _, _ in _servers):
                sweep_runtime_root()
            server = _servers[key] = McpServer(class_ref, options, setup, shared=shared)
        return server


def close_servers() -> None:
    with _servers_lock:
        servers = [s for (pid, _, _), s in _servers.items() if pid == os.getpid()]
        _servers.clear()
    for s in servers:
        s.close()


atexit.register(close_servers)
