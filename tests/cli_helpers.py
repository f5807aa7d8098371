"""Running `python -m funreason_pipeline.cli` as a user would, from tests."""

import os
import re
import shutil
import subprocess
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any FUNREASON_* or DAGSTER_* setting of the developer's, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FUNREASON_", "DAGSTER_"))}
    return {**env, **extra}


def run_docs_verbatim(docs: Path, clone: Path, root: Path, links: tuple[str, ...] = (".venv",)) -> list[str]:
    """Every `<!-- run -->` bash block of a docs page, as written, in `clone`: a copy of the tracked
    files (a fresh clone, without tests/ and bench/) plus symlinks to this checkout's installed
    `links`, the page's `<!-- file: path -->` blocks written first (what the reader writes), no
    FUNREASON_* or DAGSTER_* set. Returns each block's stdout; a failing block fails the test."""
    tracked = subprocess.run(["git", "ls-files"], cwd=root, capture_output=True, text=True, check=True).stdout
    for rel in tracked.splitlines():
        if (root / rel).is_file() and not rel.startswith(("tests/", "bench/")):
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / rel, clone / rel)
    for link in links:
        (clone / link).symlink_to(root / link)
    text = docs.read_text()
    for path, body in re.findall(r"<!-- file: (\S+) -->\n```\w+\n(.*?)```", text, re.DOTALL):
        (clone / path).parent.mkdir(parents=True, exist_ok=True)
        (clone / path).write_text(body)
    outputs = []
    for block in re.findall(r"<!-- run -->\n```bash\n(.*?)```", text, re.DOTALL):
        proc = subprocess.run(["bash", "-e", "-c", block], cwd=clone, env=clean_env(), capture_output=True,
                              text=True, timeout=600, check=False)
        assert proc.returncode == 0, f"{block}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        outputs.append(proc.stdout)
    return outputs
