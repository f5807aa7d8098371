"""The export assets' files (sft_exports, rl_exports, day_exports) under the export root.

A stage returns its files as content (stages/output.ExportFiles: path relative to the export root ->
bytes: <day>/<toolset>/... for a partition's exports, <day>/... for the day's); this IO manager
writes them, each atomically (export/files.py), so no stage touches the file system. Loads read a
partition's directory back (its files only, not the toolsets' directories under a day)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from funreason_pipeline.export.files import read_files, write_files
from funreason_pipeline.stages.output import ExportFiles


def _directory(pdef: dg.PartitionsDefinition, key: str | dg.MultiPartitionKey) -> str:
    """A partition's directory under the root: <day>/<toolset> (day x toolset) or <day>."""
    if isinstance(pdef, dg.MultiPartitionsDefinition):
        mk = key if isinstance(key, dg.MultiPartitionKey) else pdef.get_partition_key_from_str(key)
        return f"{mk.keys_by_dimension['day']}/{mk.keys_by_dimension['toolset']}"
    return str(key)


class ExportsIOManager(dg.ConfigurableIOManager):
    """Export files in and out of the export root (`FUNREASON_EXPORTS`, default data/exports)."""

    root: str = Field(description="The export root: a day's files go under <root>/<day>/.")

    def handle_output(self, context: dg.OutputContext, obj: ExportFiles) -> None:
        if not isinstance(obj, ExportFiles):
            raise dg.DagsterInvariantViolationError(
                f"{context.asset_key.to_user_string()}: the exports IO manager stores ExportFiles, not {type(obj)}")
        if context.has_asset_partitions:  # every file belongs to one of the output's partitions
            dirs = {_directory(context.asset_partitions_def, k) for k in context.asset_partition_keys}
            stray = sorted(p for p in obj.files if p.rsplit("/", 1)[0] not in dirs)
            if stray:
                raise ValueError(f"{context.asset_key.to_user_string()}: {stray[:3]} fall outside the output's "
                                 f"partitions: refusing to write them")
        paths = write_files(self.root, obj.files)
        folders = sorted({str(p.parent) for p in paths})
        context.add_output_metadata({
            "files": len(paths), "bytes": sum(len(b) for b in obj.files.values()),
            "exports": dg.MetadataValue.path(folders[0]) if len(folders) == 1 else dg.MetadataValue.json(folders)})

    def load_input(self, context: dg.InputContext) -> ExportFiles:
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else []
        files: dict[str, bytes] = {}
        for key in keys:
            files.update(read_files(Path(self.root), _directory(context.asset_partitions_def, key)))
        return ExportFiles(files)
