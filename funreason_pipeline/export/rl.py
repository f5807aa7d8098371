"""The RL export: one row per user turn with what a rule-based reward needs to check a rollout.

The layout is the one verl (and EnvTuning, which trains on BFCL with verl) reads from Parquet:

* ``data_source``: ``"funreason-mt/<toolset>"`` (verl picks the reward function by it);
* ``prompt``: the chat up to and including the turn's user message, as ``{role, content}`` messages
  in the BFCL prompting style, as ``bfcl_prompting.jsonl`` holds it (system prompt listing BFCL's
  function docs, earlier steps as ``[f(a=1)]`` lists, one ``tool`` message per call with the result
  as BFCL renders it);
* ``ability``: ``"multi_turn_function_calling"``;
* ``reward_model``: ``{"style": "rule", "ground_truth": JSON text}``: the turn's calls with their
  results and ``step`` (the calls a model emits at once share a step; a call may use the results
  of earlier steps only) as ``calls``, and the state every class must end in (``end_state``). The
  reward scores the end state and the results, not the step split;
* ``extra_info``: ``split``, ``index``, ids, ``toolset`` and its ``classes``, and as JSON text:
  ``tools`` (OpenAI tool list), ``initial_state`` (per class), ``prior_calls`` (the earlier turns'
  calls with results, one list per turn: replayed on ``initial_state`` they give the turn's start
  state) and ``messages`` (the same prompt in OpenAI format with ``tool_calls``, for native
  function-calling trainers).

Nested values are JSON text, as EnvTuning does, so every row has the same Arrow type whatever its
tools' arguments look like. ``funreason_pipeline.reward`` scores a model's calls against a row.
Rows are built by re-executing each sample's calls from its scenario; a sample whose calls do not
reproduce its recorded results is returned as a rejection, never exported.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from funreason_pipeline.environments.base import CyclicStateError, to_json_value
from funreason_pipeline.environments.toolsets import ToolsetConfig, World
from funreason_pipeline.export.bfcl_docs import bfcl_functions
from funreason_pipeline.export.files import atomic_write
from funreason_pipeline.export.formats import normalize_sample, split_think, to_bfcl_prompting_record
from funreason_pipeline.export.steps import turn_steps
from funreason_pipeline.models import ToolSpec
from funreason_pipeline.verify.replay import canonical

RL_FILE = "rl.parquet"
ABILITY = "multi_turn_function_calling"

AGENT_NAME = "tool_agent"  # verl's multi-turn tool agent loop (verl/experimental/agent_loop/tool_agent_loop.py)
WORLD_KEY = "funreason_world"  # the one tools_kwargs entry every tool of funreason_pipeline.verl_tool reads
VALIDATION_SHARE = 10  # percent of trajectories (by a hash of the id) in the validation split
_MESSAGES = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))

RL_SCHEMA = pa.schema([
    ("data_source", pa.string()),
    ("agent_name", pa.string()),
    ("prompt", _MESSAGES),
    ("prompt_bfcl", _MESSAGES),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("style", pa.string()), ("ground_truth", pa.string())])),
    ("extra_info", pa.struct([
        ("split", pa.string()),
        ("index", pa.int64()),
        ("sample_id", pa.string()),
        ("dialogue_id", pa.string()),
        ("turn_index", pa.int64()),
        ("toolset", pa.string()),
        ("classes", pa.list_(pa.string())),
        ("tools", pa.string()),
        ("initial_state", pa.string()),
        ("prior_calls", pa.string()),
        ("messages", pa.string()),
        ("trajectory_id", pa.string()),
        ("prompt_chars", pa.int64()),
        ("need_tools_kwargs", pa.bool_()),
        ("tool_selection", pa.list_(pa.string())),
        ("tools_kwargs", pa.struct([(WORLD_KEY, pa.struct([("create_kwargs", pa.struct([
            ("toolset", pa.string()), ("classes", pa.list_(pa.string())),
            ("initial_state", pa.string()), ("prior_calls", pa.string())]))]))])),
    ])),
])


class ReplayMismatch(ValueError):
    """A sample's recorded tool result is not what executing its call gives."""


def _dumps(value: Any) -> str:
    # key order kept: environments are order-sensitive (a directory listing follows insertion order)
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _replay_turn(world: World, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Execute the tool calls of one turn's messages on `world` (in place); returns them with results.

    A call whose recorded result is an error the call does not give again was an injected error
    response (Phase IV's `error_tool_response`): it never ran, so it is not replayed or returned.
    """
    by_id = {c["id"]: c for m in messages if m.get("role") == "assistant" for c in m.get("tool_calls") or []}
    # the step of each call (a retry after an injected error stays in the failed call's step)
    step_of = {c.get("id"): k for k, st in enumerate(turn_steps(messages)) for c in st["calls"]}
    calls = []
    for m in messages:
        if m.get("role") != "tool":
            continue
        c = by_id.get(m.get("tool_call_id"))
        if c is None:
            raise ReplayMismatch(f"tool message without a call: {m.get('tool_call_id')!r}")
        name, args = c["function"]["name"], json.loads(c["function"]["arguments"] or "{}")
        recorded = json.loads(m["content"])
        # only a recorded error can be an injected one whose call must leave no trace: run it on a
        # copy; any other call runs in place (a mismatch raises, and the world is dropped with the row)
        injectable = isinstance(recorded, dict) and "error" in recorded
        trial = world.copy() if injectable else world
        res = trial.call(name, args)
        got = res.value if res.ok else {"error": res.error}
        if canonical(got) != canonical(recorded):
            if injectable:
                continue  # injected: the world stays as it was
            raise ReplayMismatch(f"{name}: result differs on replay")
        world.envs = trial.envs
        calls.append({"name": name, "arguments": args, "result": got, "step": step_of.get(c["id"], 0)})
    return calls


def _turn_slices(messages: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    return [messages[s: e] for s, e in zip(starts, [*starts[1:], len(messages)])]


def rl_row(sample: Mapping[str, Any], scenario: dict[str, Any], toolset: ToolsetConfig,
           tools: list[ToolSpec], functions: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The RL row of one SFT sample (see the module docstring); raises ReplayMismatch. `functions`:
    `bfcl_functions(tools)` when the caller has it (a partition's samples share their tools)."""
    s = normalize_sample(sample)
    messages, tf = s["messages"], s["train_from"]
    world = World.from_scenario(toolset, scenario, tools)
    prior = [_replay_turn(world, turn) for turn in _turn_slices(messages[:tf])]
    prior[-1:] = []  # the last slice is the current user message alone: no calls
    calls = _replay_turn(world, messages[tf:])
    try:
        end_state = to_json_value(world.snapshot())
    except CyclicStateError as exc:
        raise ReplayMismatch(f"the turn's end state cannot be compared: {exc}") from exc
    bfcl = to_bfcl_prompting_record(s, functions=bfcl_functions(tools) if functions is None else functions)
    prompt = hermes_prompt(messages[:tf])
    trajectory_id = str(s.get("trajectory_id") or s["dialogue_id"])
    initial_state, prior_calls = _dumps(scenario), _dumps(prior)
    return {
        "data_source": f"funreason-mt/{toolset.name}",
        "agent_name": AGENT_NAME,
        "prompt": prompt,
        # role and content only (a fixed Arrow type; chat templates ignore a tool message's name)
        "prompt_bfcl": [{"role": m["role"], "content": m["content"]} for m in bfcl["messages"][: bfcl["train_from"]]],
        "ability": ABILITY,
        "reward_model": {"style": "rule", "ground_truth": _dumps({"calls": calls, "end_state": end_state})},
        "extra_info": {
            "split": split_of(trajectory_id),
            "index": 0,  # set per file by write_rl_parquet
            "sample_id": str(s["sample_id"]),
            "dialogue_id": str(s["dialogue_id"]),
            "turn_index": int(s["turn_index"]),
            "toolset": toolset.name,
            "classes": list(toolset.classes),
            "tools": _dumps(s["tools"]),
            "initial_state": initial_state,
            "prior_calls": prior_calls,
            "messages": _dumps(messages[:tf]),
            "trajectory_id": trajectory_id,
            # what the chat template sees: the messages and the tool schemas it lists in the system turn
            "prompt_chars": sum(len(m["content"]) for m in prompt) + len(_dumps(s["tools"])),
            "need_tools_kwargs": True,
            "tool_selection": [t["function"]["name"] for t in s["tools"]],
            "tools_kwargs": {WORLD_KEY: {"create_kwargs": {
                "toolset": toolset.name, "classes": list(toolset.classes),
                "initial_state": initial_state, "prior_calls": prior_calls}}},
        },
    }


def split_of(trajectory_id: str) -> str:
    """"validation" for about VALIDATION_SHARE percent of trajectories, else "train": a hash of the
    id, so a trajectory's turns share a split and a rerun gives the same split."""
    bucket = int(hashlib.sha256(trajectory_id.encode()).hexdigest()[:8], 16) % 100
    return "validation" if bucket < VALIDATION_SHARE else "train"


def _hermes_call(call: Mapping[str, Any]) -> str:
    fn = call["function"]
    args = json.loads(fn["arguments"] or "{}") if isinstance(fn["arguments"], str) else fn["arguments"]
    return "<tool_call>\n" + json.dumps({"name": fn["name"], "arguments": args}, ensure_ascii=False) + "\n</tool_call>"


def hermes_prompt(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The chat so far as role/content messages in the Hermes tool format that verl's `hermes` tool
    parser reads and Qwen's chat templates write: an assistant's calls as `<tool_call>{json}</tool_call>`
    lines after its text, each result as a `tool` message. Earlier turns' reasoning is left out, as
    those templates leave it out of the context."""
    out = []
    for m in messages:
        content = m.get("content") or ""
        if m["role"] == "assistant":
            _, content = split_think(content)
            calls = [_hermes_call(c) for c in m.get("tool_calls") or []]
            content = "\n".join([content.strip(), *calls]).strip() if calls else content.strip()
        out.append({"role": m["role"], "content": content})
    return out


def rl_rows(samples: Iterable[Mapping[str, Any]], scenarios: Mapping[str, dict[str, Any]],
            toolset: ToolsetConfig, tools: list[ToolSpec]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """RL rows of a partition's samples (each with its `trajectory_id`, whose scenario is looked up),
    and rejections ({item_id, reason, detail}) of the samples that could not become rows."""
    rows, rejections = [], []
    functions = bfcl_functions(tools)
    for sample in samples:
        scenario = scenarios.get(sample.get("trajectory_id"))
        if scenario is None:
            rejections.append({"item_id": str(sample["sample_id"]), "reason": "rl_no_scenario",
                               "detail": f"trajectory {sample.get('trajectory_id')!r} not found"})
            continue
        try:
            rows.append(rl_row(sample, scenario, toolset, tools, functions))
        except ReplayMismatch as exc:
            rejections.append({"item_id": str(sample["sample_id"]), "reason": "rl_replay_mismatch",
                               "detail": str(exc)[:2000]})
    return rows, rejections


def rl_parquet_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """The rows as a Parquet file's bytes, sorted by (dialogue_id, turn_index), `extra_info.index` =
    position; the same rows give the same bytes (fixed schema, no timestamps)."""
    ordered = sorted(rows, key=lambda r: (r["extra_info"]["dialogue_id"], r["extra_info"]["turn_index"]))
    records = [{**r, "extra_info": {**r["extra_info"], "index": i}} for i, r in enumerate(ordered)]
    ids = [r["extra_info"]["sample_id"] for r in records]
    if len(set(ids)) != len(ids):
        raise ValueError("duplicate sample_id in RL export input")
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(records, schema=RL_SCHEMA), sink, compression="zstd")
    return sink.getvalue().to_pybytes()


RL_TRAIN_FILE, RL_VALIDATION_FILE = "rl_train.parquet", "rl_validation.parquet"


def rl_export_files(rows: Iterable[Mapping[str, Any]]) -> dict[str, bytes]:
    """Every RL file of an export directory: `rl.parquet` (all rows), one file per split, and verl's
    tool config for the rows' tools. The tool config is left out when two toolsets of the rows give
    one tool name different schemas (one verl config cannot hold both): the per-toolset ones can."""
    rows = list(rows)
    files = {RL_FILE: rl_parquet_bytes(rows)}
    for split, name in (("train", RL_TRAIN_FILE), ("validation", RL_VALIDATION_FILE)):
        files[name] = rl_parquet_bytes([r for r in rows if r["extra_info"]["split"] == split])
    # a partition's rows list the same tools: a run of rows with one `tools` text gives its tools
    # once (tool_config_yaml keeps the last of equal schemas; a repeat of the same text changes nothing)
    texts = [r["extra_info"]["tools"] for r in rows]
    runs = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]
    try:
        files[TOOL_CONFIG_FILE] = tool_config_yaml(t for text in runs for t in json.loads(text)).encode("utf-8")
    except ValueError:
        pass
    return files


def verl_card_section(settings: Mapping[str, int], has_tool_config: bool = True) -> str:
    """The dataset card's verl settings for these rows (see `verl_settings`)."""
    if not settings:
        return ""
    rows = [("data.max_prompt_length", settings["max_prompt_length"],
             (f"longest prompt {settings['max_prompt_chars']:,} characters with its tool schemas, at 3 characters "
              "per token, rounded up to a power of two (count with your tokenizer when it matters)")),
            ("actor_rollout_ref.rollout.multi_turn.max_parallel_calls", settings["max_parallel_calls"],
             "the most calls of one step (verl's default 1 runs only the first)"),
            ("actor_rollout_ref.rollout.multi_turn.max_assistant_turns", settings["max_assistant_turns"],
             "the most steps of a turn, plus the closing reply"),
            ("actor_rollout_ref.rollout.multi_turn.max_tool_response_length", settings["max_tool_response_length"],
             "the longest result in characters (verl's default 256 cuts longer ones)")]
    table = "\n".join(f"| `{k}` | {v} | {why} |" for k, v, why in rows)
    config = ("`verl_tools.yaml` is the tool config (`multi_turn.tool_config_path`)." if has_tool_config else
              "No day-wide `verl_tools.yaml`: two toolsets give one tool name different schemas; use each "
              "toolset's own.")
    return (f"### verl settings these {settings['rows']:,} rows need\n\n"
            "| setting | value | why |\n| --- | --- | --- |\n" + table + "\n\n"
            f"`{RL_TRAIN_FILE}` and `{RL_VALIDATION_FILE}` hold the two splits (by trajectory). {config}\n"
            "The rows name verl's `tool_agent` loop and carry their start state; the reward is\n"
            "`reward.custom_reward_function.path=pkg://funreason_pipeline.reward`, `name=compute_score`.\n")


def write_rl_parquet(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike[str]) -> Path:
    """`rl_parquet_bytes` written to `path` (atomically)."""
    out = Path(path)
    atomic_write(out, rl_parquet_bytes(rows))
    return out


VERL_TOOL_CLASS = "funreason_pipeline.verl_tool.FunReasonTool"
TOOL_CONFIG_FILE = "verl_tools.yaml"
_VERL_PROPERTY_KEYS = ("type", "description", "enum")  # what verl's OpenAIFunctionPropertySchema keeps


def _verl_property(prop: Mapping[str, Any]) -> dict[str, Any]:
    """A parameter as verl's schema model keeps it (type, description, enum): what it would drop
    (items, nested properties, defaults, formats) is kept in the description, so the model still sees it."""
    out = {k: prop[k] for k in _VERL_PROPERTY_KEYS if k in prop}
    if "type" not in out:  # anyOf/oneOf without a type: the branches' types, else any JSON value
        types = [b["type"] for b in prop.get("anyOf", prop.get("oneOf", [])) if isinstance(b.get("type"), str)]
        out["type"] = types if types else "object"
    rest = {k: v for k, v in prop.items() if k not in _VERL_PROPERTY_KEYS}
    if rest:
        out["description"] = (out.get("description", "") + " JSON schema: " + _dumps(rest)).strip()
    return out


def verl_tool_schema(tool: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAI tool as verl's `OpenAIFunctionToolSchema` validates it."""
    fn = tool["function"]
    params = fn.get("parameters") or {}
    return {"type": "function", "function": {
        "name": fn["name"], "description": fn.get("description") or fn["name"],
        "parameters": {"type": "object",
                       "properties": {k: _verl_property(v) for k, v in (params.get("properties") or {}).items()},
                       "required": list(params.get("required") or [])}}}


def tool_config_yaml(tools: Iterable[Mapping[str, Any]]) -> str:
    """verl's `multi_turn.tool_config_path` file for these tools: each one a FunReasonTool. Raises
    ValueError when two tools share a name with different schemas (one file cannot hold both)."""
    by_name: dict[str, dict[str, Any]] = {}
    for t in tools:
        schema = verl_tool_schema(t)
        name = schema["function"]["name"]
        if name in by_name and by_name[name] != schema:
            raise ValueError(f"two tools named {name!r} with different schemas")
        by_name[name] = schema
    entries = [{"class_name": VERL_TOOL_CLASS, "config": {"type": "native"}, "tool_schema": by_name[n]}
               for n in sorted(by_name)]
    header = ("# verl tool config (actor_rollout_ref.rollout.multi_turn.tool_config_path), written by funreason-pipeline:\n"
              "# every tool runs on the rollout's own environment (funreason_pipeline/verl_tool.py)\n")
    return header + yaml.safe_dump({"tools": entries}, sort_keys=False, allow_unicode=True, width=120)


CHARS_PER_TOKEN = 3  # conservative for JSON-heavy chat text (real tokenizers give ~3.5-4): never too small


def _power_of_two(n: int) -> int:
    return 1 << max(0, (max(1, n) - 1).bit_length())


def verl_settings(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The verl settings these rows need, from the rows themselves: the longest prompt (messages and
    tool schemas, in characters and as a token estimate rounded up to a power of two for
    `data.max_prompt_length`), the most calls in one step (`multi_turn.max_parallel_calls`: verl runs
    only that many of a generation's calls, default 1), the most steps of a turn plus the closing reply
    (`multi_turn.max_assistant_turns`) and the longest result (`multi_turn.max_tool_response_length`,
    default 256 characters: a longer result is cut, and an id in its tail never reaches the model)."""
    rows = list(rows)
    if not rows:
        return {}
    prompt_chars = max(int(r["extra_info"]["prompt_chars"]) for r in rows)
    truths = [json.loads(r["reward_model"]["ground_truth"])["calls"] for r in rows]  # parsed once
    calls = [c for t in truths for c in t]
    per_step = [Counter(int(c.get("step", 0)) for c in t) for t in truths]
    steps = max((len(s) for s in per_step), default=0)
    return {
        "rows": len(rows),
        "max_prompt_chars": prompt_chars,
        "max_prompt_length": _power_of_two(-(-prompt_chars // CHARS_PER_TOKEN)),
        "max_parallel_calls": max((n for s in per_step for n in s.values()), default=1),
        "max_assistant_turns": steps + 1,
        "max_tool_response_length": max((len(json.dumps(c["result"], ensure_ascii=False)) for c in calls), default=0),
    }


RL_CARD_SECTION = """## RL export (`rl.parquet`)

One row per user turn in the layout verl reads (`data_source`, `prompt`, `ability`,
`reward_model: {style: "rule", ground_truth}`, `extra_info`). `prompt` is the chat up to and including
the turn's user message in the BFCL prompting style. `reward_model.ground_truth` (JSON text) holds the
turn's `calls` with their results and `step` (calls of one step are emitted at once; a call uses
results of earlier steps only) and the `end_state` of every class; the reward scores the end state and
the results, not the step split. `extra_info` holds the `toolset`,
its `classes`, and as JSON text the `tools`, the `initial_state` per class, the `prior_calls` of the
earlier turns (replayed on the initial state they give the turn's start state), and the prompt as
OpenAI `messages`. Score a model's calls with `funreason_pipeline.reward`: it rebuilds the start state,
runs the calls on the toolset's allow-listed tools (model text is parsed, never evaluated) and returns
BFCL's state and response verdict with a partial score:

```python
import json
import pyarrow.parquet as pq
from funreason_pipeline.export.formats import render_pythonic_calls
from funreason_pipeline.reward import compute_score, score_calls

row = pq.read_table("rl.parquet").to_pylist()[0]
truth = json.loads(row["reward_model"]["ground_truth"])
answer = [{"name": c["name"], "arguments": c["arguments"]} for c in truth["calls"]]
print(score_calls(row, answer).score)           # 1.0: the ground truth passes
print(score_calls(row, answer[:-1]).problems)   # a call missing: mismatches named, score < 1
print(score_calls(row, [{"name": "__import__", "arguments": {}}]).score)  # refused, never run: 0.0
# verl: custom_reward_function.path=<funreason_pipeline/reward.py>, .name=compute_score
print(compute_score(row["data_source"], render_pythonic_calls(answer), row["reward_model"]["ground_truth"],
                    row["extra_info"]))  # {"score": 1.0, ...}: the text is parsed, not evaluated
```
"""
