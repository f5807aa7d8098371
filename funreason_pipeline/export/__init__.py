"""Exporters from the canonical OpenAI-format samples to trainer formats, and the dataset card."""

from funreason_pipeline.export.card import dataset_card, render_stats
from funreason_pipeline.export.formats import (
    EXPORT_FILES,
    FormatError,
    bfcl_system_prompt,
    check_sharegpt_alternation,
    dialogue_to_samples,
    llamafactory_dataset_info,
    normalize_sample,
    parse_pythonic_calls,
    render_exports,
    render_pythonic_calls,
    split_think,
    to_bfcl_prompting_record,
    to_openai_jsonl_record,
    to_sharegpt_record,
    to_trl_prompt_completion_record,
    to_trl_prompt_completion_records,
    write_exports,
)

__all__ = [
    "EXPORT_FILES",
    "FormatError",
    "bfcl_system_prompt",
    "check_sharegpt_alternation",
    "dataset_card",
    "dialogue_to_samples",
    "llamafactory_dataset_info",
    "normalize_sample",
    "parse_pythonic_calls",
    "render_exports",
    "render_pythonic_calls",
    "render_stats",
    "split_think",
    "to_bfcl_prompting_record",
    "to_openai_jsonl_record",
    "to_sharegpt_record",
    "to_trl_prompt_completion_record",
    "to_trl_prompt_completion_records",
    "write_exports",
]
