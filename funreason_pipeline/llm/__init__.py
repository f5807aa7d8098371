"""LLM layer: settings per role, a client whose sessions send requests (bounded, adaptive, cached),
structured outputs. Which module does what: client.py's docstring.

Public API (see docs in each module):
    LLMSettings.from_env(), Role, RoleSettings          settings per role; is_offline(role); fingerprint()
    LLMClient(settings, db_path=...).session()          `await session.call(request)` from many coroutines
    LLMClient(...).run(requests)                        a whole batch (benchmarks) -> BatchResult
    LLMRequest / LLMResponse / LLMFailure / BatchStats   the data contract
    run_structured(client, requests, parsers)            parse + one repair retry -> StructuredBatch
"""

from funreason_pipeline.llm.cache import LLMCache, request_hash
from funreason_pipeline.llm.client import LLMClient
from funreason_pipeline.llm.models import (
    BatchResult,
    BatchStats,
    FailureKind,
    LLMFailure,
    LLMRequest,
    LLMResponse,
    LLMResult,
    ToolCall,
)
from funreason_pipeline.llm.session import EndpointUnavailableError, LLMSession
from funreason_pipeline.llm.settings import OFFLINE_MODEL, ClientOptions, LLMSettings, Role, RoleSettings
from funreason_pipeline.llm.structured import (
    ParsedResult,
    StructuredBatch,
    acall_structured,
    arun_structured,
    parse_response,
    repair_request,
    run_structured,
)

__all__ = [
    "OFFLINE_MODEL",
    "BatchResult",
    "BatchStats",
    "ClientOptions",
    "EndpointUnavailableError",
    "FailureKind",
    "LLMCache",
    "LLMClient",
    "LLMFailure",
    "LLMRequest",
    "LLMResponse",
    "LLMResult",
    "LLMSession",
    "LLMSettings",
    "ParsedResult",
    "Role",
    "RoleSettings",
    "StructuredBatch",
    "ToolCall",
    "acall_structured",
    "arun_structured",
    "parse_response",
    "repair_request",
    "request_hash",
    "run_structured",
]
