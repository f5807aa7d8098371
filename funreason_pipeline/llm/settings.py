"""LLM settings per role, read from environment variables.

All roles share `FUNREASON_LLM_BASE_URL`, `FUNREASON_LLM_API_KEY` and `FUNREASON_LLM_MODEL`; any role can
override them with `FUNREASON_LLM_BASE_URL_<ROLE>`, `FUNREASON_LLM_API_KEY_<ROLE>`,
`FUNREASON_LLM_MODEL_<ROLE>` (ROLE in TOOLING, QUERYING, REASONING, CRITIC). Sampling and timeouts:
`FUNREASON_LLM_TEMPERATURE[_<ROLE>]`, `FUNREASON_LLM_MAX_TOKENS[_<ROLE>]`, `FUNREASON_LLM_TIMEOUT[_<ROLE>]`
(seconds). Tail latency: `FUNREASON_LLM_HEDGE_FACTOR[_<ROLE>]` (default 2; 0 = no hedging),
`FUNREASON_LLM_HEDGE_MIN_S[_<ROLE>]` (default 1 s), `FUNREASON_LLM_HEDGE_MAX[_<ROLE>]` (default 2).
`FUNREASON_LLM_CONTEXT_TOKENS[_<ROLE>]` (default 32768): the prompt budget (agents/budget.py). `FUNREASON_LLM_CONCURRENCY` (default 32) bounds the requests in flight per endpoint.
`FUNREASON_LLM_TOOL_CALLING[_<ROLE>]` (`native`, the default, or `json`): how the reasoner calls tools,
with OpenAI `tools` / `tool_calls` or, for endpoints without tool calling, one JSON answer per step.

A role without a base URL is **offline**: `settings.is_offline(role)`; the offline agents take over.

The API key is a `SecretStr`: it never shows in repr/str/model_dump, and it is not part of
`fingerprint()` nor of any request hash.

`ClientOptions` are the client's knobs set in code, not the environment: retry budget and backoff,
limiter, breaker, cache flushes, HTTP backend, hedging budget (tests shorten them).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["OFFLINE_MODEL", "ROLE_DEFAULTS", "ClientOptions", "LLMSettings", "Role", "RoleSettings"]

OFFLINE_MODEL = "offline"
ENV_PREFIX = "FUNREASON_LLM_"


class Role(StrEnum):
    TOOLING = "tooling"
    QUERYING = "querying"
    REASONING = "reasoning"
    CRITIC = "critic"


# temperature, max_tokens, timeout_s: creative roles sample warmer, the critic judges at 0,
# reasoning gets room for a chain of thought (and time for it).
ROLE_DEFAULTS: dict[Role, tuple[float, int, float]] = {
    Role.TOOLING: (0.7, 2048, 120.0),
    Role.QUERYING: (0.8, 1024, 120.0),
    Role.REASONING: (0.6, 4096, 300.0),
    Role.CRITIC: (0.0, 1024, 120.0),
}


def _canonical(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class RoleSettings(BaseModel):
    """One role's endpoint, model and sampling parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str = OFFLINE_MODEL
    temperature: float = Field(0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(2048, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    # tail latency (hedging.first_reply): an answer slower than hedge_factor x the role's
    # recent p95 (and at least hedge_min_s) gets a second copy; the first to finish wins. 0 = off.
    # 2, not 3: a stalled copy holds its attempt's slot until it is hedged, so under E3's 10% hangs
    # 3 x p95 cost ~15% more wall time (bench/bench_tail.py); the copies hold no slot and come from
    # a budget (ClientOptions.hedge_budget), so the few healthy answers slower than 2 x p95 cost
    # little (The Tail at Scale hedges at 1 x p95)
    hedge_factor: float = Field(2.0, ge=0.0)
    hedge_min_s: float = Field(1.0, ge=0.0)
    hedge_max: int = Field(2, ge=0)  # copies beyond the first on the wire at once, per attempt (rolling)
    # the model's context window: prompts that do not fit are fitted or rejected, never cut
    context_tokens: int = Field(32768, gt=0)
    # how the reasoner calls tools: OpenAI `tools` / `tool_calls` (what vLLM, SGLang and hosted APIs
    # serve, and the shape a trained model runs in), or one JSON answer per step for endpoints
    # without tool calling
    tool_calling: Literal["native", "json"] = "native"

    def prompt_budget_chars(self) -> int:
        """Characters a prompt may have: the window minus the answer's room, at a cautious 3 chars per
        token (JSON and identifiers tokenize worse than prose's ~4)."""
        return max(0, self.context_tokens - self.max_tokens) * 3

    @field_validator("base_url")
    @classmethod
    def _norm_url(cls, v: str | None) -> str | None:
        v = (v or "").strip()
        return v.rstrip("/") or None

    @property
    def is_offline(self) -> bool:
        return self.base_url is None

    @property
    def model_label(self) -> str:
        """What to write in a row's `model` column: the model, or "offline"."""
        return OFFLINE_MODEL if self.is_offline else self.model

    def sampling(self) -> dict[str, float | int]:
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}

    def fingerprint(self) -> str:
        """A short hash of what determines this role's outputs (no API key): for versioning."""
        what: dict[str, Any] = {
            "model": self.model_label,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        if self.tool_calling != "native":  # the default leaves the fingerprints of earlier runs as they were
            what["tool_calling"] = self.tool_calling
        return hashlib.sha256(_canonical(what)).hexdigest()[:16]


class LLMSettings(BaseModel):
    """Settings for the four roles plus the per-endpoint concurrency bound."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    roles: dict[Role, RoleSettings]
    concurrency: int = Field(32, gt=0)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LLMSettings:
        env = os.environ if env is None else env

        def get(name: str, role: Role | None = None) -> str | None:
            if role is not None:
                v = env.get(f"{ENV_PREFIX}{name}_{role.name}")
                if v not in (None, ""):
                    return v
            v = env.get(f"{ENV_PREFIX}{name}")
            return v if v not in (None, "") else None

        def num(name: str, role: Role, default: float, conv: type) -> float | int:
            raw = get(name, role)
            if raw is None:
                return default
            try:
                return conv(raw)
            except ValueError:
                raise ValueError(f"{ENV_PREFIX}{name}[_{role.name}] must be a number, got {raw!r}") from None

        def tool_calling(role: Role) -> str:
            raw = (get("TOOL_CALLING", role) or "native").strip().lower()
            if raw not in ("native", "json"):
                raise ValueError(f"{ENV_PREFIX}TOOL_CALLING[_{role.name}] must be native or json, got {raw!r}")
            return raw

        roles = {}
        for role in Role:
            temp, max_tokens, timeout = ROLE_DEFAULTS[role]
            base_url = get("BASE_URL", role)
            model = get("MODEL", role)
            if base_url and not model:
                raise ValueError(
                    f"role {role.value}: a base URL is set but no model; set {ENV_PREFIX}MODEL "
                    f"or {ENV_PREFIX}MODEL_{role.name}"
                )
            key = get("API_KEY", role)
            roles[role] = RoleSettings(
                role=role,
                base_url=base_url,
                api_key=SecretStr(key) if key else None,
                model=model if base_url else OFFLINE_MODEL,
                temperature=num("TEMPERATURE", role, temp, float),
                max_tokens=num("MAX_TOKENS", role, max_tokens, int),
                timeout_s=num("TIMEOUT", role, timeout, float),
                hedge_factor=num("HEDGE_FACTOR", role, 2.0, float),
                hedge_min_s=num("HEDGE_MIN_S", role, 1.0, float),
                hedge_max=num("HEDGE_MAX", role, 2, int),
                context_tokens=num("CONTEXT_TOKENS", role, 32768, int),
                tool_calling=tool_calling(role),
            )
        conc = env.get(f"{ENV_PREFIX}CONCURRENCY") or "32"
        try:
            concurrency = int(conc)
        except ValueError:
            raise ValueError(f"{ENV_PREFIX}CONCURRENCY must be an integer, got {conc!r}") from None
        return cls(roles=roles, concurrency=concurrency)

    @classmethod
    def for_endpoint(
        cls,
        base_url: str | None,
        model: str = "test-model",
        api_key: str | None = None,
        concurrency: int = 32,
        **overrides: Any,
    ) -> LLMSettings:
        """All four roles on one endpoint (tests, benchmarks, scripts). `overrides`: temperature,
        tool_calling, ..."""
        roles = {}
        for role in Role:
            temp, max_tokens, timeout = ROLE_DEFAULTS[role]
            fields: dict = {"temperature": temp, "max_tokens": max_tokens, "timeout_s": timeout, **overrides}
            roles[role] = RoleSettings(
                role=role,
                base_url=base_url,
                api_key=SecretStr(api_key) if api_key else None,
                model=model if base_url else OFFLINE_MODEL,
                **fields,
            )
        return cls(roles=roles, concurrency=concurrency)

    def role(self, role: Role | str) -> RoleSettings:
        return self.roles[Role(role)]

    def is_offline(self, role: Role | str) -> bool:
        return self.role(role).is_offline

    def fingerprint(self, role: Role | str) -> str:
        return self.role(role).fingerprint()


class ClientOptions(BaseModel):
    """Retry, rate-limit, breaker and cache knobs (defaults suit real endpoints; tests shorten them)."""

    # tries for 5xx / timeout / connection / bad body. A failed request can end a whole trajectory, and
    # at R1's mix (~30% of the attempts that count fail) 4 tries lost 0.9% of requests, 8 lose 1e-4;
    # a dead endpoint is the breaker's job (25 failures in a row), not this budget's
    max_attempts: int = Field(8, ge=1)
    max_rate_limit_retries: int = Field(30, ge=0)  # extra tries for 429/503
    backoff_base_s: float = 0.5
    # the limiter bounds the load retries put on an endpoint, so backoff only spaces tries out over a
    # short outage: 8 tries at 0.5 s doubling to 5 s span ~17 s (4 up to 20 s spanned ~2.6 s), while
    # a 20 s cap let the unluckiest requests of a run (6-7 failures, a few per 10,000) wait 35-55 s
    backoff_max_s: float = 5.0
    max_retry_after_s: float = 60.0
    aimd_decrease: float = Field(0.95, gt=0, lt=1)  # P3: 0.95 -> ~0.91 of capacity, 0.9 -> ~0.86
    aimd_increase: float = Field(1.0, gt=0)
    # no success for this many endpoint failures in a row: dead (limiter.py: why 25, not 10)
    breaker_failures: int = Field(25, ge=1)
    breaker_connect_failures: int = Field(3, ge=1)
    breaker_cooldown_s: float = 30.0
    raise_on_circuit_open: bool = True  # raise EndpointUnavailableError after the batch
    # DuckDB flushes: None = 15 s, since every response is journalled at once (0.25 s if no journal)
    cache_flush_interval_s: float | None = None
    # a flush costs ~50 ms of CPU however small (a DuckDB connection opened and closed) plus ~20 us a row:
    # at 512 responses/s, 1024 rows were flushed every 2 s; the journal keeps the pending rows safe
    cache_flush_max_rows: int = 4096
    cache_journal: bool = True
    send_role_header: bool = True  # X-Funreason-Role: lets the test server script answers per role
    max_live_tasks: int = 4096  # bounds memory for huge batches (tasks, not concurrency)
    # "auto": aiohttp transport if installed (about 1/3 less CPU per request than httpx2 at C=64, and
    # it scales to C=256) unless a proxy is configured; else httpx2 with its pool split in shards
    http_backend: Literal["auto", "aiohttp", "httpx"] = "auto"
    pool_shard_size: int = Field(32, ge=1)  # httpx2 only: connections per AsyncOpenAI shard
    # hedging (per-role factor / floor / count are RoleSettings): answers needed before the p95 counts,
    # and how often an unanswered request looks again while the p95 is not known yet
    hedge_min_samples: int = Field(20, ge=1)
    hedge_poll_s: float = Field(0.5, gt=0)
    # hedge copies on the wire at once, as a share of the concurrency (they hold no limiter slot):
    # bounds the extra load if a server stalls everything; 0 = no hedging
    hedge_budget: float = Field(0.5, ge=0)
