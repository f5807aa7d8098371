"""A snapshot of every asset's spec: key, partitions, upstream keys with their partition mappings,
group, kinds, owners, pool, checks (with `blocking`), automation condition and code version. A change
to the asset graph shows up here as a diff to review, not by surprise in a run. Code versions read no
environment (the LLM stages' hash their prompt files only; the model is recorded at run time), so a
prompt edit shows up here too.

After an intended change: FUNREASON_UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/test_asset_specs.py,
then review and commit tests/snapshots/asset_specs.json.
"""

import json
import os
from pathlib import Path

import dagster as dg

SNAPSHOT = Path(__file__).parent / "snapshots" / "asset_specs.json"


def _partitions(p) -> dict | None:
    """The partitioning's shape; not its static keys (toolsets.yaml grows, the graph does not change)."""
    if p is None:
        return None
    if isinstance(p, dg.MultiPartitionsDefinition):
        return {"multi": {d.name: _partitions(d.partitions_def) for d in p.partitions_defs}}
    if isinstance(p, dg.TimeWindowPartitionsDefinition):
        return {"time": p.cron_schedule, "start": p.start.date().isoformat(), "end_offset": p.end_offset}
    return {"kind": type(p).__name__}


def asset_specs() -> dict:
    from funreason_pipeline.definitions import defs

    d = defs()
    graph = d.resolve_asset_graph()
    checks: dict[str, list] = {}
    for a in d.assets or []:
        for spec in getattr(a, "check_specs", []):
            checks.setdefault(spec.asset_key.to_user_string(), []).append(
                {"name": spec.name, "blocking": spec.blocking})
    out = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        name = key.to_user_string()
        out[name] = {
            "partitions": _partitions(node.partitions_def),
            "deps": {p.to_user_string(): type(graph.get_partition_mapping(key, p)).__name__
                     for p in sorted(node.parent_keys, key=lambda k: k.to_user_string())},
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "pools": sorted(node.pools or []),
            "checks": sorted(checks.get(name, []), key=lambda c: c["name"]),
            "automation_condition": node.automation_condition.get_label() if node.automation_condition else None,
            "code_version": node.code_version,
        }
    return out


def test_every_asset_spec_matches_the_snapshot():
    specs = asset_specs()
    if os.environ.get("FUNREASON_UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(json.dumps(specs, indent=2, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    changed = sorted(k for k in set(specs) | set(expected) if specs.get(k) != expected.get(k))
    assert not changed, f"asset specs changed: {changed}; if intended, update the snapshot (see the module doc)\n" + \
        "\n".join(f"{k}:\n  was {expected.get(k)}\n  now {specs.get(k)}" for k in changed)


def test_code_versions_do_not_depend_on_the_llm_environment():
    """A fresh interpreter with every LLM role on an endpoint sees the same code versions as this one
    (which may have none): the model is recorded at run time, not in the code version."""
    import subprocess
    import sys

    probe = ("import json; from funreason_pipeline.definitions import defs; g = defs().resolve_asset_graph(); "
             "print(json.dumps({k.to_user_string(): g.get(k).code_version for k in g.get_all_asset_keys()}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FUNREASON_LLM_")}
    env.update(FUNREASON_LLM_BASE_URL="http://127.0.0.1:9/v1", FUNREASON_LLM_MODEL="some-other-model",
               FUNREASON_LLM_TEMPERATURE="0.9")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    online = json.loads(out.stdout.strip().splitlines()[-1])
    assert online == {k: v["code_version"] for k, v in asset_specs().items()}
    assert online["queries"].startswith("queries-") and online["cot_traces"].startswith("cot-")
