"""A manual check of the verl integration against verl's own code, without torch (which verl needs
and CI does not have): run it with a verl wheel downloaded from PyPI (`pip download --no-deps verl==0.9.1`).

From the wheel it takes verl's real `BaseTool`, `ToolResponse` and tool schema model (files that import
no torch), and, as source text, `ToolAgentLoop._call_tool` and `load_module` / `load_extern_object`
(their modules import torch and ray, so only these functions are executed, verbatim). Then:

1. every entry of the export's `verl_tools.yaml` is validated by verl's schema model and built as
   verl's tool registry builds it (`FunReasonTool` must then subclass verl's `BaseTool`);
2. every row of the export's `rl.parquet` is rolled out through verl's `_call_tool`, one step's calls
   gathered concurrently, with the ground truth's calls: each result must be the recorded one and the
   rollout's world must end in the ground truth's state; a rollout with one argument changed is
   counted where it ends elsewhere and listed where the tool ignored the change;
3. the reward loads both ways verl loads it (`pkg://` and a file path) and scores the ground truth 1.0
   and a row without `extra_info` 0.

Usage: python scripts/verl_contract_check.py --wheel verl-0.9.1-py3-none-any.whl --export data/exports/<day>
Exit status 1 if anything fails.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import contextlib
import copy
import importlib
import io
import json
import logging
import sys
import tempfile
import textwrap
import types
import zipfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import yaml

ROOT = Path(__file__).resolve().parents[1]
TORCH_FREE = ("verl/tools/schemas.py", "verl/tools/base_tool.py", "verl/utils/rollout_trace.py")
RAY_UTILS_STUB = ("import asyncio\n\ndef get_event_loop():\n    try:\n        return asyncio.get_running_loop()\n"
                  "    except RuntimeError:\n        return asyncio.new_event_loop()\n")


def _function_source(source: str, names: set[str]) -> str:
    tree = ast.parse(source)
    found = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in names:
            found[node.name] = textwrap.dedent(ast.get_source_segment(source, node))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", "") in names for t in node.targets):
            found[node.targets[0].id] = ast.get_source_segment(source, node)
    missing = names - set(found)
    if missing:
        raise SystemExit(f"not in the wheel's source: {sorted(missing)} (a verl version this check does not know)")
    return "\n\n".join(found[n] for n in sorted(found, key=lambda n: source.index(found[n])))


def _unpack(wheel: Path, into: Path) -> dict[str, str]:
    with zipfile.ZipFile(wheel) as z:
        for name in TORCH_FREE:
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).write_bytes(z.read(name))
        for pkg in ("verl", "verl/tools", "verl/utils"):
            (into / pkg / "__init__.py").touch()
        (into / "verl/utils/ray_utils.py").write_text(RAY_UTILS_STUB)
        loop = z.read("verl/experimental/agent_loop/tool_agent_loop.py").decode()
        imports = z.read("verl/utils/import_utils.py").decode()
        version = z.read("verl/version/version").decode().strip()
    return {"call_tool": _function_source(loop, {"_call_tool"}),
            "load": _function_source(imports, {"PKG_PATH_PREFIX", "FILE_PATH_PREFIX", "load_module",
                                               "load_extern_object"}),
            "version": version}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, required=True)
    ap.add_argument("--export", type=Path, required=True, help="a directory with rl.parquet and verl_tools.yaml")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="verl-check-"))
    src = _unpack(args.wheel, tmp)
    sys.path.insert(0, str(tmp))
    from verl.tools.base_tool import BaseTool
    from verl.tools.schemas import OpenAIFunctionToolSchema, ToolResponse

    from funreason_pipeline import verl_tool
    from funreason_pipeline.environments.base import to_json_value

    problems: list[str] = []
    notes: list[str] = []
    if verl_tool._Base is not BaseTool:
        problems.append("FunReasonTool does not subclass verl's BaseTool")

    class FunctionTool:  # verl's stateless tool carrier: ours never is one
        pass

    ns: dict[str, Any] = {"json": json, "logger": logging.getLogger("verl"), "ToolResponse": ToolResponse,
                          "FunctionTool": FunctionTool, "normalize_function_tool_return": None, "Any": Any,
                          "FunctionCall": Any, "AgentData": Any}
    exec(src["call_tool"], ns)  # noqa: S102 - verl's own function, from the wheel the user gave
    call_tool = ns["_call_tool"]

    tools = {}
    with contextlib.redirect_stdout(io.StringIO()):  # verl's BaseTool.__init__ prints each schema
        for entry in yaml.safe_load((args.export / "verl_tools.yaml").read_text())["tools"]:
            schema = OpenAIFunctionToolSchema.model_validate(entry["tool_schema"])
            if schema.model_dump(exclude_unset=True, exclude_none=True) != entry["tool_schema"]:
                problems.append(f"verl's schema model drops part of {schema.function.name}")
            module, cls = entry["class_name"].rsplit(".", 1)
            tool = getattr(importlib.import_module(module), cls)(config=entry["config"], tool_schema=schema)
            tools[tool.name] = tool

    class Loop:  # the attributes of ToolAgentLoop that _call_tool reads
        max_tool_response_length = 10**9
        tool_response_truncate_side = "middle"
        def __init__(self):
            self.tools = tools

    async def rollout(row, calls, request_id):
        info = row["extra_info"]
        agent_data = types.SimpleNamespace(request_id=request_id, tools_kwargs=info["tools_kwargs"],
                                           _active_tools={n: tools[n] for n in info["tool_selection"]})
        steps: dict[int, list] = {}
        for c in calls:
            steps.setdefault(c.get("step", 0), []).append(c)
        texts = []
        for k in sorted(steps):
            outs = await asyncio.gather(*[call_tool(Loop(), types.SimpleNamespace(
                name=c["name"], arguments=json.dumps(c["arguments"])), info["tools_kwargs"], agent_data) for c in steps[k]])
            texts += [o[0].text for o in outs]
        world = verl_tool.WORLDS._by_request[request_id].world
        return texts, to_json_value(world.snapshot())

    rows = pq.read_table(args.export / "rl.parquet").to_pylist()
    passed = wrong_caught = wrong_tried = 0
    for i, row in enumerate(rows):
        truth = json.loads(row["reward_model"]["ground_truth"])
        texts, end = asyncio.run(rollout(row, truth["calls"], f"good-{i}"))
        want = [json.dumps(c["result"], ensure_ascii=False) for c in sorted(truth["calls"], key=lambda c: c.get("step", 0))]
        if texts == want and end == truth["end_state"]:
            passed += 1
        else:
            problems.append(f"{row['extra_info']['sample_id']}: results or end state differ")
        bad = copy.deepcopy(truth["calls"])
        changed = next(((c, k) for c in reversed(bad) for k, v in c["arguments"].items() if isinstance(v, str)), None)
        if changed:
            c, k = changed
            c["arguments"][k] += " (changed)"
            wrong_tried += 1
            texts, end = asyncio.run(rollout(row, bad, f"bad-{i}"))
            caught = end != truth["end_state"] or texts != want
            wrong_caught += caught
            if not caught:  # the tool ignores that value (a BFCL login accepts any id, a search finds
                # nothing either way): no verifier can tell, so it is reported, not failed
                notes.append(f"{row['extra_info']['sample_id']}: {c['name']}({k}=... + ' (changed)') changed "
                             "neither a result nor the state")

    ns.update(importlib=importlib, os=__import__("os"), sys=sys, Optional=Any)
    exec(src["load"], ns)  # noqa: S102 - verl's own loader
    row = rows[0]
    truth = json.loads(row["reward_model"]["ground_truth"])
    text = "".join(f"<tool_call>{json.dumps({'name': c['name'], 'arguments': c['arguments']})}</tool_call>"
                   for c in truth["calls"])
    for path in ("pkg://funreason_pipeline.reward", str(ROOT / "funreason_pipeline" / "reward.py")):
        fn = ns["load_extern_object"](module_path=path, object_name="compute_score")
        good = fn(data_source=row["data_source"], solution_str=text, ground_truth=row["reward_model"]["ground_truth"],
                  extra_info=row["extra_info"], reward_router_address=None)
        empty = fn(data_source=row["data_source"], solution_str=text, ground_truth=row["reward_model"]["ground_truth"],
                   extra_info=None)
        if good["score"] != 1.0 or empty["score"] != 0.0:
            problems.append(f"reward loaded from {path}: {good}, {empty}")
    print(f"verl {src['version']}: {len(tools)} tools built by verl's classes; {passed} of {len(rows)} rows roll out "
          f"through verl's _call_tool to the ground truth's state; {wrong_caught} of {wrong_tried} changed rollouts "
          f"end elsewhere; reward loaded by pkg:// and by file path")
    for n in notes[:20]:
        print("note:", n)
    for p in problems[:20]:
        print("PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
