"""A lean OpenAI-compatible test server: real HTTP on 127.0.0.1, configurable latency, capacity and faults.

Not a framework: a bare `asyncio.Protocol` with a minimal HTTP/1.1 parser and `loop.call_later` for the
simulated latency (no task per request), because it shares 2 cores with the client during benchmarks.

Endpoints
  POST /v1/chat/completions   (also /chat/completions)
  GET  /v1/models
  GET  /stats                 counters as JSON (the in-process object has `.stats()` too)
  POST /reset                 zero the counters

Behaviour, in order, for each chat request
  1. capacity: if `capacity` requests are already in flight -> 429 with `Retry-After` (+ `retry-after-ms`).
  2. faults, drawn from one seeded RNG by rate: `rate_500`, `rate_503`, `rate_429` (injected, also with
     Retry-After), `rate_timeout` (hang `hang_s`, longer than the client's timeout), `rate_malformed`
     (HTTP 200 with a cut-off JSON body), `rate_truncated` (a valid body whose content is cut in half and
     `finish_reason="length"`).
  3. otherwise, after `latency` seconds (or the answer's own `delay`), the answer; an answer with
     `hang_copies: n` hangs instead for the first n copies of its request (same body) that arrive:
     a request that stalls until the client sends it again n times (hedging tests).

Which answer: the role is read from the `X-Funreason-Role` header (our client sends it); without the
header the `model` name is used as the key. `scripts[key]` is a list of answers; the answer chosen is
`script[min(turn, len - 1)]` where `turn` = the number of assistant messages already in the request, so
"first answer wrong, second right" follows a conversation (a repair retry) deterministically, whatever the
order or concurrency. An answer is a dict: `content` (str; `{last_user}` is replaced with the last user
message, `{first_user}` with the first), optional `tool_calls` ([{"name", "arguments" (str or object)}]), optional `reasoning_content` (as vLLM's
reasoning parser returns it), optional `finish_reason`,
optional `delay` (seconds, instead of `latency`), `hang_copies` and `error_copies` (see 3.). With `record`, each log entry
gets `end` once the request is over, "done" (answered) or "gone" (the client disconnected first), and `end_t`.
Without a script the default answer is JSON text `{"echo": <last user message>}`.

Run in-process (background thread, ephemeral port):
    with TestServer(latency=0.05, capacity=8) as srv:
        srv.url            # "http://127.0.0.1:PORT/v1"
        srv.stats()        # {"total": .., "by_role": {..}, "by_outcome": {..}, "max_in_flight": ..}
or as a subprocess (prints `READY <url>` on stdout once listening):
    python -m testing.llm_server --port 0 --latency 0.5 --capacity 64
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Self

ROOT = Path(__file__).resolve().parents[1]  # the repository root

__all__ = ["ServerConfig", "TestServer", "fetch_stats", "run_subprocess_server"]

_REASONS = {
    200: b"OK",
    400: b"Bad Request",
    404: b"Not Found",
    411: b"Length Required",
    429: b"Too Many Requests",
    500: b"Internal Server Error",
    503: b"Service Unavailable",
}


# targets.md R1: the fault mix every fault test, the fault suite and the bench run against
R1_FAULTS = {"rate_500": 0.20, "rate_429": 0.10, "rate_timeout": 0.05, "rate_malformed": 0.05,
             "rate_truncated": 0.05}


@dataclass
class ServerConfig:
    latency: float = 0.0
    capacity: int | None = None  # concurrent requests above this get 429
    retry_after: float = 1.0  # seconds, sent with every 429/503
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_429: float = 0.0
    rate_timeout: float = 0.0
    rate_malformed: float = 0.0
    rate_truncated: float = 0.0
    hang_s: float = 30.0  # how long a "timeout" fault hangs (or until the client disconnects)
    seed: int = 0
    scripts: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    # in-process only: (role, request body) -> answer dict like a script entry; for answers that depend
    # on the request (a reasoner that must produce the right calls for whatever query it is sent)
    responder: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None
    record: bool = False  # keep a log of (role, last user message, outcome, time) per request
    error_body_echo_auth: bool = False  # a misbehaving proxy: 500 bodies echo the Authorization header


class _Stats:
    __slots__ = ("by_outcome", "by_role", "in_flight", "lock", "log", "max_in_flight", "total")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.total = 0
        self.by_role: Counter[str] = Counter()
        self.by_outcome: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[dict[str, Any]] = []

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total": self.total,
                "by_role": dict(self.by_role),
                "by_outcome": dict(self.by_outcome),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "log": list(self.log),
            }


def _last_user(messages: list[dict[str, Any]], first: bool = False) -> str:
    for m in messages if first else reversed(messages):
        if m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):  # content parts
                return "".join(p.get("text", "") for p in c if isinstance(p, dict))
            return ""
    return ""


class _App:
    """State shared by all connections of one server."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.stats = _Stats()
        self.rng = random.Random(config.seed)
        self.counter = 0
        self.copies: Counter[int] = Counter()  # arrivals per request body (`hang_copies`)
        self.loop: asyncio.AbstractEventLoop | None = None
        self._models_body = json.dumps(
            {"object": "list", "data": [{"id": "test-model", "object": "model", "owned_by": "funreason"}]}
        ).encode()

    # --- answers ---------------------------------------------------------------------------------
    def _answer(self, body: dict[str, Any], role: str) -> dict[str, Any]:
        messages = body.get("messages") or []
        last_user = _last_user(messages)
        script = self.config.scripts.get(role) or self.config.scripts.get(body.get("model", ""))
        if self.config.responder is not None or script:
            turn = sum(1 for m in messages if m.get("role") == "assistant")
            if self.config.responder is not None:
                ans = self.config.responder(role, body)
            else:
                ans = script[min(turn, len(script) - 1)]
            content = ans.get("content")
            if isinstance(content, str):
                content = content.replace("{last_user}", last_user)
                if "{first_user}" in content:
                    content = content.replace("{first_user}", _last_user(messages, first=True))
            tool_calls = ans.get("tool_calls")
            finish = ans.get("finish_reason") or ("tool_calls" if tool_calls else "stop")
            extra = {k: ans[k] for k in ("delay", "hang_copies", "error_copies", "reasoning_content") if k in ans}
        else:
            content = json.dumps({"echo": last_user})
            tool_calls = None
            finish = "stop"
            extra = {}
        return {"content": content, "tool_calls": tool_calls, "finish_reason": finish, **extra}

    def completion_body(self, raw: bytes, body: dict[str, Any], role: str, truncated: bool,
                        ans: dict[str, Any] | None = None) -> bytes:
        ans = ans or self._answer(body, role)
        content = ans["content"]
        finish = ans["finish_reason"]
        if truncated:
            content = (content or "")[: max(1, len(content or "") // 2)]
            finish = "length"
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if ans.get("reasoning_content") and not truncated:
            message["reasoning_content"] = ans["reasoning_content"]
        if ans["tool_calls"] and not truncated:
            calls = []
            for i, tc in enumerate(ans["tool_calls"]):
                args = tc.get("arguments", {})
                calls.append(
                    {
                        "id": f"call_{i}",
                        "type": "function",
                        "function": {
                            "name": tc["name"],
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                )
            message["tool_calls"] = calls
        self.counter += 1
        out_tokens = max(1, len(content or "") // 4)
        in_tokens = max(1, len(raw) // 4)
        return json.dumps(
            {
                "id": f"chatcmpl-{self.counter}",
                "object": "chat.completion",
                "created": 0,
                "model": body.get("model", "test-model"),
                "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
                "usage": {
                    "prompt_tokens": in_tokens,
                    "completion_tokens": out_tokens,
                    "total_tokens": in_tokens + out_tokens,
                },
            }
        ).encode()

    def pick_fault(self) -> str | None:
        c = self.config
        r = self.rng.random()
        for name, rate in (
            ("error_500", c.rate_500),
            ("error_503", c.rate_503),
            ("rate_limited", c.rate_429),
            ("timeout", c.rate_timeout),
            ("malformed", c.rate_malformed),
            ("truncated", c.rate_truncated),
        ):
            if r < rate:
                return name
            r -= rate
        return None


def _error_body(message: str, type_: str, code: Any = None) -> bytes:
    return json.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}}).encode()


class _Conn(asyncio.Protocol):
    """One HTTP/1.1 keep-alive connection; requests are handled one at a time (no pipelining)."""

    __slots__ = ("app", "buf", "busy", "closed", "entry", "timer", "transport")

    def __init__(self, app: _App) -> None:
        self.app = app
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.busy = False
        self.timer: asyncio.TimerHandle | None = None
        self.closed = False
        self.entry: dict[str, Any] | None = None  # the log entry of the request in flight (`record`)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def eof_received(self) -> None:
        # the client hung up: noted when its end is read, not a loop iteration later in
        # connection_lost, which would stamp it after requests read in the same iteration
        self._gone()
        # None: the transport closes (HTTP clients do not half-close)

    def connection_lost(self, exc: Exception | None) -> None:
        self._gone()

    def _gone(self) -> None:
        self.closed = True
        if self.timer is not None:  # the client gave up on an in-flight request
            self.timer.cancel()
            self.timer = None
            st = self.app.stats
            with st.lock:
                st.in_flight -= 1
                if self.entry is not None:
                    self.entry.update(end="gone", end_t=time.monotonic())
                    self.entry = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._next()

    # --- parsing -----------------------------------------------------------------------------------
    def _next(self) -> None:
        while not self.busy and not self.closed:
            buf = self.buf
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = buf[:end].decode("latin-1").split("\r\n")
            try:
                method, target, _ = head[0].split(" ", 2)
            except ValueError:
                self._send(400, _error_body("bad request line", "invalid_request_error"), close=True)
                return
            headers: dict[str, str] = {}
            for line in head[1:]:
                k, _, v = line.partition(":")
                headers[k.strip().lower()] = v.strip()
            start = end + 4
            if headers.get("transfer-encoding", "").lower() == "chunked":
                parsed = self._dechunk(buf, start)
                if parsed is None:
                    return
                body, rest = parsed
            else:
                n = int(headers.get("content-length") or 0)
                if len(buf) - start < n:
                    return
                body, rest = buf[start : start + n], start + n
            self.buf = buf[rest:]
            self._dispatch(method, target, headers, body)

    @staticmethod
    def _dechunk(buf: bytes, pos: int) -> tuple[bytes, int] | None:
        parts = []
        while True:
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(buf[pos:eol].split(b";")[0], 16)
            pos = eol + 2
            if size == 0:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    return None
                return b"".join(parts), end + 2
            if len(buf) < pos + size + 2:
                return None
            parts.append(buf[pos : pos + size])
            pos += size + 2

    # --- responses ---------------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, extra: bytes = b"", close: bool = False) -> None:
        if self.closed or self.transport is None:
            return
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s%s\r\n%s"
            % (
                status,
                _REASONS.get(status, b"Unknown"),
                len(body),
                extra,
                b"connection: close\r\n" if close else b"",
                body,
            )
        )
        if close:
            self.transport.close()

    def _dispatch(self, method: str, target: str, headers: dict[str, str], body: bytes) -> None:
        path = target.split("?", 1)[0].rstrip("/")
        if method == "POST" and path in ("/v1/chat/completions", "/chat/completions"):
            self._chat(headers, body)
        elif method == "GET" and path in ("/v1/models", "/models"):
            self._send(200, self.app._models_body)
        elif method == "GET" and path == "/stats":
            self._send(200, json.dumps(self.app.stats.snapshot()).encode())
        elif method == "POST" and path == "/reset":
            with self.app.stats.lock:
                self.app.stats.reset()
            self._send(200, b"{}")
        else:
            self._send(404, _error_body(f"no route {method} {path}", "not_found"))

    def _chat(self, headers: dict[str, str], raw: bytes) -> None:
        app = self.app
        cfg = app.config
        st = app.stats
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(400, _error_body("request body is not JSON", "invalid_request_error"))
            return
        role = headers.get("x-funreason-role") or body.get("model", "")
        ans: dict[str, Any] | None = None
        with st.lock:
            st.total += 1
            st.by_role[role] += 1
            if cfg.capacity is not None and st.in_flight >= cfg.capacity:
                outcome = "capacity_429"
            else:
                outcome = app.pick_fault() or "ok"
                if outcome == "ok" and (cfg.scripts or cfg.responder is not None):
                    ans = app._answer(body, role)
                    if "hang_copies" in ans or "error_copies" in ans:
                        key = hash(raw)
                        app.copies[key] += 1
                        if app.copies[key] <= ans.get("hang_copies", 0):
                            outcome = "stalled"
                        elif app.copies[key] <= ans.get("error_copies", 0):
                            outcome = "error_500"
                if outcome != "rate_limited":
                    st.in_flight += 1
                    st.max_in_flight = max(st.max_in_flight, st.in_flight)
            st.by_outcome[outcome] += 1
            if cfg.record:
                entry = {
                    "role": role,
                    "last_user": _last_user(body.get("messages") or []),
                    "outcome": outcome,
                    "t": time.monotonic(),
                }
                st.log.append(entry)
                if outcome not in ("capacity_429", "rate_limited"):
                    self.entry = entry
        if outcome in ("capacity_429", "rate_limited"):
            ra = cfg.retry_after
            self._send(
                429,
                _error_body("Rate limit reached, retry later", "rate_limit_exceeded", "rate_limit_exceeded"),
                b"retry-after: %d\r\nretry-after-ms: %d\r\n" % (max(1, int(-(-ra // 1))), int(ra * 1000)),
            )
            return
        self.busy = True
        loop = app.loop
        assert loop is not None
        if outcome in ("timeout", "stalled"):
            self.timer = loop.call_later(cfg.hang_s, self._finish, 504, _error_body("hung", "timeout"), b"")
            return
        latency = cfg.latency
        if outcome == "error_500":
            msg = "injected server error"
            if cfg.error_body_echo_auth:
                msg += " (auth: {})".format(headers.get("authorization", ""))
            status, payload, extra = 500, _error_body(msg, "server_error"), b""
        elif outcome == "error_503":
            status = 503
            payload = _error_body("overloaded", "server_error")
            extra = b"retry-after-ms: %d\r\n" % int(cfg.retry_after * 1000)
        elif outcome == "malformed":
            full = app.completion_body(raw, body, role, truncated=False)
            status, payload, extra = 200, full[: len(full) // 2], b""
        else:
            payload = app.completion_body(raw, body, role, truncated=outcome == "truncated", ans=ans)
            status, extra = 200, b""
            if ans is not None and "delay" in ans:
                latency = float(ans["delay"])
        if latency > 0:
            self.timer = loop.call_later(latency, self._finish, status, payload, extra)
        else:
            self._finish(status, payload, extra)

    def _finish(self, status: int, payload: bytes, extra: bytes) -> None:
        self.timer = None
        st = self.app.stats
        with st.lock:
            st.in_flight -= 1
            if self.entry is not None:
                self.entry.update(end="done", end_t=time.monotonic())
                self.entry = None
        self.busy = False
        self._send(status, payload, extra)
        if self.buf:
            self._next()


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop  # optional: lower CPU per request if installed

        return uvloop.new_event_loop()
    except ImportError:  # pragma: no cover
        return asyncio.new_event_loop()


class TestServer:
    """The server in a background thread of this process. Use as a context manager."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: ServerConfig | None = None, host: str = "127.0.0.1", port: int = 0, **kw: Any):
        self.config = config or ServerConfig(**kw)
        self.host = host
        self.port = port
        self._app = _App(self.config)
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> TestServer:
        self._thread = threading.Thread(target=self._run, name="llm-testserver", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test server did not start")
        return self

    def _run(self) -> None:
        loop = _new_loop()
        self._loop = loop
        self._app.loop = loop
        asyncio.set_event_loop(loop)
        self._server = loop.run_until_complete(
            loop.create_server(lambda: _Conn(self._app), self.host, self.port, backlog=2048)
        )
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        loop.run_forever()
        self._server.close()
        loop.run_until_complete(self._server.wait_closed())
        loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._thread = None

    def stats(self) -> dict[str, Any]:
        return self._app.stats.snapshot()

    def reset(self) -> None:
        with self._app.stats.lock:
            self._app.stats.reset()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- subprocess mode -------------------------------------------------------------------------------
def fetch_stats(url: str) -> dict[str, Any]:
    """GET /stats of a server whose base URL (".../v1") is `url`."""
    root = url.removesuffix("/v1")
    with urllib.request.urlopen(root + "/stats", timeout=10) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def run_subprocess_server(
    config: ServerConfig | None = None, **kw: Any
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the server as `python -m testing.llm_server` (from the repository root) and yield (url, process)."""
    cfg = config or ServerConfig(**kw)
    if cfg.responder is not None:
        raise ValueError("a responder is a Python callable: run the server in-process (TestServer)")
    fields = {k: v for k, v in asdict(cfg).items() if k != "responder"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testing.llm_server",
            "--port",
            "0",
            "--config",
            json.dumps(fields),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,  # where `testing` is importable
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"test server failed to start: {line!r}")
        yield line.split()[1], proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
            proc.wait()


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", type=float, default=None)
    p.add_argument("--capacity", type=int, default=None)
    p.add_argument("--retry-after", type=float, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--config", default=None, help="ServerConfig fields as JSON (faults, scripts, ...)")
    a = p.parse_args(argv)
    fields: dict[str, Any] = json.loads(a.config) if a.config else {}
    for name in ("latency", "capacity", "retry_after", "seed"):
        if getattr(a, name) is not None:
            fields[name] = getattr(a, name)
    srv = TestServer(ServerConfig(**fields), host=a.host, port=a.port)
    srv.start()
    print(f"READY {srv.url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        if os.getppid() == 1:  # parent died: do not linger
            break
    srv.stop()
    time.sleep(0)


if __name__ == "__main__":
    main()
