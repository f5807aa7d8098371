"""Shared helpers for the LLM layer tests: fast client options, request factories, a batch sent the
way the pipeline sends it, a free port."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

from funreason_pipeline.llm import BatchResult, ClientOptions, LLMClient, LLMRequest, LLMSettings
from funreason_pipeline.llm.client import run_sync

# Short waits so that retries, backoff and flushes fit in a fast test suite.
FAST = {
    "backoff_base_s": 0.02,
    "backoff_max_s": 0.2,
    "max_retry_after_s": 1.0,
    "cache_flush_interval_s": 0.05,
}


def options(**kw) -> ClientOptions:
    return ClientOptions(**{**FAST, **kw})


def make_client(
    url: str,
    db: Path | None,
    concurrency: int = 8,
    timeout_s: float = 5.0,
    api_key: str | None = None,
    **opts,
) -> LLMClient:
    settings = LLMSettings.for_endpoint(url, concurrency=concurrency, api_key=api_key, timeout_s=timeout_s)
    return LLMClient(settings, db_path=db, cache=db is not None, options=options(**opts))


def run_batch(client: LLMClient, requests: Sequence[LLMRequest]) -> BatchResult:
    """`requests` on one session of `client`, as the pipeline sends them (agents/flow_runner.py: one
    session, a coroutine per request awaiting `call`, `run_sync` from sync code): results in input
    order, the session's stats, and EndpointUnavailableError if a breaker refused requests."""

    async def go() -> BatchResult:
        async with client.session() as s:
            results = await asyncio.gather(*(s.call(r) for r in requests))
        batch = BatchResult(results=results, stats=s.snapshot())
        s.raise_if_dead(batch)
        return batch

    return run_sync(go())


def reqs(n: int, role: str = "querying", tag: str = "q", prompt_version: str = "v1") -> list[LLMRequest]:
    return [
        LLMRequest(
            role=role,
            item_id=f"{tag}-{i}",
            messages=[
                {"role": "system", "content": f"You write requests. [{role}]"},
                {"role": "user", "content": f"{tag} item {i}"},
            ],
            prompt_version=prompt_version,
        )
        for i in range(n)
    ]


def free_port() -> int:
    """A port with nothing listening on it (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def comparable(result) -> tuple:
    """What must match between a cached/rerun result and a fresh one (not latency or the cached flag)."""
    if result.ok:
        return (
            result.item_id,
            result.request_hash,
            result.content,
            tuple((c.name, c.arguments) for c in result.tool_calls),
            result.finish_reason,
            result.input_tokens,
            result.output_tokens,
        )
    return (result.item_id, result.request_hash, "FAILED", result.kind)
