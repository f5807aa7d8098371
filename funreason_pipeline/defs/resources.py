"""Resources: one DuckDB file for the IO manager and the side tables (rejections, llm_calls)."""

from __future__ import annotations

import os
from datetime import date

import dagster as dg

from funreason_pipeline import config, processes, storage
from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager
from funreason_pipeline.llm import LLMClient, LLMSettings
from funreason_pipeline.models import Rejection


class Store(dg.ConfigurableResource):
    """Side tables several stages write (the same file as the IO manager's), and the export root the
    SFT, RL and day export stages write their files under."""

    database: str
    exports: str

    def replace_rejections(self, stage: str, day: date | None, toolset: str, rejections: list[Rejection]) -> int:
        return storage.replace_rejections(
            stage, day, toolset, [r.model_dump() for r in rejections], path=self.database
        )


class LLMResource(dg.ConfigurableResource):
    """The LLM endpoints of the four roles, injected into the LLM assets.

    Unset fields come from the FUNREASON_LLM_* environment variables (read when the run starts, not
    when the code is imported; llm/settings.py lists them, per role); set ones override the
    defaults of all roles. In deployment config, pass secrets as `dg.EnvVar("...")` so they stay in
    the environment; tests pass a test server's URL directly instead of patching the environment."""

    base_url: str | None = None
    model: str | None = None
    api_key: str | None = None
    concurrency: int | None = None
    tool_calling: str | None = None  # the reasoner's request shape: "native" (tools) or "json"

    def settings(self) -> LLMSettings:
        env = dict(os.environ)
        for field, var in (("base_url", "BASE_URL"), ("model", "MODEL"), ("api_key", "API_KEY"),
                           ("concurrency", "CONCURRENCY"), ("tool_calling", "TOOL_CALLING")):
            value = getattr(self, field)
            if value is not None:
                env[f"FUNREASON_LLM_{var}"] = str(value)
        return LLMSettings.from_env(env)

    def client(self, database: str) -> LLMClient | None:
        """One client for the run (its cache in `database`); None when every role is offline."""
        settings = self.settings()
        if all(settings.is_offline(r) for r in ("tooling", "querying", "reasoning", "critic")):
            return None
        return LLMClient(settings, db_path=database)


class Processes(dg.ConfigurableResource):
    """How many processes a step spreads its partitions over when its run covers several (a day's
    toolsets in one run): `cli demo --workers`, the nightly run's config."""

    workers: int = 1

    def in_process(self, calls: int) -> bool:
        return self.workers <= 1 or calls <= 1

    def map(self, fn, calls: list[tuple[tuple, dict]]) -> list:
        return processes.map_calls(fn, calls, self.workers)


def stored_rows_per_toolset(tables: tuple[str, ...]) -> dict[tuple[str, str], int]:
    """{(table, toolset): rows} in the pipeline's store (to see a graph the database lost)."""
    return storage.rows_per_toolset(tables)


def build_resources(database: str | None = None, llm: LLMResource | None = None) -> dict:
    db = str(database or config.db_path())
    return {"io_manager": PolarsDuckDBIOManager(database=db, schema="main"), "store": Store(database=db, exports=str(config.exports_dir(db))),
            "llm": llm or LLMResource(), "processes": Processes()}


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
