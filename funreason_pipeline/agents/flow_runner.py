"""Running the flow from sync code (a Dagster asset, a test): one event loop, one LLM session for
every partition given, and the online/offline choice per phase from the client's settings."""

from __future__ import annotations

from collections.abc import Callable

from funreason_pipeline.agents.flow import FlowProgress, Outcome, Partition, run_flow
from funreason_pipeline.llm.client import EndpointUnavailableError, run_sync
from funreason_pipeline.llm.models import BatchResult

PHASE2_ROLES = ("tooling", "querying")
PHASE3_ROLES = ("reasoning", "critic")


def online(client, roles: tuple[str, ...]) -> bool:
    """A phase uses the model when all of its roles have an endpoint; otherwise it runs offline."""
    return client is not None and not any(client.settings.is_offline(r) for r in roles)


def run_partitions(parts: list[Partition], client=None, k_max: int = 3, log: Callable[[str], None] | None = None,
                   progress: FlowProgress | None = None, max_steps: int = 8) -> dict[str, Outcome]:
    """Phases II and III over `parts` at once. Raises EndpointUnavailableError (after every
    answer received is cached) when an endpoint was declared dead: the caller must not take the
    refused requests for final failures; a rerun sends only what is missing."""
    o2, o3 = online(client, PHASE2_ROLES), online(client, PHASE3_ROLES)

    async def go() -> dict[str, Outcome]:
        session = client.session() if (o2 or o3) else None
        try:
            out = await run_flow(parts, session, online2=o2, online3=o3, k_max=k_max, progress=progress,
                                 report=log, max_steps=max_steps)
        finally:
            if session is not None:
                await session.aclose()
        if session is not None:
            dead = session.dead_message()
            if dead and client.options.raise_on_circuit_open:
                raise EndpointUnavailableError(dead, BatchResult(results=[], stats=session.snapshot()))
        return out

    return run_sync(go())
