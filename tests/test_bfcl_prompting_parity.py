"""bfcl_prompting holds a dialogue exactly as bfcl-eval's own prompting handler does.

The same two-turn, multi-step dialogue on GorillaFileSystem is built twice: by our exporter (calls
executed on our World, the canonical messages rendered by `to_bfcl_prompting_record`) and by
bfcl-eval's own code (its test-entry loader for the function docs, the Qwen prompting handler's
message bookkeeping, BFCL's executor for the results). No network, no model: the "model output" is
the text of each step, the same on both sides. The messages and Qwen's rendered prompt must agree.
"""

from __future__ import annotations

import copy
import json

from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call
from bfcl_eval.model_handler.local_inference.qwen import QwenHandler
from bfcl_eval.utils import (
    add_language_specific_hint_to_function_doc,
    populate_test_cases_with_predefined_functions,
)

from funreason_pipeline.environments.bfcl import bfcl_tool_specs
from funreason_pipeline.environments.toolsets import World, toolset_by_name
from funreason_pipeline.export.bfcl_docs import bfcl_functions
from funreason_pipeline.export.formats import dialogue_to_samples, split_think, to_bfcl_prompting_record

SCENARIO = {"GorillaFileSystem": {"root": {"alex": {"type": "directory", "contents": {
    "notes": {"type": "directory", "contents": {
        "a.txt": {"type": "file", "content": "first draft"},
        ".env": {"type": "file", "content": "KEY=1"},
    }},
}}}}}

# per turn: the user query, then per step (reasoning, [(tool, arguments in the schema's order)], the
# text a model writes for it), then the reply
TURNS = [
    ("Go to notes, list everything including hidden files and tell me where I am.", [
        ("Enter notes first.", [("cd", {"folder": "notes"})], "[cd(folder='notes')]"),
        ("Now list with hidden files and print the path.", [("ls", {"a": True}), ("pwd", {})],
         "[ls(a=True), pwd()]"),
    ], "You are in /alex/notes; it holds .env and a.txt."),
    ("Rename a.txt to b.txt, make a folder 'old' and show me b.txt.", [
        ("Rename, and create the folder.", [("mv", {"source": "a.txt", "destination": "b.txt"}),
                                            ("mkdir", {"dir_name": "old"})],
         "[mv(source='a.txt', destination='b.txt'), mkdir(dir_name='old')]"),
        ("Show the renamed file.", [("cat", {"file_name": "b.txt"})], "[cat(file_name='b.txt')]"),
    ], "b.txt says: first draft."),
]


def _our_record() -> dict:
    specs = list(bfcl_tool_specs("GorillaFileSystem"))
    world = World.from_scenario(toolset_by_name("files"), copy.deepcopy(SCENARIO), specs)
    messages = [{"role": "system", "content": "You are a helpful assistant with access to tools."}]
    for k, (query, steps, reply) in enumerate(TURNS):
        messages.append({"role": "user", "content": query})
        n = 0
        for reasoning, calls, _text in steps:
            ids = [f"call_{k}_{n + i}" for i in range(len(calls))]
            n += len(calls)
            # canonical records sort argument keys (agents/chat.py); the export restores the schema order
            messages.append({"role": "assistant", "content": f"<think>\n{reasoning}\n</think>", "tool_calls": [
                {"id": i, "type": "function",
                 "function": {"name": name, "arguments": json.dumps(args, sort_keys=True)}}
                for i, (name, args) in zip(ids, calls)]})
            for i, (name, args) in zip(ids, calls):
                res = world.call(name, args)
                value = res.value if res.ok else {"error": res.error}
                messages.append({"role": "tool", "tool_call_id": i, "name": name,
                                 "content": json.dumps(value, ensure_ascii=False)})
        messages.append({"role": "assistant", "content": reply})
    dialogue = {"dialogue_id": "dlg-parity", "tools": [s.openai_tool() for s in specs], "messages": messages}
    sample = dialogue_to_samples(dialogue)[-1]
    return to_bfcl_prompting_record(sample, functions=bfcl_functions(specs))


def _bfcl_messages() -> list[dict]:
    """The chat as bfcl-eval's Qwen prompting handler keeps it, driven through its own methods
    (`inference_multi_turn_prompting`'s loop with the model's text given instead of queried)."""
    entry = {"id": "multi_turn_base_9999", "involved_classes": ["GorillaFileSystem"],
             "initial_config": copy.deepcopy(SCENARIO),
             "question": [[{"role": "user", "content": q}] for q, _, _ in TURNS]}
    entry = add_language_specific_hint_to_function_doc(populate_test_cases_with_predefined_functions([entry]))[0]
    handler = QwenHandler.__new__(QwenHandler)  # its prompting methods only: no server, no tokenizer
    data = handler._pre_query_processing_prompting(entry)
    for k, (_query, steps, reply) in enumerate(TURNS):
        if k == 0:
            data = handler.add_first_turn_message_prompting(data, entry["question"][0])
        else:
            data = handler._add_next_turn_user_message_prompting(data, entry["question"][k])
        for reasoning, _calls, text in steps:
            response = {"model_responses": text, "reasoning_content": reasoning}
            data = handler._add_assistant_message_prompting(data, response)
            response["model_responses_decoded"] = handler.decode_execute(text, has_tool_call_tag=False)
            results, _ = execute_multi_turn_func_call(
                response["model_responses_decoded"], entry["initial_config"], entry["involved_classes"],
                "funreason_parity", entry["id"])
            data = handler._add_execution_results_prompting(data, results, response)
        data = handler._add_assistant_message_prompting(data, {"model_responses": reply, "reasoning_content": ""})
    return data["message"]


def _as_rendered_history(messages: list[dict]) -> list[dict]:
    """BFCL's messages in our record's form: reasoning inside the content in the current (last) turn,
    none in earlier turns (Qwen's `_format_prompt` shows it only after the last user query)."""
    last_user = max(i for i, m in enumerate(messages) if m["role"] == "user")
    out = []
    for i, m in enumerate(messages):
        m = {k: v for k, v in m.items() if k != "reasoning_content"}
        if messages[i]["role"] == "assistant" and i > last_user and messages[i].get("reasoning_content"):
            m["content"] = f"<think>\n{messages[i]['reasoning_content']}\n</think>\n\n{m['content']}"
        out.append(m)
    return out


def test_bfcl_prompting_matches_bfcl_evals_own_handler():
    ours = _our_record()
    theirs = _bfcl_messages()
    plain = [{k: v for k, v in m.items() if k != "weight"} for m in ours["messages"]]
    # the system prompt: BFCL's docs (dict/float, response schemas, the Python 3 hint), BFCL's template
    assert plain[0] == theirs[0]
    assert '"response": {' in plain[0]["content"] and "Note that the provided function is in Python 3 syntax." \
        in plain[0]["content"]
    # every message: one tool message per call named by the call, results as BFCL's executor gives them
    assert plain == _as_rendered_history(theirs)
    tools = [m for m in plain if m["role"] == "tool"]
    assert tools[0] == {"role": "tool", "name": "cd(folder='notes')",
                        "content": '{"current_working_directory": "notes"}'}
    assert {"role": "tool", "name": "mkdir(dir_name='old')", "content": "None"} in tools
    # what the model is trained on renders exactly as BFCL prompts it (Qwen drops earlier reasoning)
    handler = QwenHandler.__new__(QwenHandler)
    assert handler._format_prompt(plain, []) == handler._format_prompt(theirs, [])
    steps = [i for i, m in enumerate(plain) if m["role"] == "assistant" and i >= ours["train_from"]]
    for i in steps:  # each step's prompt, as BFCL would send it before that step
        assert handler._format_prompt(plain[:i], []) == handler._format_prompt(theirs[:i], [])
    # the current turn's steps carry their reasoning and weight 1; earlier turns neither
    weights = [(m["weight"], split_think(m["content"])[0] is not None)
               for m in ours["messages"] if m["role"] == "assistant"]
    assert weights == [(0, False), (0, False), (0, False), (1, True), (1, True), (1, False)]
