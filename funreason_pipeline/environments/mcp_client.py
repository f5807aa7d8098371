"""A small synchronous MCP client over stdio: one server process, newline-delimited JSON-RPC.

Hand-written instead of the SDK's async session: every request needs a hard wall-clock limit and a
server that hangs, crashes or prints junk must end as a clear error and a killed process group,
from whatever thread the pipeline calls in. A reader thread turns stdout into a queue; a request
waits on that queue with a deadline.

No orphans: the server starts in its own process group (so closing kills its children too) with
PR_SET_PDEATHSIG = SIGKILL (so a SIGKILLed pipeline takes it along); servers are spawned from one
long-lived thread because the kernel ties the death signal to the thread that forked.
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

PROTOCOL_VERSION = "2025-06-18"
_EOF = object()
_live: set[McpProcess] = set()
_live_lock = threading.Lock()


class McpServerError(RuntimeError):
    """The server process failed: did not start, exited, hung, or broke the protocol."""


class McpToolError(RuntimeError):
    """A JSON-RPC error answer to a request (the server is still fine)."""


# ---- spawning from one long-lived thread -------------------------------------------------------

_spawner: tuple[int, queue.Queue] | None = None  # (pid, job queue): a forked worker needs its own thread
_spawner_lock = threading.Lock()


def _spawner_loop(jobs: queue.Queue) -> None:
    while True:
        job, done, box = jobs.get()
        try:
            box.append(("ok", job()))
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread
            box.append(("err", exc))
        done.set()


def _in_spawner(job: Callable[[], Any]) -> Any:
    global _spawner
    with _spawner_lock:
        if _spawner is None or _spawner[0] != os.getpid():
            jobs: queue.Queue = queue.Queue()
            threading.Thread(target=_spawner_loop, args=(jobs,), name="mcp-spawner", daemon=True).start()
            _spawner = (os.getpid(), jobs)
        jobs = _spawner[1]
    done, box = threading.Event(), []
    jobs.put((job, done, box))
    done.wait()
    kind, value = box[0]
    if kind == "err":
        raise value
    return value


try:  # looked up in the parent: the forked child must not load libraries (another thread may hold the loader lock)
    _prctl = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):  # not Linux: the process group and stdin EOF still end the server
    _prctl = None


def _die_with_parent(parent: int) -> Callable[[], None]:
    def preexec() -> None:
        if _prctl is not None:
            _prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)
    return preexec


# ---- one server process ------------------------------------------------------------------------


class McpProcess:
    """A running stdio MCP server after the initialize handshake."""

    def __init__(self, command: list[str], env: dict[str, str], cwd: str, start_timeout_s: float,
                 label: str) -> None:
        self.label = label
        self.command = command
        self._next_id = 0
        self._messages: queue.Queue = queue.Queue()
        self._stderr: collections.deque[str] = collections.deque(maxlen=40)
        self._write_lock = threading.Lock()
        self.started = time.perf_counter()
        self.owner = os.getpid()  # a forked child must never end its parent's servers
        try:
            self.proc = _in_spawner(lambda: subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                cwd=cwd, start_new_session=True,
                preexec_fn=_die_with_parent(os.getpid())))  # noqa: PLW1509 - only prctl and getppid run in the child
        except FileNotFoundError as exc:
            raise McpServerError(f"{label}: command not found: {command[0]!r} ({exc.strerror}); "
                                 "is the server installed (make mcp-servers)?") from exc
        except PermissionError as exc:
            raise McpServerError(f"{label}: command not executable: {command[0]!r}") from exc
        with _live_lock:
            _live.add(self)
        threading.Thread(target=self._read_stdout, daemon=True, name=f"mcp-out-{self.proc.pid}").start()
        threading.Thread(target=self._read_stderr, daemon=True, name=f"mcp-err-{self.proc.pid}").start()
        try:
            init = self.request("initialize", {
                "protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                "clientInfo": {"name": "funreason-pipeline", "version": "1"}}, timeout_s=start_timeout_s)
            self.notify("notifications/initialized")
        except (McpServerError, McpToolError) as exc:
            self.close()
            raise McpServerError(f"{label}: failed to start: {exc}") from exc
        self.server_info = dict(init.get("serverInfo") or {})
        self.protocol_version = init.get("protocolVersion")
        self.capabilities = init.get("capabilities") or {}
        self.ready_ms = (time.perf_counter() - self.started) * 1000

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode("utf-8", "replace").strip()
            if not line:
                continue
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if not isinstance(msg, dict) or msg.get("jsonrpc") != "2.0":
                # a server must write only protocol messages on stdout; anything else is a broken server
                self._messages.put(McpServerError(f"non-protocol text on stdout: {line[:200]!r}"))
                continue
            self._messages.put(msg)
        self._messages.put(_EOF)

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def stderr_tail(self, lines: int = 5) -> str:
        return " | ".join(list(self._stderr)[-lines:])

    def _send(self, msg: dict[str, Any]) -> None:
        data = (json.dumps(msg, separators=(",", ":")) + "\n").encode()
        try:
            with self._write_lock:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise McpServerError(self._exit_text() or f"cannot write to the server: {exc}") from exc

    def _exit_text(self) -> str:
        try:
            code = self.proc.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            return ""
        time.sleep(0.05)  # let the stderr reader catch the last lines
        tail = self.stderr_tail()
        return f"server exited with code {code}" + (f"; stderr: {tail}" if tail else "")

    def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        self._send({"jsonrpc": "2.0", "method": method, **({"params": params} if params else {})})

    def request(self, method: str, params: dict[str, Any] | None, timeout_s: float) -> dict[str, Any]:
        """Send a request and wait for its answer; raises McpServerError (the process is no longer
        usable: exited, hung past the timeout, broke the protocol) or McpToolError (an error answer)."""
        self._next_id += 1
        rid = self._next_id
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, **({"params": params} if params else {})})
        end = time.monotonic() + timeout_s
        while True:
            left = end - time.monotonic()
            try:
                msg = self._messages.get(timeout=max(left, 0))
            except queue.Empty:
                raise McpServerError(f"no answer to {method} within {timeout_s:g} s") from None
            if msg is _EOF:
                self._messages.put(_EOF)  # stays readable for later requests
                raise McpServerError(self._exit_text() or "server closed its stdout")
            if isinstance(msg, McpServerError):
                raise msg
            if "method" in msg:  # a request or notification from the server
                if "id" in msg:
                    self._answer_server_request(msg)
                continue
            if msg.get("id") != rid:
                continue  # a late answer to a request that timed out before; never happens after a restart
            if "error" in msg:
                err = msg["error"] if isinstance(msg["error"], dict) else {"message": str(msg["error"])}
                raise McpToolError(f"{err.get('message', 'error')} (code {err.get('code')})")
            result = msg.get("result")
            if not isinstance(result, dict):
                raise McpServerError(f"answer to {method} is not an object: {str(result)[:200]}")
            return result

    def _answer_server_request(self, msg: dict[str, Any]) -> None:
        # we offer no client capabilities (roots, sampling, elicitation); ping must be answered
        if msg.get("method") == "ping":
            self._send({"jsonrpc": "2.0", "id": msg["id"], "result": {}})
        else:
            self._send({"jsonrpc": "2.0", "id": msg["id"],
                        "error": {"code": -32601, "message": f"method {msg.get('method')} not supported"}})

    def list_tools(self, timeout_s: float) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(100):  # a server paging forever is broken
            page = self.request("tools/list", {"cursor": cursor} if cursor else None, timeout_s)
            got = page.get("tools")
            if not isinstance(got, list):
                raise McpServerError(f"tools/list answer has no tool list: {str(page)[:200]}")
            tools += got
            cursor = page.get("nextCursor")
            if not cursor:
                return tools
        raise McpServerError("tools/list pages never end")

    def call_tool(self, name: str, arguments: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        return self.request("tools/call", {"name": name, "arguments": arguments}, timeout_s)

    def close(self) -> None:
        """End the whole process group: polite first (stdin EOF, SIGTERM), then SIGKILL."""
        with _live_lock:
            _live.discard(self)
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        for sig, wait_s in ((signal.SIGTERM, 1.0), (signal.SIGKILL, 2.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.wait(timeout=wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        try:  # children left in the group after the leader exited
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def close_all() -> None:
    """Every server this process started (atexit; tests)."""
    with _live_lock:
        procs = [p for p in _live if p.owner == os.getpid()]
    for p in procs:
        p.close()


atexit.register(close_all)
