"""The dataset card (README.md) for an export: HF Hub YAML header + statistics as markdown tables.

Pure function of its arguments: no clock, no environment, so the same run gives the same card.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from funreason_pipeline import provenance
from funreason_pipeline.export.formats import (
    BFCL_PROMPTING_FILE,
    OPENAI_FILE,
    PARQUET_FILE,
    SHAREGPT_FILE,
    TRL_PROMPT_COMPLETION_FILE,
)
from funreason_pipeline.export.rl import RL_CARD_SECTION, RL_FILE

METHOD_REFERENCE = "FunReason-MT Technical Report, arXiv 2510.24645"

# config name -> (file, what it is for); the first one is the Hub viewer's default config.
CARD_CONFIGS: tuple[tuple[str, str, str], ...] = (
    ("openai", OPENAI_FILE,
     "OpenAI chat `messages` + `tools`, one row per user turn, `weight` on each assistant message"),
    ("trl_prompt_completion", TRL_PROMPT_COMPLETION_FILE,
     "TRL prompt-completion, one row per assistant message of the turn: loss on the model's own tokens"),
    ("sharegpt", SHAREGPT_FILE,
     "LLaMA-Factory ShareGPT with function_call/observation, one row per dialogue (see `dataset_info.json`)"),
    ("bfcl_prompting", BFCL_PROMPTING_FILE,
     "the chat as BFCL's prompting handlers hold it: `<think>` + `[f(a=1), g()]`, a tool message per call"),
    ("samples", PARQUET_FILE, "lineage table: ids, turn index, messages/tools as JSON text, `train_from`, `steps`"),
    ("rl", RL_FILE, "RL rows (verl layout): prompt, tools, initial state, prior calls, ground truth per turn"),
)



def loadable_configs() -> tuple[tuple[str, str, str], ...]:
    """The configs the card's YAML names: the JSON Lines files only. `datasets` picks one loader for a
    whole directory (from its files), so a Parquet config beside JSON ones fails to load by name."""
    return tuple(c for c in CARD_CONFIGS if c[1].endswith(".jsonl"))


# How each file is trained: which messages carry the loss, and the trainer settings that give it.
TRAINING_SECTION = """## How to train on each file

A user turn is a sequence of **steps**: a step is the set of calls the model emits at once (one
assistant message with `tool_calls`, then one tool message per call); a call uses results of earlier
steps only (a gate rejects any sample where a call uses a value that only a result not yet shown
holds: `clairvoyant_call`). Then the closing reply. The model should learn its own messages of the
current turn (each step's `<think>` and calls, and the reply), never tool results, and earlier
turns are context.

| file | rows | what to learn | how |
|---|---|---|---|
| `trl_prompt_completion.jsonl` | one per assistant message of the turn (`step` 0, 1, ...; the reply last) | the `completion` (that one message) | TRL `SFTTrainer` as it is: prompt-completion data has `completion_only_loss` on, so tool results (always in the prompt) are never trained; works with any chat template |
| `openai.jsonl` | one per user turn | assistant messages with `weight: 1` (the current turn; earlier turns have `weight: 0`) | OpenAI fine-tuning reads `weight`; TRL does not (it trains every token, or every assistant message with `assistant_only_loss=True`): for TRL use `trl_prompt_completion.jsonl` |
| `sharegpt.jsonl` | one per dialogue (its last turn) | every `function_call` and `gpt` message: each turn once, on its own left context | LLaMA-Factory with `dataset_info.json` and default settings (observations are never trained). Leave `mask_history` off: it keeps only the last pair, i.e. the final reply |
| `bfcl_prompting.jsonl` | one per user turn | assistant messages with `weight: 1` (from `train_from`) | render with the chat template of the model BFCL evaluates (Qwen's drops earlier turns' reasoning, as these rows already do) and mask everything before `train_from` and every non-assistant message |
| `samples.parquet` | one per user turn | messages from `train_from` on (`turn_index` names the turn; `steps` lists calls per step) | the canonical rows, for your own rendering |

`bfcl_prompting.jsonl` holds the chat as bfcl-eval's prompting handlers hold it: BFCL's system prompt
listing BFCL's function docs (type names `dict`/`float`, `response` schemas, "Note that the provided
function is in Python 3 syntax."), each step as `[f(a=1), g()]` with arguments in the schema's order,
one `tool` message per call named by the call (`f(a=1)`) with the result as BFCL's executor renders it
(a dict as JSON, anything else as Python's `str()`: `None`, `True`, single quotes). Parse call lists with
`funreason_pipeline.export.formats.parse_pythonic_calls`, never with `eval`.
"""


def _size_category(n: int) -> str:
    for limit, label in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
    ):
        if n < limit:
            return label
    return "1M<n<10M"


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        text = str(value)
    elif isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        text = f"{value:,.2f}" if abs(value) >= 1000 else f"{value:.4g}"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}: {_fmt(v)}" for k, v in value.items()) or "-"
    elif isinstance(value, (list, tuple)):
        text = ", ".join(_fmt(v) for v in value) or "-"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _title(key: str) -> str:
    return str(key).replace("_", " ").strip().capitalize()


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(_fmt(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _is_scalar(value: Any) -> bool:
    return not isinstance(value, (Mapping, list, tuple))


def _section(key: str, value: Any) -> str:
    if isinstance(value, Mapping):
        if all(_is_scalar(v) for v in value.values()):
            return _table([key, "value"], [[k, v] for k, v in value.items()])
        if all(isinstance(v, Mapping) for v in value.values()):
            # rows of records (e.g. stage -> {in, out, rejected_by_reason: {...}})
            columns: list[str] = []
            for row in value.values():
                columns += [c for c in row if c not in columns]
            return _table(
                [key, *columns], [[k, *(row.get(c, "") for c in columns)] for k, row in value.items()]
            )
        # mixed: scalars as one table, nested values as sub-sections
        scalars = [[k, v] for k, v in value.items() if _is_scalar(v)]
        parts = [_table([key, "value"], scalars)] if scalars else []
        for k, v in value.items():
            if not _is_scalar(v):
                parts.append(f"**{_title(k)}**\n\n{_section(k, v)}")
        return "\n\n".join(parts)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Mapping) for v in value):
        columns = []
        for row in value:
            columns += [c for c in row if c not in columns]
        return _table(columns, [[row.get(c, "") for c in columns] for row in value])
    return _fmt(value)


def render_stats(stats: Mapping[str, Any]) -> str:
    """Markdown for any stats mapping: top-level scalars in one table, every other key its own table."""
    scalars = [[k, v] for k, v in stats.items() if _is_scalar(v)]
    parts = []
    if scalars:
        parts.append("### Overview\n\n" + _table(["statistic", "value"], scalars))
    for key, value in stats.items():
        if not _is_scalar(value):
            parts.append(f"### {_title(key)}\n\n{_section(key, value)}")
    return "\n\n".join(parts) if parts else "_No statistics were recorded._"


def _front_matter(dataset_name: str, num_samples: int | None, backend: str) -> str:
    tags = ["function-calling", "tool-use", "multi-turn", "synthetic", "sft", "funreason-mt", "bfcl"]
    if _is_offline(backend):
        tags.append("offline-backend-not-model-data")
    elif backend == "partly offline":
        tags.append("partly-offline-backend")
    meta: dict[str, Any] = {
        "license": "apache-2.0",
        "language": ["en"],
        "pretty_name": dataset_name,
        "task_categories": ["text-generation"],
        "tags": tags,
    }
    if num_samples is not None:
        meta["size_categories"] = [_size_category(num_samples)]
    meta["configs"] = [
        {
            "config_name": name,
            "data_files": [{"split": "train", "path": path}],
            **({"default": True} if i == 0 else {}),
        }
        for i, (name, path, _) in enumerate(loadable_configs())
    ]
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000) + "---\n"


def _is_offline(backend: str) -> bool:
    return backend.strip().lower().startswith("offline")


def _provenance_headline(prov: Mapping[str, Any]) -> str:
    rows = []
    for role in provenance.ROLES:
        r = prov["by_role"][role]
        rows.append([role, f"{r['real_model_share']:.1%}",
                     ", ".join(f"{m} ({n})" for m, n in r["models"].items()) or "-"])
    counts = prov["samples_by_provenance"]
    return (
        "**Provenance** (per sample, over every turn it shows): share of samples that had a real model in\n"
        "each agent role, and the models that wrote them (samples per model; `unused`: the role wrote\n"
        "nothing, e.g. no critique was needed):\n\n"
        + _table(["role", "real model", "models (samples)"], rows)
        + "\n\nSamples by provenance: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in counts.items())
        + f" of {prov['samples']:,}. Each record of every file carries its own `role_models` and `provenance`\n"
        "(`model`, `partly_offline`, `offline`); filter on `provenance == \"model\"` for model-written data.\n"
    )


def dataset_card(
    stats: Mapping[str, Any],
    prov: Mapping[str, Any],
    day: str,
    toolsets: Sequence[str],
    *,
    dataset_name: str = "funreason-mt-synthetic",
    num_samples: int | None = None,
    rl_section: str = "",
) -> str:
    """README.md for the export: YAML header (license, task, tags, configs per file) + markdown body.

    ``stats`` is rendered whatever its keys (see ``render_stats``); ``num_samples`` (else
    ``stats["samples"]`` / ``stats["sft_samples"]`` when an int) sets the Hub size category.
    ``prov`` is ``provenance.summary`` of the exported samples: its per-role shares are the headline,
    and any offline role puts a warning at the top (those parts come from deterministic templates).
    """
    backend = provenance.backend(prov)
    if num_samples is None:
        for key in ("samples", "sft_samples", "num_samples"):
            if isinstance(stats.get(key), int) and not isinstance(stats.get(key), bool):
                num_samples = int(stats[key])
                break
    offline = _is_offline(backend)
    out = [_front_matter(dataset_name, num_samples, backend), f"# {dataset_name}\n"]
    if offline:
        out.append(
            "> [!WARNING]\n"
            "> **Offline backend: this is not model-generated data.** Queries, reasoning and replies were\n"
            "> written by the pipeline's deterministic templated agents (no LLM was called). The tool calls\n"
            "> and results are real executions, but the text is not fit for training a model; it exists to\n"
            "> test the pipeline. Re-run with an LLM backend for real data.\n"
        )
    elif backend != "openai-compatible":
        offline_roles = provenance.offline_roles(prov)
        out.append(
            "> [!WARNING]\n"
            f"> **Partly offline: {prov['samples'] - prov['samples_by_provenance']['model']:,} of "
            f"{prov['samples']:,} samples have text from the offline templates** (roles with offline text:\n"
            f"> {', '.join(offline_roles)}). Those parts are not model-generated; each\n"
            "> record's `provenance` says which rows are affected.\n"
        )
    out.append(_provenance_headline(prov))
    writers = ("deterministic templates (offline backend)" if offline else "LLM agents"
               if backend == "openai-compatible" else "LLM agents and, where marked, offline templates")
    out.append(
        "Synthetic multi-turn function-calling dialogues for supervised fine-tuning, generated with the\n"
        f"FunReason-MT method ({METHOD_REFERENCE}) by `funreason-pipeline`: tool calls are sampled on an\n"
        "environment-API graph and executed on stateful environments, queries and chain-of-thought are\n"
        f"written by {writers}, and every turn is verified by execution before it is kept.\n"
    )
    injected = stats.get("dialogues_with_injected_error")
    if isinstance(injected, int) and injected:
        out.append(
            f"{injected:,} dialogue(s) carry an injected transient tool error (`error_injection_rate`): the\n"
            "error message never reached the environment, and the assistant's retry after it is a fixed\n"
            "template, not model text.\n"
        )
    out.append("## Generation\n")
    out.append(
        _table(
            ["field", "value"],
            [["day (partition)", day], ["toolsets", ", ".join(toolsets) or "-"], ["backend", backend]],
        )
        + "\n"
    )
    out.append("## Files and formats\n")
    loadable = {n for n, _, _ in loadable_configs()}
    out.append(_table(["config", "file", "content"],
                      [[n if n in loadable else "-", f"`{p}`", d] for n, p, d in CARD_CONFIGS]) + "\n")
    out.append(
        "Each named config loads with `load_dataset(<this directory>, <config>)`. The Parquet files load\n"
        "with `load_dataset(\"parquet\", data_files=<file>)`: `datasets` picks one loader for a whole\n"
        "directory, so they cannot be configs beside the JSON Lines files.\n\n"
    )
    out.append(
        "One SFT sample per user turn: the messages from the start of the dialogue through the end of\n"
        "that turn. Earlier turns are context; the loss belongs on the current turn's assistant messages,\n"
        "which start at index `train_from` (column of `samples.parquet`).\n"
    )
    out.append(TRAINING_SECTION)
    steps = stats.get("steps")
    if isinstance(steps, Mapping) and steps.get("turns_with_calls"):
        out.append(
            f"Steps: {steps['mean_steps_per_turn']:.2f} per turn with calls, {steps['mean_calls_per_step']:.2f} "
            f"calls per step, {steps['multi_step_turn_share']:.1%} of {steps['turns_with_calls']:,} turns have\n"
            "more than one step (the statistics below have the distribution).\n"
        )
    out.append(RL_CARD_SECTION)
    if rl_section:
        out.append(rl_section)
    out.append("## Statistics\n")
    out.append(render_stats(stats) + "\n")
    out.append("## Decontamination\n")
    out.append(
        "The pipeline's filters remove rows whose user queries share a 13-word n-gram with a BFCL\n"
        "multi-turn test question (base, miss_func, miss_param, long_context) or whose initial state\n"
        "equals a BFCL test initial config, exact duplicates, and near-duplicate queries (MinHash,\n"
        "Jaccard >= 0.9 on character 5-grams). Every removal is recorded with its reason in the\n"
        "pipeline's `rejections` table; the counts are in the statistics above when the run reported them.\n"
    )
    out.append("## License\n")
    out.append(
        "Apache-2.0. Tool schemas and environment code come from the Berkeley Function Calling\n"
        "Leaderboard (gorilla, Apache-2.0).\n"
    )
    return "\n".join(out)
