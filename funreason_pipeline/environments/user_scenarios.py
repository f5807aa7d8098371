"""Import paths of user classes and generators, and where a class's initial states come from (a
seeded generator or a JSON/JSONL file of examples), deterministic in the seed."""

from __future__ import annotations

import copy
import importlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from funreason_pipeline.environments.base import EnvironmentConfigError, to_json_value

_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
SCENARIO_FILE_SUFFIXES = (".json", ".jsonl")


def is_import_path(ref: str) -> bool:
    """`package.module:Name`, the form the toolset config uses for user classes and generators."""
    return bool(_IMPORT_PATH.match(ref))


def import_object(ref: str, what: str) -> Any:
    """Import `package.module:Name`; any failure is a config error saying what was looked for."""
    if not is_import_path(ref):
        raise EnvironmentConfigError(f"{what} {ref!r} is not an import path of the form package.module:Name")
    module_name, attr = ref.split(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, but also whatever the module raises while importing
        raise EnvironmentConfigError(
            f"{what} {ref!r}: module {module_name!r} does not import: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise EnvironmentConfigError(f"{what} {ref!r}: module {module_name!r} has no {attr!r}") from None


class ScenarioSource:
    """Where a class's initial states come from: deterministic in the seed."""

    def __init__(self, class_ref: str, ref: str | None) -> None:
        self.class_ref = class_ref
        self.ref = ref
        self._generator: Callable[[int], Any] | None = None
        self._examples: list[dict[str, Any]] = []
        if ref is None:
            return
        if is_import_path(ref):
            fn = import_object(ref, f"{class_ref}: scenario generator")
            if not callable(fn):
                raise EnvironmentConfigError(f"{class_ref}: scenario generator {ref!r} is not callable")
            self._generator = fn
        else:
            self._examples = _read_scenarios(class_ref, Path(ref))

    @property
    def examples(self) -> list[dict[str, Any]]:
        return self._examples

    def generate(self, seed: int) -> dict[str, Any]:
        if self._generator is not None:
            try:
                raw = self._generator(seed)
            except Exception as exc:
                raise EnvironmentConfigError(
                    f"{self.class_ref}: scenario generator {self.ref} failed for seed {seed}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            return _as_scenario(self.class_ref, raw, f"generator {self.ref} (seed {seed})")
        if self._examples:
            return copy.deepcopy(self._examples[seed % len(self._examples)])
        return {}  # no source: the class starts from what its constructor sets up


def _as_scenario(class_ref: str, raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise EnvironmentConfigError(f"{class_ref}: {what} gave a {type(raw).__name__}, not a dict")
    try:
        return to_json_value(raw)  # scenarios are stored as JSON and replayed from it
    except (TypeError, ValueError) as exc:
        raise EnvironmentConfigError(f"{class_ref}: {what} is not JSON-serialisable: {exc}") from exc


def _read_scenarios(class_ref: str, path: Path) -> list[dict[str, Any]]:
    where = f"scenarios file {path}"
    if not path.is_file():
        raise EnvironmentConfigError(f"{class_ref}: {where}: file not found")
    try:
        text = path.read_text()
        if path.suffix == ".jsonl":
            items = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            items = json.loads(text)
    except (OSError, json.JSONDecodeError) as exc:
        raise EnvironmentConfigError(f"{class_ref}: {where}: not valid JSON: {exc}") from exc
    if not isinstance(items, list) or not items:
        raise EnvironmentConfigError(f"{class_ref}: {where}: expected a non-empty list of scenarios")
    return [_as_scenario(class_ref, item, f"{where} entry #{i}") for i, item in enumerate(items)]
