"""Resources: one DuckDB file for the IO manager and the side tables (rejections, llm_calls)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from funreason_pipeline import config, storage
from funreason_pipeline.defs.io_manager import PolarsDuckDBIOManager
from funreason_pipeline.models import Rejection


class Store(dg.ConfigurableResource):
    """Side tables several stages write; the same file as the IO manager's."""

    database: str

    def replace_rejections(self, stage: str, day: date | None, toolset: str, rejections: list[Rejection]) -> int:
        return storage.replace_rejections(
            stage, day, toolset, [r.model_dump() for r in rejections], path=self.database
        )


def build_resources(database: str | None = None) -> dict:
    db = str(database or config.db_path())
    return {"io_manager": PolarsDuckDBIOManager(database=db, schema="main"), "store": Store(database=db)}


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=build_resources())
