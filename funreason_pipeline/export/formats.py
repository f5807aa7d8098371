"""Render canonical dialogues / SFT samples to the formats trainers read.

The canonical record is OpenAI chat format (see ``shared/design/architecture.md``): a dialogue is
``{"dialogue_id", "trajectory_id", "toolset", "tools", "messages"}`` and an SFT sample is one user
turn of it: ``{"sample_id", "dialogue_id", "turn_index", "messages", "tools", "train_from"}`` where
``messages`` runs from the start of the dialogue to the end of turn ``turn_index`` and
``train_from`` is the index of the first assistant message of that turn (the loss goes on
``messages[train_from:]``'s assistant messages only; earlier turns are context).

Exporters (all pure functions of one sample, no Dagster):

* ``to_openai_jsonl_record``  -> ``{"messages", "tools"}`` for TRL's ``SFTTrainer`` (conversational
  language-modeling type with a ``tools`` column).
* ``to_trl_prompt_completion_record`` -> ``{"prompt", "completion", "tools"}``: the same sample as a
  TRL conversational prompt-completion record, the one TRL format that puts the loss on the
  current turn only (``completion_only_loss``).
* ``to_sharegpt_record`` -> LLaMA-Factory ShareGPT with ``function_call`` / ``observation`` roles.
* ``to_bfcl_prompting_record`` -> the BFCL "prompting" style FunReason-MT trained on:
  ``<think>...</think>`` + a Python-like call list ``[f(a=1), g()]``, one tool message per step.
* ``write_exports`` writes all of them plus ``samples.parquet`` and LLaMA-Factory's
  ``dataset_info.json``, byte-identically for the same input.

``parse_pythonic_calls`` is the inverse of the call-list rendering. It uses ``ast`` only: the text is
parsed, never compiled or evaluated, and anything but ``name(keyword=literal, ...)`` is rejected.
"""

from __future__ import annotations

import ast
import io
import json
import keyword
import math
import os
from collections.abc import Collection, Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import polars as pl

from funreason_pipeline.export.files import write_files
from funreason_pipeline.export.steps import turn_steps
from funreason_pipeline.provenance import label

# --------------------------------------------------------------------------------------------------
# File names written by write_exports (the dataset card points its HF `configs` at the same names).
# --------------------------------------------------------------------------------------------------
OPENAI_FILE = "openai.jsonl"
TRL_PROMPT_COMPLETION_FILE = "trl_prompt_completion.jsonl"
SHAREGPT_FILE = "sharegpt.jsonl"
BFCL_PROMPTING_FILE = "bfcl_prompting.jsonl"
PARQUET_FILE = "samples.parquet"
DATASET_INFO_FILE = "dataset_info.json"

EXPORT_FILES: dict[str, str] = {
    "openai": OPENAI_FILE,
    "trl_prompt_completion": TRL_PROMPT_COMPLETION_FILE,
    "sharegpt": SHAREGPT_FILE,
    "bfcl_prompting": BFCL_PROMPTING_FILE,
    "parquet": PARQUET_FILE,
    "dataset_info": DATASET_INFO_FILE,
}

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


class FormatError(ValueError):
    """A record or call text that cannot be rendered/parsed (a ValueError: callers reject the item)."""


# Upper bounds for parse_pythonic_calls: model output is untrusted; keep the parser's work bounded.
MAX_CALL_TEXT_CHARS = 200_000


# --------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------
def _dumps(value: Any) -> str:
    """The one JSON serialisation used for files: sorted keys, UTF-8 text, no NaN/Infinity."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


def _arguments_object(name: str, arguments: Any) -> dict[str, Any]:
    """A tool call's arguments as a dict (canonical records hold a JSON string, OpenAI style)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except json.JSONDecodeError as exc:
            raise FormatError(f"arguments of {name!r} are not valid JSON: {exc}") from exc
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        raise FormatError(f"arguments of {name!r} must be a JSON object, got {type(arguments).__name__}")
    return arguments


def _result_value(content: Any) -> Any:
    """A tool message's content as a JSON value (the text parsed when it is JSON, else the text)."""
    if isinstance(content, str):
        try:
            return json.loads(content)
        except json.JSONDecodeError:
            return content
    return content


def _plain_functions(tools: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """``[{"type": "function", "function": f}]`` -> ``[f]`` (plain entries pass through)."""
    out = []
    for tool in tools:
        if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
            out.append(dict(tool["function"]))
        else:
            out.append(dict(tool))
    return out


def _split_system(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    if messages and messages[0].get("role") == "system":
        return messages[0].get("content") or "", messages[1:]
    return None, messages


def split_think(text: str) -> tuple[str | None, str]:
    """``"<think>\\nR\\n</think>\\n\\nrest"`` -> ``("R", "rest")``; ``(None, text)`` without a think block."""
    stripped = text.lstrip()
    if not stripped.startswith(THINK_OPEN):
        return None, text
    end = stripped.find(THINK_CLOSE)
    if end < 0:
        raise FormatError("unterminated <think> block")
    reasoning = stripped[len(THINK_OPEN) : end].strip("\n")
    return reasoning, stripped[end + len(THINK_CLOSE) :].lstrip("\n")


def normalize_sample(sample: Mapping[str, Any]) -> dict[str, Any]:
    """A validated copy of ``sample`` with ``messages``/``tools`` as lists and ``train_from`` set.

    Accepts rows of the ``sft_samples`` table as they come out of DuckDB: ``messages`` and ``tools``
    may be JSON text, and a missing ``train_from`` defaults to the message after the last user message.
    """
    out = dict(sample)
    sid = out.get("sample_id")
    for col in ("messages", "tools"):
        if isinstance(out.get(col), str):
            try:
                out[col] = json.loads(out[col])
            except json.JSONDecodeError as exc:
                raise FormatError(f"sample {sid!r}: {col} is not valid JSON: {exc}") from exc
    messages = out.get("messages")
    if not isinstance(messages, list) or not messages:
        raise FormatError(f"sample {sid!r}: messages must be a non-empty list")
    if not isinstance(out.get("tools"), list):
        raise FormatError(f"sample {sid!r}: tools must be a list")
    if out.get("train_from") is None:
        users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
        out["train_from"] = users[-1] + 1 if users else None
    train_from = out["train_from"]
    if not isinstance(train_from, int) or not 0 < train_from < len(messages):
        raise FormatError(f"sample {sid!r}: train_from {train_from!r} out of range")
    if messages[train_from - 1].get("role") != "user":
        raise FormatError(f"sample {sid!r}: message before train_from is not the user turn")
    return out


# --------------------------------------------------------------------------------------------------
# Dialogue -> samples
# --------------------------------------------------------------------------------------------------
def dialogue_to_samples(dialogue: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Split a canonical dialogue into one SFT sample per user turn (ids ``"<dialogue_id>:<k>"``)."""
    messages = list(dialogue["messages"])
    starts = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    samples = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else len(messages)
        if end == start + 1:
            raise FormatError(f"dialogue {dialogue['dialogue_id']!r}: turn {k} has no assistant message")
        samples.append(
            {
                "sample_id": f"{dialogue['dialogue_id']}:{k}",
                "dialogue_id": dialogue["dialogue_id"],
                "turn_index": k,
                "messages": messages[:end],
                "tools": list(dialogue["tools"]),
                "train_from": start + 1,
            }
        )
    return samples


# --------------------------------------------------------------------------------------------------
# OpenAI / TRL
# --------------------------------------------------------------------------------------------------
def _openai_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c["function"]
                # Arguments as a JSON *object*, not the OpenAI-API string: TRL's docs ("Tool Calling" in
                # dataset_formats.md) show `"arguments": {...}`, and transformers chat templates expect a
                # mapping (Qwen's template accepts both, but Llama-3.1's renders `arguments | tojson`, which
                # would double-encode a string). Arrow's struct unification across rows is harmless here:
                # datasets >= 5 stores such columns as Json, older versions pad missing keys with None and
                # TRL's SFTTrainer strips them again (`remove_none_values`).
                call = {
                    "type": c.get("type", "function"),
                    "function": {
                        "name": fn["name"],
                        "arguments": _arguments_object(fn["name"], fn.get("arguments")),
                    },
                }
                if "id" in c:
                    call["id"] = c["id"]
                calls.append(call)
            m["tool_calls"] = calls
        out.append(m)
    return out


def _weighted(messages: list[dict[str, Any]], train_from: int) -> list[dict[str, Any]]:
    """Assistant messages with OpenAI fine-tuning's ``weight``: 1 from ``train_from`` on (the current
    turn), 0 before (earlier turns are context). Other roles carry no weight key, as OpenAI's."""
    return [dict(m, weight=int(i >= train_from)) if m.get("role") == "assistant" else m
            for i, m in enumerate(messages)]


def to_openai_jsonl_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """``{"messages", "tools", "sample_id", "turn_index"}``: TRL's conversational language-modeling
    type with a ``tools`` column, each assistant message with a ``weight`` (1: learn it, 0: context).

    ``tools`` stays a list of OpenAI tool dicts (``{"type": "function", "function": {...}}``), which
    every TRL version with tool support passes to ``apply_chat_template(tools=...)``; recent TRL also
    accepts a JSON string there. TRL itself does not read ``weight`` (it trains on the whole record,
    or on every assistant message with ``assistant_only_loss=True``); for loss on the current turn's
    own tokens only, use ``to_trl_prompt_completion_records``.
    """
    sample = normalize_sample(sample)
    return {"messages": _weighted(_openai_messages(sample["messages"]), sample["train_from"]),
            "tools": sample["tools"], "sample_id": str(sample["sample_id"]), "turn_index": int(sample["turn_index"])}


def to_trl_prompt_completion_records(sample: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One TRL conversational prompt-completion record per assistant message of the current turn.

    ``completion`` is that one assistant message (a step's ``<think>`` + ``tool_calls``, a retry, or
    the closing reply); ``prompt`` is everything before it, earlier steps' tool results included.
    TRL masks the prompt of a prompt-completion record (``completion_only_loss``, on by default for
    this type), so the loss is on the model's own tokens only: tool results are never trained, with
    any chat template (``assistant_only_loss`` needs ``{% generation %}`` markers; this does not).
    ``step`` numbers the record's assistant message within its turn (0, 1, ...; the reply is last).
    """
    sample = normalize_sample(sample)
    messages = _openai_messages(sample["messages"])
    tf = sample["train_from"]
    out = []
    for i in range(tf, len(messages)):
        if messages[i].get("role") != "assistant":
            continue
        out.append({"prompt": messages[:i], "completion": [messages[i]], "tools": sample["tools"],
                    "sample_id": str(sample["sample_id"]), "turn_index": int(sample["turn_index"]),
                    "step": len(out)})
    if not out:
        raise FormatError(f"sample {sample.get('sample_id')!r}: the current turn has no assistant message")
    return out


def to_trl_prompt_completion_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """The last record of ``to_trl_prompt_completion_records`` (the closing reply)."""
    return to_trl_prompt_completion_records(sample)[-1]


# --------------------------------------------------------------------------------------------------
# LLaMA-Factory ShareGPT
# --------------------------------------------------------------------------------------------------
# LLaMA-Factory's OpenAIDatasetConverter joins a step's tool results into one observation with this
OBSERVATION_JOIN = "\n</tool_response>\n<tool_response>\n"

SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}


def _function_call_value(content: str, tool_calls: list[dict[str, Any]]) -> str:
    calls = [
        {
            "name": c["function"]["name"],
            "arguments": _arguments_object(c["function"]["name"], c["function"].get("arguments")),
        }
        for c in tool_calls
    ]
    # Always a JSON list, as LLaMA-Factory's own OpenAI-API front end builds it (api/chat.py); its
    # FunctionFormatter accepts a list (parallel calls) or a single object, and re-serialises
    # `arguments`, so they must be objects here, not JSON strings.
    body = json.dumps(calls, ensure_ascii=False)
    text = (content or "").strip()
    if not text:
        return body
    reasoning, rest = split_think(text)
    if reasoning is None or rest.strip():
        raise FormatError(
            "LLaMA-Factory function_call messages may carry only a <think> block besides the calls; "
            f"got {text[:80]!r}"
        )
    # FunctionFormatter cuts `thought_words` (default "<think>\n" ... "\n</think>\n\n") off the front
    # before json.loads-ing the rest, so the block must have exactly that shape.
    return f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{body}"


def check_sharegpt_alternation(record: Mapping[str, Any]) -> None:
    """Raise ValueError unless ``record`` passes LLaMA-Factory's SharegptDatasetConverter checks.

    Human/observation at odd positions (1-based), gpt/function_call at even ones, an even count.
    """
    conv = record.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise FormatError("conversations must be a non-empty list")
    odd, even = ("human", "observation"), ("gpt", "function_call")
    for i, m in enumerate(conv):
        allowed = odd if i % 2 == 0 else even
        if m.get("from") not in allowed:
            raise FormatError(f"position {i + 1}: role {m.get('from')!r} not in {allowed}")
        if not isinstance(m.get("value"), str):
            raise FormatError(f"position {i + 1}: value must be a string")
    if len(conv) % 2:
        raise FormatError("conversations must end with a gpt/function_call message (even count)")


def to_sharegpt_record(sample: Mapping[str, Any]) -> dict[str, Any]:
    """LLaMA-Factory ShareGPT: ``{"conversations": [{"from", "value"}], "system", "tools"}``.

    * an assistant step with tool calls -> one ``function_call`` whose value is the JSON list of
      ``{"name", "arguments"}`` (its ``<think>`` block, if any, in front: LLaMA-Factory splits it off);
    * that step's tool messages -> ONE ``observation`` (the alternation rule forbids two in a row):
      the result texts in call order joined with ``OBSERVATION_JOIN``, exactly as LLaMA-Factory's
      own OpenAI-format converter merges consecutive tool messages, so templates that wrap an
      observation in ``<tool_response>`` tags (Qwen's) show one block per result;
    * a closing reply -> ``gpt``; ``tools`` is a JSON string of the plain function dicts
      (``{"name", "description", "parameters"}``), the form every LLaMA-Factory version reads.

    Note: LLaMA-Factory computes the loss on every gpt/function_call message of a record and never on
    observations; ``turn_index`` is the record's last turn (see ``write_exports``, ``sharegpt_per``).
    """
    sample = normalize_sample(sample)
    system, rest = _split_system(sample["messages"])
    conv: list[dict[str, str]] = []
    pending: list[Any] = []  # tool results of the current step

    def flush() -> None:
        if pending:
            texts = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in pending]
            conv.append({"from": "observation", "value": OBSERVATION_JOIN.join(texts)})
            pending.clear()

    for m in rest:
        role = m.get("role")
        if role == "tool":
            if not conv or conv[-1]["from"] != "function_call":  # results wait in `pending`
                raise FormatError("a tool message must follow an assistant message with tool calls")
            pending.append(m.get("content", ""))
            continue
        flush()
        if role == "user":
            conv.append({"from": "human", "value": m.get("content") or ""})
        elif role == "assistant" and m.get("tool_calls"):
            conv.append(
                {
                    "from": "function_call",
                    "value": _function_call_value(m.get("content") or "", m["tool_calls"]),
                }
            )
        elif role == "assistant":
            conv.append({"from": "gpt", "value": m.get("content") or ""})
        else:
            raise FormatError(f"unexpected role {role!r} in a ShareGPT conversation")
    flush()
    record = {
        "conversations": conv,
        "system": system or "",
        "tools": json.dumps(_plain_functions(sample["tools"]), ensure_ascii=False),
        "sample_id": str(sample["sample_id"]),
        "turn_index": int(sample["turn_index"]),
    }
    check_sharegpt_alternation(record)
    return record


def llamafactory_dataset_info(name: str, file_name: str = SHAREGPT_FILE) -> dict[str, Any]:
    """``{name: entry}`` for LLaMA-Factory's ``data/dataset_info.json`` (merge it with ``dict.update``)."""
    return {
        name: {
            "file_name": file_name,
            "formatting": "sharegpt",
            "columns": {"messages": "conversations", "system": "system", "tools": "tools"},
            "tags": dict(SHAREGPT_TAGS),
        }
    }


# --------------------------------------------------------------------------------------------------
# BFCL prompting format (Python-like call lists)
# --------------------------------------------------------------------------------------------------
def _bfcl_prompt_template() -> str:
    """BFCL's default prompting system prompt, with ``{functions}`` left as the only placeholder.

    Built from the installed ``bfcl_eval`` constants, the way its ``formulate_system_prompt`` does
    for the default format (python calls, no tag, JSON docs, plaintext, classic style), so it follows
    the benchmark version we evaluate on. A copy of that text is the fallback without bfcl_eval.
    """
    try:
        from bfcl_eval.constants import default_prompts as dp

        style = dp.PROMPT_STYLE_TEMPLATES["classic"]
        tool_call_format = style["tool_call_no_tag"].format(
            output_format=dp.OUTPUT_FORMAT_MAPPING["python"], param_types=dp.PARAM_TYPE_MAPPING["python"]
        )
        available = style["available_tools"].replace("{format}", "json")
        return dp.PROMPT_TEMPLATE_MAPPING["plaintext"].format(
            persona=style["persona"],
            task=style["task"],
            tool_call_format=tool_call_format,
            multiturn_behavior=style["multiturn_behavior"],
            available_tools=available,
        )
    except (ImportError, KeyError, AttributeError):  # pragma: no cover - bfcl_eval is a dependency
        return (
            "You are an expert in composing functions.You are given a question and a set of possible functions. "
            "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. "
            "If none of the functions can be used, point it out. If the given question lacks the parameters "
            "required by the function, also point it out.\n\nYou should only return the function calls in your "
            "response.\n\nIf you decide to invoke any of the function(s), you MUST put it in the format of "
            "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)].  You "
            "SHOULD NOT include any other text in the response.\n\nAt each turn, you should try your best to "
            "complete the tasks requested by the user within the current turn. Continue to output functions to "
            "call until you have fulfilled the user's request to the best of your ability. Once you have no more "
            "functions to call, the system will consider the current turn complete and proceed to the next turn "
            "or task.\n\nHere is a list of functions in json format that you can invoke.\n{functions}\n"
        )


def bfcl_system_prompt(functions: Iterable[Mapping[str, Any]], template: str | None = None) -> str:
    """The prompting-style system prompt listing ``functions`` (BFCL docs, ``bfcl_docs``) as BFCL
    does: ``json.dumps(functions, indent=4)`` (ASCII-escaped, as BFCL's default ``json.dumps``)."""
    text = json.dumps([dict(f) for f in functions], indent=4)
    return (template or _bfcl_prompt_template()).replace("{functions}", text)


@lru_cache(maxsize=64)
def _hinted_system_prompt(docs_json: str, template: str | None) -> str:
    """`bfcl_system_prompt(with_language_hint(docs))` of the docs that `docs_json` (compact
    ``json.dumps``) serialises. A toolset's samples list the same docs, and the indented dump is
    pure-Python JSON: built once per content, not per record. The key is the docs' full content (key
    order and values), and the text depends on nothing else, so a hit is the text a rebuild gives."""
    from funreason_pipeline.export.bfcl_docs import with_language_hint

    return bfcl_system_prompt(with_language_hint(json.loads(docs_json)), template)


def _is_name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def _check_json_value(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise FormatError(f"{where}: non-finite float {value!r} has no literal form")
        return
    if isinstance(value, list):
        for i, v in enumerate(value):
            _check_json_value(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise FormatError(f"{where}: dict key {k!r} is not a string")
            _check_json_value(v, f"{where}[{k!r}]")
        return
    raise FormatError(f"{where}: {type(value).__name__} is not a JSON value")


def render_pythonic_calls(calls: Iterable[Mapping[str, Any]]) -> str:
    """``[{"name": "cd", "arguments": {"folder": "docs"}}, ...]`` -> ``"[cd(folder='docs'), ...]"``.

    Values are ``repr`` of the JSON values, i.e. Python literals (``'x'``, ``True``, ``None``, lists,
    dicts), which ``ast.literal_eval`` reads back exactly. Names that are not identifiers (or are
    Python keywords) have no call syntax and raise ValueError. Dotted tool names (``Class.method``,
    used when two classes share a method) render as attribute calls.
    """
    parts = []
    for c in calls:
        name = c["name"]
        if not isinstance(name, str) or not all(_is_name(p) for p in name.split(".")):
            raise FormatError(f"tool name {name!r} cannot be written as a Python call")
        args = _arguments_object(name, c.get("arguments"))
        rendered = []
        for k, v in args.items():
            if not _is_name(k):
                raise FormatError(f"argument name {k!r} of {name} cannot be written as a keyword argument")
            _check_json_value(v, f"{name}({k}=...)")
            rendered.append(f"{k}={v!r}")
        parts.append(f"{name}({', '.join(rendered)})")
    return "[" + ", ".join(parts) + "]"


def _call_name(func: ast.expr, allowed_names: Collection[str] | None) -> str:
    if isinstance(func, ast.Name):
        name = func.id
    elif isinstance(func, ast.Attribute):
        # Only a chain of plain names (`Class.method`), and only if the caller allow-lists it.
        parts = []
        node: ast.expr = func
        while isinstance(node, ast.Attribute):
            parts.append(node.attr)
            node = node.value
        if not isinstance(node, ast.Name):
            raise FormatError("only calls of plain names are allowed (got a call on an expression)")
        name = ".".join([node.id, *reversed(parts)])
        if allowed_names is None or name not in allowed_names:
            raise FormatError(f"attribute call {name!r} is not allowed")
    else:
        raise FormatError(f"only calls of plain names are allowed (got {type(func).__name__})")
    if allowed_names is not None and name not in allowed_names:
        raise FormatError(f"unknown tool {name!r}")
    return name


def _literal(node: ast.expr, where: str) -> Any:
    try:
        value = ast.literal_eval(node)  # literals only: no names, calls, attributes, f-strings
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError) as exc:
        raise FormatError(f"{where}: argument is not a literal ({type(node).__name__})") from exc
    return _to_json(value, where)


def _to_json(value: Any, where: str) -> Any:
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, list):
        return [_to_json(v, where) for v in value]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise FormatError(f"{where}: dict keys must be strings")
        return {k: _to_json(v, where) for k, v in value.items()}
    _check_json_value(value, where)  # rejects sets, bytes, complex, Ellipsis, nan/inf
    return value


def parse_pythonic_calls(text: str, allowed_names: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Parse ``"[f(a=1), g(b='x')]"`` into ``[{"name": "f", "arguments": {"a": 1}}, ...]`` safely.

    The text is only *parsed* (``ast.parse(mode="eval")``); nothing is compiled or evaluated, and
    argument values go through ``ast.literal_eval`` on their own nodes. Accepted: a list or tuple of
    calls, or one bare call; each call of a plain name with keyword arguments whose values are
    literals (str, int, float, bool, None, lists/tuples/dicts of those). Rejected with ValueError:
    positional arguments, ``**kwargs``, repeated keywords, names/calls/attributes/lambdas/f-strings
    in values, attribute calls (unless the dotted name is in ``allowed_names``), and names outside
    ``allowed_names`` when it is given.
    """
    if not isinstance(text, str):
        raise FormatError("call text must be a string")
    if len(text) > MAX_CALL_TEXT_CHARS:
        raise FormatError(f"call text longer than {MAX_CALL_TEXT_CHARS} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, MemoryError, RecursionError) as exc:
        raise FormatError(f"not a Python call list: {exc}") from exc
    body = tree.body
    if isinstance(body, (ast.List, ast.Tuple)):
        nodes = list(body.elts)
    elif isinstance(body, ast.Call):
        nodes = [body]
    else:
        raise FormatError(f"expected a list of calls, got {type(body).__name__}")
    calls = []
    for i, node in enumerate(nodes):
        if not isinstance(node, ast.Call):
            raise FormatError(f"element {i} is not a call ({type(node).__name__})")
        name = _call_name(node.func, allowed_names)
        if node.args:
            raise FormatError(f"{name}: positional arguments are not allowed")
        arguments: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise FormatError(f"{name}: **kwargs are not allowed")
            if kw.arg in arguments:
                raise FormatError(f"{name}: argument {kw.arg!r} given twice")
            arguments[kw.arg] = _literal(kw.value, f"{name}({kw.arg}=...)")
        calls.append({"name": name, "arguments": arguments})
    return calls


def _ordered_arguments(arguments: dict[str, Any], doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """Arguments in the order of the function's schema (canonical records sort them; a model writes
    them as the doc lists them), unknown keys after in their own order."""
    props = list(((doc or {}).get("parameters") or {}).get("properties") or {})
    return {**{k: arguments[k] for k in props if k in arguments},
            **{k: v for k, v in arguments.items() if k not in props}}


def _bfcl_value_text(value: Any) -> str:
    # bfcl_eval.model_handler.utils.parse_nested_value: a dict whose values are all dicts is
    # written as a nested call, any other dict as {'k': v}, everything else as repr
    if isinstance(value, dict):
        if value and all(isinstance(v, dict) for v in value.values()):
            name, args = next(iter(value.items()))
            return f"{name}({', '.join(f'{k}={_bfcl_value_text(v)}' for k, v in args.items())})"
        return "{" + ", ".join(f"'{k}': {_bfcl_value_text(v)}" for k, v in value.items()) + "}"
    return repr(value)


def bfcl_call_string(name: str, arguments: Mapping[str, Any]) -> str:
    """A call as BFCL's executor writes it (``decoded_output_to_execution_list``): the ``name`` of
    the tool message that carries its result."""
    return f"{name}({', '.join(f'{k}={_bfcl_value_text(v)}' for k, v in arguments.items())})"


def bfcl_result_text(content: Any) -> str:
    """A tool result as BFCL's executor hands it to the model (``execute_multi_turn_func_call``): a
    str as it is, a dict as ``json.dumps`` (ASCII, its key order), anything else as ``str()`` (Python
    syntax: ``None``, ``True``, single quotes)."""
    value = _result_value(content)
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return json.dumps(value)
    return str(value)


def to_bfcl_prompting_record(sample: Mapping[str, Any], system_template: str | None = None,
                             functions: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """The sample as BFCL's prompting handlers hold a multi-turn chat (``base_oss_handler`` and the
    Qwen handler of bfcl-eval): ``{"messages", "train_from", "sample_id", "turn_index"}``.

    * system: BFCL's prompting system prompt listing the sample's tools as BFCL docs (``functions``:
      name -> doc from ``bfcl_docs.bfcl_functions``, with type names ``dict``/``float`` and the
      ``response`` schema; tools missing there are converted from their OpenAI form) with BFCL's
      Python-3 hint; the dialogue's own system prompt is left out, as BFCL's test entries have none;
    * assistant step: ``[f(a=1), g()]`` with arguments in the schema's order; in the current turn
      preceded by its ``<think>`` block (``<think>\\nR\\n</think>\\n\\n``), in earlier turns without
      it, which is how the Qwen handler renders history (reasoning only after the last user query);
    * one ``tool`` message per call, ``name`` the call as BFCL's executor writes it and ``content``
      the result as it renders it (``bfcl_result_text``);
    * replies as plain text; ``weight`` on every assistant message (1 in the current turn).
    ``train_from`` is re-indexed to this message list.
    """
    from funreason_pipeline.export.bfcl_docs import from_openai_tool

    sample = normalize_sample(sample)
    messages = sample["messages"]
    tf = sample["train_from"]
    docs = [dict(functions[name]) if functions and name in functions else from_openai_tool(t)
            for t in sample["tools"] for name in [_plain_functions([t])[0]["name"]]]
    by_name = {d["name"]: d for d in docs}
    out: list[dict[str, Any]] = [
        {"role": "system", "content": _hinted_system_prompt(json.dumps(docs), system_template)}
    ]
    _, rest = _split_system(messages)
    offset = len(messages) - len(rest)
    calls_by_id: dict[str, str] = {}
    new_index: dict[int, int] = {}
    for i, m in enumerate(rest, start=offset):
        role = m.get("role")
        new_index[i] = len(out)
        if role == "user":
            out.append({"role": "user", "content": m.get("content") or ""})
        elif role == "assistant" and m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                name = c["function"]["name"]
                args = _ordered_arguments(_arguments_object(name, c["function"].get("arguments")), by_name.get(name))
                calls.append({"name": name, "arguments": args})
                calls_by_id[c.get("id")] = bfcl_call_string(name, args)
            text = render_pythonic_calls(calls)
            reasoning, _ = split_think((m.get("content") or "").strip())
            if i >= tf and reasoning is not None:
                text = f"{THINK_OPEN}\n{reasoning}\n{THINK_CLOSE}\n\n{text}"
            out.append({"role": "assistant", "content": text, "weight": int(i >= tf)})
        elif role == "assistant":
            content = m.get("content") or ""
            if i < tf:  # history: the Qwen handler keeps no earlier turn's reasoning
                content = split_think(content)[1]
            out.append({"role": "assistant", "content": content, "weight": int(i >= tf)})
        elif role == "tool":
            name = calls_by_id.get(m.get("tool_call_id"))
            if name is None:
                raise FormatError(f"tool message without a call: {m.get('tool_call_id')!r}")
            out.append({"role": "tool", "name": name, "content": bfcl_result_text(m.get("content", ""))})
        else:
            raise FormatError(f"unexpected role {role!r} in a BFCL prompting conversation")
    return {"messages": out, "train_from": new_index[tf], "sample_id": str(sample["sample_id"]),
            "turn_index": int(sample["turn_index"])}


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------
def _jsonl(records: Iterable[Mapping[str, Any]]) -> bytes:
    return "".join(_dumps(r) + "\n" for r in records).encode("utf-8")


def _sort_key(sample: Mapping[str, Any]) -> tuple[str, int, str]:
    return (str(sample["dialogue_id"]), int(sample["turn_index"]), str(sample["sample_id"]))


def _prov(record: dict[str, Any], sample: Mapping[str, Any]) -> dict[str, Any]:
    """The record with the sample's provenance (role -> model, and its label), when it has one."""
    if "role_models" not in sample:
        return record
    role_models = sample["role_models"]
    if isinstance(role_models, str):
        role_models = json.loads(role_models)
    return {**record, "role_models": role_models, "provenance": sample.get("provenance") or label(role_models)}


def render_exports(
    samples: Iterable[Mapping[str, Any]],
    dataset_name: str,
    *,
    sharegpt_per: Literal["dialogue", "sample"] = "dialogue",
    bfcl_functions: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, bytes]:
    """Every export of ``samples`` as content: ``{file name: bytes}`` (the names of EXPORT_FILES).

    Output is byte-identical for the same input: samples are sorted by (dialogue_id, turn_index,
    sample_id), JSON is written with sorted keys, and no file holds a timestamp.

    ``sharegpt_per="dialogue"`` (default) renders, per dialogue, only its longest sample: LLaMA-Factory
    trains on every gpt/function_call message of a record, so one record per *turn* would train turn
    0 once per later turn; the longest sample trains each turn once on the same left context, which is
    the per-turn objective. ``"sample"`` renders one record per sample.

    ``bfcl_functions`` (tool name -> BFCL doc, ``bfcl_docs.bfcl_functions``) gives
    ``bfcl_prompting`` BFCL's own function docs with their response schemas; a sample may carry its
    own under the key ``bfcl_functions`` (a day's export mixes toolsets).
    """
    ordered = sorted((normalize_sample(s) for s in samples), key=_sort_key)
    ids = [s["sample_id"] for s in ordered]
    if len(set(ids)) != len(ids):
        raise FormatError("duplicate sample_id in export input")

    if sharegpt_per == "dialogue":
        longest: dict[str, Mapping[str, Any]] = {}
        for s in ordered:  # sorted by turn_index within a dialogue: the last one wins
            longest[s["dialogue_id"]] = s
        sharegpt_samples = list(longest.values())
    elif sharegpt_per == "sample":
        sharegpt_samples = ordered
    else:
        raise FormatError(f"sharegpt_per must be 'dialogue' or 'sample', got {sharegpt_per!r}")

    with_prov = any("role_models" in s for s in ordered)
    files = {
        OPENAI_FILE: _jsonl(_prov(to_openai_jsonl_record(s), s) for s in ordered),
        TRL_PROMPT_COMPLETION_FILE: _jsonl(_prov(r, s) for s in ordered for r in to_trl_prompt_completion_records(s)),
        SHAREGPT_FILE: _jsonl(_prov(to_sharegpt_record(s), s) for s in sharegpt_samples),
        BFCL_PROMPTING_FILE: _jsonl(
            _prov(to_bfcl_prompting_record(s, functions=s.get("bfcl_functions") or bfcl_functions), s)
            for s in ordered),
    }
    columns: dict[str, list[Any]] = {
        "sample_id": [str(s["sample_id"]) for s in ordered],
        "dialogue_id": [str(s["dialogue_id"]) for s in ordered],
        "turn_index": [int(s["turn_index"]) for s in ordered],
        "messages": [_dumps(s["messages"]) for s in ordered],
        "tools": [_dumps(s["tools"]) for s in ordered],
        "train_from": [int(s["train_from"]) for s in ordered],
        # the current turn's steps (calls per step): what the loss-carrying messages hold
        "steps": [_dumps([len(st["calls"]) for st in turn_steps(s["messages"], s["train_from"] - 1)])
                  for s in ordered],
    }
    schema = {"sample_id": pl.String, "dialogue_id": pl.String, "turn_index": pl.Int64, "messages": pl.String,
              "tools": pl.String, "train_from": pl.Int64, "steps": pl.String}
    if with_prov:  # which model wrote each role of the row, and whether any of it is offline
        columns["role_models"] = [_dumps(_prov({}, s).get("role_models")) for s in ordered]
        columns["provenance"] = [_prov({}, s).get("provenance") for s in ordered]
        schema |= {"role_models": pl.String, "provenance": pl.String}
    frame = pl.DataFrame(columns, schema=schema)
    parquet = io.BytesIO()
    frame.write_parquet(parquet, compression="zstd", statistics=True)
    files[PARQUET_FILE] = parquet.getvalue()

    info = llamafactory_dataset_info(dataset_name, SHAREGPT_FILE)
    files[DATASET_INFO_FILE] = (json.dumps(info, indent=2, sort_keys=True) + "\n").encode("utf-8")
    return files


def write_exports(
    samples: Iterable[Mapping[str, Any]],
    out_dir: str | os.PathLike[str],
    dataset_name: str,
    *,
    sharegpt_per: Literal["dialogue", "sample"] = "dialogue",
    bfcl_functions: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Path]:
    """``render_exports`` written into ``out_dir``; returns ``{kind: path}`` (see EXPORT_FILES)."""
    files = render_exports(samples, dataset_name, sharegpt_per=sharegpt_per, bfcl_functions=bfcl_functions)
    write_files(out_dir, files)
    return {kind: Path(out_dir) / name for kind, name in EXPORT_FILES.items()}
