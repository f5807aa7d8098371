"""Exports: OpenAI/TRL, LLaMA-Factory ShareGPT, BFCL prompting, Parquet, dataset card."""

from __future__ import annotations

import json
import random
import re

import polars as pl
import pytest
import yaml

from funreason_pipeline import provenance
from funreason_pipeline.export.card import CARD_CONFIGS, dataset_card
from funreason_pipeline.export.formats import (
    EXPORT_FILES,
    OBSERVATION_JOIN,
    SHAREGPT_TAGS,
    check_sharegpt_alternation,
    dialogue_to_samples,
    llamafactory_dataset_info,
    parse_pythonic_calls,
    render_pythonic_calls,
    split_think,
    to_bfcl_prompting_record,
    to_openai_jsonl_record,
    to_sharegpt_record,
    to_trl_prompt_completion_record,
    to_trl_prompt_completion_records,
    write_exports,
)
from funreason_pipeline.export.rl import RL_FILE


def _tool(name, props, required=()):
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": f"{name} tool",
            "parameters": {"type": "object", "properties": props, "required": list(required)},
        },
    }


TOOLS = [
    _tool("cd", {"folder": {"type": "string", "description": "target"}}, ["folder"]),
    _tool("ls", {"a": {"type": "boolean", "description": "show hidden"}}),
    _tool("pwd", {}),
    _tool("mkdir", {"dir_name": {"type": "string", "description": "name"}}, ["dir_name"]),
    _tool(
        "sort_values",
        {"values": {"type": "array", "items": {"type": "number"}}, "options": {"type": "object"}},
        ["values"],
    ),
]


def _call(k, i, name, args):
    return {
        "id": f"call_{k}_{i}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)},
    }


def _result(k, i, name, result):
    return {"role": "tool", "tool_call_id": f"call_{k}_{i}", "name": name, "content": json.dumps(result)}


def make_dialogue(dialogue_id="dlg-1"):
    """3 turns, 5 tools, one step with two parallel calls, one call without reasoning, nested args."""
    msgs = [
        {"role": "system", "content": "You are a helpful assistant with file and math tools."},
        # turn 0: a single call, then two parallel calls in one step
        {
            "role": "user",
            "content": "Go into docs, then list everything there including hidden files and tell me where I am.",
        },
        {
            "role": "assistant",
            "content": "<think>\nI must enter docs first.\n</think>",
            "tool_calls": [_call(0, 0, "cd", {"folder": "docs"})],
        },
        _result(0, 0, "cd", {"current_working_directory": "docs"}),
        {
            "role": "assistant",
            "content": "<think>\nNow list with hidden files and print the path.\n</think>",
            "tool_calls": [_call(0, 1, "ls", {"a": True}), _call(0, 2, "pwd", {})],
        },
        _result(0, 1, "ls", {"current_directory_content": [".env", "notes.txt"]}),
        _result(0, 2, "pwd", {"current_working_directory": "/workspace/docs"}),
        {"role": "assistant", "content": "You are in /workspace/docs; it holds .env and notes.txt."},
        # turn 1: no reasoning, a string with both quote kinds
        {"role": "user", "content": 'Create a folder named it\'s "new" here.'},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [_call(1, 0, "mkdir", {"dir_name": 'it\'s "new"'})],
        },
        _result(1, 0, "mkdir", None),
        {"role": "assistant", "content": "Done: the folder exists now."},
        # turn 2: nested literal arguments (list with float/negative, dict with bool/None)
        {"role": "user", "content": "Sort 3, 1.5 and -2 in reverse order please."},
        {
            "role": "assistant",
            "content": "<think>\nOne call with reverse=true.\n</think>",
            "tool_calls": [
                _call(
                    2, 0, "sort_values", {"values": [3, 1.5, -2], "options": {"reverse": True, "key": None}}
                )
            ],
        },
        _result(2, 0, "sort_values", {"sorted": [3, 1.5, -2]}),
        {"role": "assistant", "content": "Sorted descending: 3, 1.5, -2."},
    ]
    return {
        "dialogue_id": dialogue_id,
        "trajectory_id": f"traj-{dialogue_id}",
        "toolset": "fs_math",
        "tools": TOOLS,
        "messages": msgs,
    }


@pytest.fixture
def samples():
    return dialogue_to_samples(make_dialogue("dlg-1")) + dialogue_to_samples(make_dialogue("dlg-2"))


def _assistant_calls(messages):
    return [
        [
            {"name": c["function"]["name"], "arguments": json.loads(c["function"]["arguments"])}
            for c in m["tool_calls"]
        ]
        for m in messages
        if m["role"] == "assistant" and m.get("tool_calls")
    ]


# --------------------------------------------------------------------------------------------------
def test_dialogue_to_samples_one_per_turn():
    dlg = make_dialogue()
    out = dialogue_to_samples(dlg)
    assert [s["turn_index"] for s in out] == [0, 1, 2]
    assert [s["train_from"] for s in out] == [2, 9, 13]
    for s in out:
        assert s["messages"][s["train_from"] - 1]["role"] == "user"
        assert s["messages"][-1]["role"] == "assistant" and not s["messages"][-1].get("tool_calls")
        assert s["messages"] == dlg["messages"][: len(s["messages"])]
    assert out[-1]["messages"] == dlg["messages"]


def test_openai_record_has_object_arguments_and_tools(samples):
    rec = to_openai_jsonl_record(samples[0])
    assert set(rec) == {"messages", "tools", "sample_id", "turn_index"}
    assert rec["tools"] == TOOLS
    calls = [c for m in rec["messages"] if m.get("tool_calls") for c in m["tool_calls"]]
    assert [c["function"]["arguments"] for c in calls] == [{"folder": "docs"}, {"a": True}, {}]
    assert all(c["type"] == "function" and c["id"].startswith("call_") for c in calls)
    # the canonical sample is not mutated (still JSON strings)
    assert isinstance(samples[0]["messages"][2]["tool_calls"][0]["function"]["arguments"], str)


def test_openai_weights_mark_the_current_turns_assistant_messages(samples):
    s = samples[1]  # turn 1: earlier turn 0 has three assistant messages, turn 1 two
    msgs = to_openai_jsonl_record(s)["messages"]
    weights = [(i, m["weight"]) for i, m in enumerate(msgs) if m["role"] == "assistant"]
    assert weights == [(2, 0), (4, 0), (7, 0), (9, 1), (11, 1)]
    assert all("weight" not in m for m in msgs if m["role"] != "assistant")  # OpenAI: assistant only


def test_trl_prompt_completion_has_one_record_per_step_and_no_tool_result_in_a_completion(samples):
    s = samples[0]  # turn 0: two steps (cd; then ls + pwd in parallel), then the reply
    recs = to_trl_prompt_completion_records(s)
    assert [r["step"] for r in recs] == [0, 1, 2]
    assert all(len(r["completion"]) == 1 and r["completion"][0]["role"] == "assistant" for r in recs)
    assert [[c["function"]["name"] for c in r["completion"][0].get("tool_calls", [])] for r in recs] == \
        [["cd"], ["ls", "pwd"], []]
    # prompt = everything before the completion: the first step's prompt ends at the user message,
    # the second's at cd's result, the reply's at the parallel step's two results
    assert [len(r["prompt"]) for r in recs] == [2, 4, 7]
    assert recs[1]["prompt"][-1]["role"] == "tool" and recs[2]["prompt"][-2:] == to_openai_jsonl_record(s)[
        "messages"][5:7]
    assert recs[2]["completion"][0]["content"].startswith("You are in")
    # the reply's record is what the single-record function returns, prompt ends before it
    last = to_trl_prompt_completion_record(samples[1])
    assert last["completion"][0]["content"].startswith("Done") and last["prompt"][-1]["role"] == "tool"


def test_sharegpt_alternation_and_parallel_calls(samples):
    full = samples[2]  # all three turns
    rec = to_sharegpt_record(full)
    check_sharegpt_alternation(rec)
    roles = [m["from"] for m in rec["conversations"]]
    assert roles == [
        "human",
        "function_call",
        "observation",
        "function_call",
        "observation",
        "gpt",
        "human",
        "function_call",
        "observation",
        "gpt",
        "human",
        "function_call",
        "observation",
        "gpt",
    ]
    for i, role in enumerate(roles, start=1):  # LLaMA-Factory: human/observation odd, gpt/function_call even
        assert (role in ("human", "observation")) == (i % 2 == 1)
    assert rec["system"] == full["messages"][0]["content"]
    assert json.loads(rec["tools"]) == [t["function"] for t in TOOLS]

    # What LLaMA-Factory's FunctionFormatter does: cut the thought block, json.loads the rest.
    thought = re.compile(r"<think>\n(.*?)\n</think>\n\n", re.DOTALL)
    decoded = []
    for m in rec["conversations"]:
        if m["from"] == "function_call":
            calls = json.loads(thought.sub("", m["value"], count=1))
            assert isinstance(calls, list)
            decoded.append(calls)
    assert decoded == _assistant_calls(full["messages"])
    # the parallel step's two results became ONE observation, joined as LLaMA-Factory's own OpenAI
    # converter joins consecutive tool messages (one <tool_response> block each in Qwen's template)
    parts = rec["conversations"][4]["value"].split(OBSERVATION_JOIN)
    assert [json.loads(p) for p in parts] == [
        {"current_directory_content": [".env", "notes.txt"]},
        {"current_working_directory": "/workspace/docs"},
    ]
    assert rec["turn_index"] == 2 and rec["sample_id"] == full["sample_id"]


def test_sharegpt_alternation_checker_rejects_bad_orders():
    with pytest.raises(ValueError):
        check_sharegpt_alternation(
            {"conversations": [{"from": "human", "value": "a"}, {"from": "human", "value": "b"}]}
        )
    with pytest.raises(ValueError):  # odd count: ends on an observation
        check_sharegpt_alternation(
            {
                "conversations": [
                    {"from": "human", "value": "a"},
                    {"from": "function_call", "value": "[]"},
                    {"from": "observation", "value": "x"},
                ]
            }
        )
    bad = make_dialogue()
    bad["messages"].insert(3, {"role": "tool", "tool_call_id": "x", "name": "cd", "content": "{}"})
    bad["messages"].insert(2, {"role": "tool", "tool_call_id": "x", "name": "cd", "content": "{}"})
    with pytest.raises(ValueError):
        to_sharegpt_record(dialogue_to_samples(bad)[0])


def test_llamafactory_dataset_info_entry():
    info = llamafactory_dataset_info("funreason_mt", "sharegpt.jsonl")
    entry = info["funreason_mt"]
    assert entry["file_name"] == "sharegpt.jsonl"
    assert entry["formatting"] == "sharegpt"
    assert entry["columns"] == {"messages": "conversations", "system": "system", "tools": "tools"}
    assert entry["tags"] == SHAREGPT_TAGS
    assert {"role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag"} <= set(
        entry["tags"]
    )


def test_bfcl_prompting_round_trip(samples):
    full = samples[2]
    rec = to_bfcl_prompting_record(full)
    msgs = rec["messages"]
    assert msgs[0]["role"] == "system" and '"name": "sort_values"' in msgs[0]["content"]
    assert "[func_name1(params_name1=params_value1" in msgs[0]["content"]
    # BFCL's type names and Python hint (no catalog docs given: converted from the OpenAI tools)
    assert '"type": "dict"' in msgs[0]["content"] and '"type": "object"' not in msgs[0]["content"]
    assert "sort_values tool Note that the provided function is in Python 3 syntax." in msgs[0]["content"]
    assert msgs[rec["train_from"] - 1]["role"] == "user" and msgs[rec["train_from"] - 1][
        "content"
    ].startswith("Sort")

    names = {t["function"]["name"] for t in TOOLS}
    parsed, tool_msgs = [], []
    for m in msgs[1:]:
        if m["role"] == "tool":
            tool_msgs.append(m)
        elif m["role"] == "assistant" and re.search(r"\]\s*$", m["content"]):
            _reasoning, call_text = split_think(m["content"])
            parsed.append(parse_pythonic_calls(call_text, allowed_names=names))
    assert parsed == _assistant_calls(full["messages"])
    assert msgs[4]["content"] == "[ls(a=True), pwd()]"  # an earlier turn: no <think> kept (Qwen handler)
    assert "[mkdir(dir_name='it\\'s \"new\"')]" in [m["content"] for m in msgs]
    # the current turn keeps its reasoning; arguments in the schema's order (values, then options)
    assert msgs[-3]["content"] == ("<think>\nOne call with reverse=true.\n</think>\n\n"
                                   "[sort_values(values=[3, 1.5, -2], options={'key': None, 'reverse': True})]")
    # one tool message per call, named by the call as BFCL's executor writes it, results as BFCL renders them
    assert [(m["name"], m["content"]) for m in tool_msgs] == [
        ("cd(folder='docs')", '{"current_working_directory": "docs"}'),
        ("ls(a=True)", '{"current_directory_content": [".env", "notes.txt"]}'),
        ("pwd()", '{"current_working_directory": "/workspace/docs"}'),
        ("mkdir(dir_name='it\\'s \"new\"')", "None"),
        ("sort_values(values=[3, 1.5, -2], options={'key': None, 'reverse': True})", '{"sorted": [3, 1.5, -2]}'),
    ]
    assert [m["weight"] for m in msgs if m["role"] == "assistant"] == [0, 0, 0, 0, 0, 1, 1]


def test_bfcl_system_prompt_is_the_given_docs_each_time(samples):
    """The system prompt is built once per docs content: a record with other docs for the same tool
    names (another toolset's, an edited description, another key order) gets its own, the uncached text."""
    from funreason_pipeline.export.bfcl_docs import from_openai_tool, with_language_hint
    from funreason_pipeline.export.formats import bfcl_system_prompt

    full = samples[2]
    docs = {t["function"]["name"]: from_openai_tool(t) for t in full["tools"]}
    edited = {**docs, "ls": {**docs["ls"], "description": "List, edited."}}
    reordered = {**docs, "ls": dict(reversed(list(docs["ls"].items())))}
    for functions in (docs, edited, reordered, docs):
        got = to_bfcl_prompting_record(full, functions=functions)["messages"][0]["content"]
        want = bfcl_system_prompt(with_language_hint([functions[t["function"]["name"]] for t in full["tools"]]))
        assert got == want
    assert "List, edited. Note that" in to_bfcl_prompting_record(full, functions=edited)["messages"][0]["content"]


def test_render_rejects_what_has_no_call_syntax():
    with pytest.raises(ValueError):
        render_pythonic_calls([{"name": "f", "arguments": {"from": 1}}])  # keyword
    with pytest.raises(ValueError):
        render_pythonic_calls([{"name": "f", "arguments": {"a-b": 1}}])
    with pytest.raises(ValueError):
        render_pythonic_calls([{"name": "f", "arguments": {"x": float("nan")}}])
    with pytest.raises(ValueError):
        render_pythonic_calls([{"name": "os.system(1)", "arguments": {}}])


def test_dotted_names_need_the_allow_list():
    text = render_pythonic_calls([{"name": "GorillaFileSystem.cd", "arguments": {"folder": "x"}}])
    assert parse_pythonic_calls(text, allowed_names={"GorillaFileSystem.cd"}) == [
        {"name": "GorillaFileSystem.cd", "arguments": {"folder": "x"}}
    ]
    with pytest.raises(ValueError, match="attribute call"):
        parse_pythonic_calls(text)


def test_hostile_call_strings_are_rejected_and_never_run(tmp_path):
    canary = tmp_path / "canary"
    c = str(canary)
    hostile = [
        f"__import__('os').system('touch {c}')",
        f"[__import__('os').system('touch {c}')]",
        f"[cd(folder=__import__('os').system('touch {c}'))]",
        f"[cd(folder=__import__('pathlib').Path('{c}').touch())]",
        f"[os.system(command='touch {c}')]",
        f"[(lambda: __import__('os').system('touch {c}'))()]",
        f"[cd(folder=lambda: open('{c}', 'w'))]",
        f"[cd(folder=f\"{{__import__('os').system('touch {c}')}}\")]",
        f'[cd(folder=f\'{{open("{c}", "w")}}\')]',
        f"[open('{c}', 'w')]",  # positional arguments
        "[cd(folder=().__class__.__bases__[0].__subclasses__())]",
        "[cd(folder='a')][0]",
        "[cd(**{'folder': 'x'})]",
        "[cd(folder='a', folder='b')]",
        "[cd(folder={1, 2})]",
        "[cd(folder=1j)]",
        "[cd(folder=b'x')]",
        "[cd(folder=...)]",
        f"import os; os.system('touch {c}')",
        f"[cd(folder='x') for _ in [open('{c}', 'w')]]",
        "(" * 5000 + ")" * 5000,
        "[" + "cd(folder='x'), " * 10 + "42]",
        "",
    ]
    for text in hostile:
        with pytest.raises(ValueError):
            parse_pythonic_calls(text)
    # a syntactically plain call is data, not code: parsed, not run, and stopped by the allow-list
    opened = f"[open(file='{c}', mode='w')]"
    assert parse_pythonic_calls(opened) == [{"name": "open", "arguments": {"file": c, "mode": "w"}}]
    with pytest.raises(ValueError, match="unknown tool"):
        parse_pythonic_calls(opened, allowed_names={"cd", "ls"})
    assert not canary.exists()


def test_parse_accepts_tuples_bare_calls_and_empty_lists():
    assert parse_pythonic_calls("[]") == []
    assert parse_pythonic_calls(" ls(a=False) ") == [{"name": "ls", "arguments": {"a": False}}]
    assert parse_pythonic_calls("[f(x=(1, -2.5), y={'k': [None]})]") == [
        {"name": "f", "arguments": {"x": [1, -2.5], "y": {"k": [None]}}}
    ]


def _load_all(paths, cache_dir):
    from datasets import load_dataset

    out = {}
    for kind in ("openai", "trl_prompt_completion", "sharegpt", "bfcl_prompting"):
        out[kind] = load_dataset("json", data_files=str(paths[kind]), split="train", cache_dir=str(cache_dir))
    out["parquet"] = load_dataset(
        "parquet", data_files=str(paths["parquet"]), split="train", cache_dir=str(cache_dir)
    )
    return out


def test_exports_load_with_hf_datasets(samples, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    paths = write_exports(samples, tmp_path / "out", "funreason_mt")
    assert {k: p.name for k, p in paths.items()} == EXPORT_FILES
    ds = _load_all(paths, tmp_path / "hf_cache")
    n = len(samples)
    # one prompt-completion record per assistant message of each sample's current turn
    assert ds["openai"].num_rows == n and ds["trl_prompt_completion"].num_rows == 2 * (3 + 2 + 2)
    assert ds["bfcl_prompting"].num_rows == n and ds["parquet"].num_rows == n
    assert ds["sharegpt"].num_rows == 2  # one record per dialogue (its last turn)

    first = ds["openai"][0]  # sorted by dialogue, turn
    assert first["messages"] == to_openai_jsonl_record(samples[0])["messages"]
    assert first["tools"] == TOOLS
    for row in ds["sharegpt"]:
        check_sharegpt_alternation(row)
        assert json.loads(row["tools"])[0]["name"] == "cd"
    pq = ds["parquet"]
    assert pq.column_names == ["sample_id", "dialogue_id", "turn_index", "messages", "tools", "train_from", "steps"]
    assert [json.loads(x) for x in pq["steps"][:3]] == [[1, 2], [1], [1]]
    assert [json.loads(m) for m in pq["messages"]] == [s["messages"] for s in samples]
    assert pq["train_from"] == [s["train_from"] for s in samples]
    info = json.loads(paths["dataset_info"].read_text())
    assert info == llamafactory_dataset_info("funreason_mt", "sharegpt.jsonl")


def test_exports_are_byte_identical(samples, tmp_path):
    a = write_exports(samples, tmp_path / "a", "funreason_mt")
    shuffled = list(samples)
    random.Random(7).shuffle(shuffled)
    b = write_exports(shuffled, tmp_path / "b", "funreason_mt")
    again = write_exports(samples, tmp_path / "a", "funreason_mt")  # overwrite in place
    # rows as they come from the sft_samples table: JSON text columns, train_from derived
    rows = [
        {k: json.dumps(v) if k in ("messages", "tools") else v for k, v in s.items() if k != "train_from"}
        for s in samples
    ]
    c = write_exports(rows, tmp_path / "c", "funreason_mt")
    for kind in EXPORT_FILES:
        assert a[kind].read_bytes() == b[kind].read_bytes() == again[kind].read_bytes(), kind
        assert a[kind].read_bytes() == c[kind].read_bytes(), kind
    assert not [p for p in (tmp_path / "a").iterdir() if p.name.startswith(".")]  # no temp files left


def test_duplicate_sample_ids_are_refused(samples, tmp_path):
    with pytest.raises(ValueError, match="duplicate sample_id"):
        write_exports(samples + samples[:1], tmp_path, "x")


# --------------------------------------------------------------------------------------------------
STATS = {
    "dialogues": 120,
    "samples": 480,
    "near_duplicate_rate": 0.0125,
    "yield": {
        "trajectories": {"in": 200, "out": 180, "rejected": {"dead_end": 20}},
        "queries": {"in": 180, "out": 150, "rejected": {"leaks_value": 25, "too_easy": 5}},
    },
    "turns_per_dialogue": {"mean": 4.1, "min": 2, "max": 7},
    "tool_coverage": {"fs_math": 0.97},
    "tokens": {"input": 1_234_567, "output": 345_678},
}


def _front_matter(card):
    assert card.startswith("---\n")
    head, _, body = card[4:].partition("\n---\n")
    return yaml.safe_load(head), body


def test_dataset_card_header_and_stats():
    card = dataset_card(
        STATS,
        provenance.summary([{"tooling": "qwen3-32b", "querying": "qwen3-32b", "reasoning": "qwen3-235b",
                             "critic": "qwen3-32b"}] * 3),
        "2026-01-15",
        ["fs_math", "travel"],
        dataset_name="funreason-mt-demo",
    )
    meta, body = _front_matter(card)
    assert meta["license"] == "apache-2.0"
    assert meta["task_categories"] == ["text-generation"]
    assert meta["size_categories"] == ["n<1K"]
    assert [c["data_files"][0]["path"] for c in meta["configs"]] == [p for _, p, _ in CARD_CONFIGS
                                                                         if p.endswith(".jsonl")]
    assert {p for _, p, _ in CARD_CONFIGS} == set(EXPORT_FILES.values()) - {"dataset_info.json"} | {RL_FILE}
    assert "| - | `samples.parquet` |" in body and "| - | `rl.parquet` |" in body
    assert meta["configs"][0]["default"] is True
    assert "WARNING" not in card and "Offline backend" not in card
    assert "partly-offline-backend" not in meta["tags"]
    for text in (
        "| reasoning | 100.0% | qwen3-235b (3) |",
        "| backend | openai-compatible |",
        "2026-01-15",
        "fs_math, travel",
        "| queries | 180 | 150 | leaks_value: 25, too_easy: 5 |",
        "| mean | 4.1 |",
        "| near_duplicate_rate | 0.0125 |",
        "| input | 1,234,567 |",
    ):
        assert text in body, text
    # Hub metadata parser (local, no network) accepts the header
    from huggingface_hub import DatasetCard

    data = DatasetCard(card).data.to_dict()
    assert data["license"] == "apache-2.0" and len(data["configs"]) == len(CARD_CONFIGS) - 2


def test_dataset_card_warns_for_offline_backend():
    offline = provenance.summary([dict.fromkeys(provenance.ROLES, "offline")])
    card = dataset_card({}, offline, "2026-01-15", ["fs_math"])
    meta, body = _front_matter(card)
    assert "offline-backend-not-model-data" in meta["tags"]
    assert body.index("Offline backend: this is not model-generated data") < body.index("## Generation")
    assert "| tooling | 0.0% | offline (1) |" in body
    assert dataset_card({}, offline, "d", []) == dataset_card({}, offline, "d", [])


def test_dataset_card_of_a_mixed_run_is_exact():
    """Endpoints for tooling and querying only: Phase III ran offline, and the card says so per role."""
    real, mixed = {"tooling": "gpt-x", "querying": "gpt-x"}, {"reasoning": "offline", "critic": "unused"}
    rows = [{**real, **mixed}] * 3 + [{**real, "reasoning": "big", "critic": "gpt-x+offline"}]
    prov = provenance.summary(rows)
    assert prov["by_role"]["tooling"]["real_model_share"] == 1.0
    assert prov["by_role"]["reasoning"] == {"real_model_share": 0.25, "models": {"big": 1, "offline": 3}}
    assert prov["samples_by_provenance"] == {"model": 0, "partly_offline": 4, "offline": 0}
    card = dataset_card({}, prov, "2026-01-15", ["tickets"])
    meta, body = _front_matter(card)
    assert "partly-offline-backend" in meta["tags"] and "offline-backend-not-model-data" not in meta["tags"]
    assert "Partly offline: 4 of 4 samples" in body and "(roles with offline text:\n> reasoning, critic)" in body
    assert "| backend | partly offline |" in body
    for line in ("| tooling | 100.0% | gpt-x (4) |", "| reasoning | 25.0% | big (1), offline (3) |",
                 "| critic | 0.0% | gpt-x (1), offline (1), unused (3) |"):
        assert line in body, line
    # a role that wrote nothing does not make a row offline; one used role offline makes it partly offline
    assert provenance.label({**real, "reasoning": "big", "critic": "unused"}) == "model"
    assert provenance.label(dict.fromkeys(provenance.ROLES, "offline") | {"critic": "unused"}) == "offline"
    # a sample whose earlier turn was offline is partly offline too
    turns = [{**real, **mixed}, {**real, "reasoning": "big", "critic": "big"}]
    assert provenance.sample_role_models(turns, 1) == {**real, "reasoning": "big+offline", "critic": "big"}
    assert provenance.label(provenance.sample_role_models(turns, 1)) == "partly_offline"
    assert provenance.label(provenance.sample_role_models(turns, 0)) == "partly_offline"


def test_row_role_models_reads_the_column_or_falls_back_to_model():
    assert provenance.row_role_models({"model": "m", "role_models": '{"reasoning": "m"}'}, "cot_traces") == \
        {"reasoning": "m", "critic": "unused"}
    assert provenance.row_role_models({"model": "m", "attempts": 2}, "cot_traces") == {"reasoning": "m", "critic": "m"}
    assert provenance.row_role_models({"model": "offline", "attempts": 1}, "cot_traces") == \
        {"reasoning": "offline", "critic": "unused"}
    assert provenance.row_role_models({"model": "q"}, "queries") == {"tooling": "q", "querying": "q"}


def test_exports_carry_each_rows_provenance(samples, tmp_path):
    rm = {"tooling": "gpt-x", "querying": "gpt-x", "reasoning": "offline", "critic": "offline"}
    paths = write_exports([dict(s, role_models=rm) for s in samples], tmp_path, "x")
    for kind in ("openai", "trl_prompt_completion", "sharegpt", "bfcl_prompting"):
        for line in paths[kind].read_text().splitlines():
            rec = json.loads(line)
            assert rec["role_models"] == rm and rec["provenance"] == "partly_offline", kind
    frame = pl.read_parquet(paths["parquet"])
    assert set(frame["provenance"]) == {"partly_offline"} and json.loads(frame["role_models"][0]) == rm


def test_dataset_card_says_how_to_train_each_file_and_shows_the_steps():
    steps = {"turns_with_calls": 40, "mean_steps_per_turn": 1.75, "mean_calls_per_step": 1.2,
             "multi_step_turn_share": 0.55, "turns_by_steps": {"1": 18, "2": 14, "3": 8}}
    prov = provenance.summary([dict.fromkeys(provenance.ROLES, "m")])
    _, body = _front_matter(dataset_card({"samples": 40, "steps": steps}, prov, "2026-01-15", ["fs_math"]))
    section = body[body.index("## How to train on each file"):body.index("## RL export")]
    flat = " ".join(section.split())
    for name, _path, _ in CARD_CONFIGS[:-1]:  # every SFT file has a row saying what to learn and how
        assert f"| `{_path}` |" in section, name
    for text in ("completion_only_loss", "`weight: 1`", "mask_history", "assistant_only_loss", "train_from",
                 "clairvoyant_call", "Note that the provided function is in Python 3 syntax."):
        assert text in flat, text
    assert "Steps: 1.75 per turn with calls, 1.20 calls per step, 55.0% of 40 turns" in body
    assert "| mean_steps_per_turn | 1.75 |" in body and "| 3 | 8 |" in body


def test_every_config_of_the_dataset_card_loads_by_name(samples, tmp_path, monkeypatch):
    """`load_dataset(<export dir>, <config>)` for each config the card names. The Parquet files are not
    configs: `datasets` picks one loader for the whole directory, and a Parquet config beside JSON Lines
    ones fails (shown below with a card that names one)."""
    import yaml
    from datasets import load_dataset

    from funreason_pipeline.export.card import loadable_configs

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "out"
    write_exports(samples, out, "funreason_mt")
    prov = provenance.summary([dict.fromkeys(provenance.ROLES, "m")] * len(samples))
    card = dataset_card({}, prov, "2026-01-15", ["fs_math"], num_samples=len(samples))
    (out / "README.md").write_text(card)
    meta, _ = _front_matter(card)
    assert [c["config_name"] for c in meta["configs"]] == [n for n, _, _ in loadable_configs()]
    for c in meta["configs"]:
        ds = load_dataset(str(out), c["config_name"], split="train", cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows > 0, c["config_name"]
    # the failure the card avoids: a Parquet config in a directory of JSON Lines files
    meta["configs"].append({"config_name": "samples", "data_files": [{"split": "train", "path": "samples.parquet"}]})
    (out / "README.md").write_text("---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n")
    from datasets.exceptions import DatasetGenerationError

    with pytest.raises(DatasetGenerationError):  # the JSON loader reading samples.parquet
        load_dataset(str(out), "samples", split="train", cache_dir=str(tmp_path / "hf2"))
