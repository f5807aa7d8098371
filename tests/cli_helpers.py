"""Running `python -m funreason_pipeline.cli` as a user would, from tests."""

import os


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any FUNREASON_* or DAGSTER_* setting of the developer's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNREASON_", "DAGSTER_"))}
    return {**env, **extra}
