"""One definition of the day (defs/day.py): the nightly path (the run requests nightly_day_sensor
yields, executed one step after another as the daemon would launch them) and `cli demo`'s path
(run_demo -> run_day) make the same rows, table by table, and the same per-toolset export files,
for a small subset of toolsets; and the CLI makes a day in a handful of runs, not four per toolset."""

import hashlib
import importlib.util
import os
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("crash_points", ROOT / "scripts" / "crash_points.py")
cp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cp)

DAY = "2026-06-01"
TOOLSETS = ["math", "messages"]  # neighbours in partition order: one range, so one run per step
TRAJECTORIES = 2


def _files(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _nightly(instance: dg.DagsterInstance, cfg: dict) -> list[dg.DagsterRun]:
    """What the daemon does with the sensor's requests, in this process: launch each due run, wait,
    ask again, until nothing of the day is due."""
    from funreason_pipeline.definitions import defs
    from funreason_pipeline.defs.day import next_requests

    d = defs()
    runs = []
    for _ in range(6):  # graphs, Phase I, the rest; more would be a loop that never settles
        due = next_requests(instance, DAY, TOOLSETS, cfg)
        if isinstance(due, str):
            return runs
        for r in due:
            result = d.resolve_job_def(r.job_name).execute_in_process(
                run_config=r.run_config, instance=instance, tags=r.tags, partition_key=r.partition_key,
                asset_selection=r.asset_selection, raise_on_error=False)
            assert result.success, r
            runs.append(result.dagster_run)
    pytest.fail("the nightly requests did not settle")


@pytest.mark.heavy  # two small days end to end
def test_nightly_requests_and_cli_demo_make_the_same_rows(tmp_path, monkeypatch):
    from funreason_pipeline.cli import run_demo
    from funreason_pipeline.defs.day import RANGE_START, day_run_config

    for k in [k for k in os.environ if k.startswith("FUNREASON_LLM_")]:
        monkeypatch.delenv(k)
    cfg = day_run_config(trajectories=TRAJECTORIES, workers=2)
    made = {}
    for path in ("cli", "nightly"):
        db = tmp_path / path / "funreason.duckdb"
        monkeypatch.setenv("FUNREASON_DB", str(db))
        monkeypatch.setenv("FUNREASON_EXPORTS", str(tmp_path / path / "exports"))
        with dg.instance_for_test() as inst:
            if path == "cli":
                assert run_demo(DAY, TOOLSETS, instance=inst, workers=2,
                                run_config=day_run_config(trajectories=TRAJECTORIES))
            else:
                runs = _nightly(inst, cfg)
                # graphs, Phase I, the rest: each ONE run over both toolsets
                assert [RANGE_START in r.tags for r in runs] == [True] * 3
            all_runs = inst.get_runs()
        made[path] = (cp.snapshot(db), _files(tmp_path / path / "exports" / DAY), len(all_runs))
    cli_rows, cli_files, cli_runs = made["cli"]
    night_rows, night_files, _ = made["nightly"]
    assert all(cli_rows[t] for t in ("trajectories", "queries", "cot_traces", "dialogues", "sft_samples",
                                     "rl_samples")), {t: len(v) for t, v in cli_rows.items()}
    assert night_rows == cli_rows, cp.diff(night_rows, cli_rows)
    # the per-toolset exports are the same bytes; the CLI also made the day's combined export (the
    # nightly one waits for day_export's automation condition: every toolset of the day)
    per_toolset = {f: h for f, h in cli_files.items() if f.split("/")[0] in TOOLSETS}
    assert per_toolset and {f: h for f, h in night_files.items() if f.split("/")[0] in TOOLSETS} == per_toolset
    assert cli_runs == 4  # graphs, Phase I, the rest, the export: not 4 x toolsets
