"""Resources: one DuckDB file for the IO managers (asset tables, the `rejections` table) and the LLM
cache (llm_calls), and the export root the exports IO manager writes the export assets' files under."""

from __future__ import annotations

import os

import dagster as dg
import polars as pl

from funreason_pipeline import config, processes, storage
from funreason_pipeline.defs.exports_io import ExportsIOManager
from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager
from funreason_pipeline.defs.rejections_io import RejectionsIOManager
from funreason_pipeline.llm import LLMClient, LLMSettings


class Store(dg.ConfigurableResource):
    """The store itself (the same file as the IO managers'), for what is not an asset's input: the LLM
    cache's location, the graph tables of every toolset, and the `sample_lineage` view."""

    database: str

    def graph_tables(self) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(tool_catalog, api_graph) of every toolset: the day export reads the day's toolsets' rows (as
        inputs they would make every toolset's graph a dependency of every day)."""
        return storage.read_table("tool_catalog", self.database), storage.read_table("api_graph", self.database)

    def create_lineage_view(self) -> None:
        storage.create_lineage_view(self.database)


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
    return {"io_manager": PolarsDuckDBIOManager(database=db, schema="main"),
            "rejections_io_manager": RejectionsIOManager(database=db),
            "exports_io_manager": ExportsIOManager(root=str(config.exports_dir(db))),
            "store": Store(database=db), "llm": llm or LLMResource(), "processes": Processes()}


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
