"""Phases II-IV as Dagster assets (thin): queries and cot_traces (one multi-asset: one concurrent LLM flow
per run; the stage is stages/llm.py), dialogues (stages/dialogues.py).

Code versions hash the prompts only (the prompts are these stages' code). Which model answered is
recorded when the run happens: per row (`model`, `role_models`) and per output (`llm_fingerprints`);
a changed model is not a new code version, but its requests miss the cache and are sent again."""

import dagster as dg
import polars as pl

from funreason_pipeline.agents.prompts import PHASE3_PROMPTS, prompt_version
from funreason_pipeline.defs.partitions import (
    day_toolset_keys,
    day_toolset_partitions,
    per_toolset,
)
from funreason_pipeline.defs.resources import LLMResource, Processes, Store
from funreason_pipeline.defs.results import per_partition, rejections_out, results, stage_deps, table_out
from funreason_pipeline.stages.dialogues import dialogues_stage
from funreason_pipeline.stages.inputs import partition_calls
from funreason_pipeline.stages.llm import llm_stages as run_llm_stages

GROUP = "synthesis"


class LLMStagesConfig(dg.Config):
    k_max: int = 3  # Phase III attempts per turn
    max_steps: int = 8  # steps with calls per reasoner attempt; one more still calling tools fails it


LLM_DESCRIPTION = (
    "One concurrent flow for the LLM stages of every partition in the run (a day's toolsets at once with "
    "BackfillPolicy.single_run): each trajectory goes turn by turn through Phase II and Phase III on one "
    "shared LLM session, so the endpoint stays busy across partitions, phases and turns."
)


@dg.multi_asset(
    outs={
        "queries": table_out(
            GROUP, f"queries-{prompt_version('tooling', 'querying')}", {"openai", "duckdb", "polars"},
            "Phase II: each turn collapsed into an advanced tool (tooling agent) and a hard user "
            "query (querying agent); a query must contain every user-supplied value and no intermediate one."),
        "cot_traces": table_out(
            GROUP, f"cot-{prompt_version(*PHASE3_PROMPTS)}", {"openai", "duckdb", "polars"},
            "Phase III: the guided iterative chain - a reasoner solves each query with the primitive "
            "tools, verified by execution against the ground truth, with a critic's feedback for up to K_max "
            "attempts."),
        "queries_rejections": rejections_out("queries", GROUP, f"queries-{prompt_version('tooling', 'querying')}"),
        "cot_traces_rejections": rejections_out("cot_traces", GROUP, f"cot-{prompt_version(*PHASE3_PROMPTS)}"),
    },
    ins={"trajectories": dg.AssetIn(), "tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    internal_asset_deps={**stage_deps("queries", ("trajectories", "tool_catalog")),
                         **stage_deps("cot_traces", ("queries", "trajectories", "tool_catalog"))},
    # not subsettable: the backfill daemon then requests both in one run (subsettable, it ran queries
    # and cot_traces as two runs: a barrier again). Rerunning cot_traces reruns queries from the cache.
    name="llm_stages", can_subset=False, pool="llm", partitions_def=day_toolset_partitions,
    backfill_policy=dg.BackfillPolicy.single_run(),
    description=LLM_DESCRIPTION,
)
def llm_stages(context: dg.AssetExecutionContext, config: LLMStagesConfig, store: Store, llm: LLMResource,
               trajectories: pl.DataFrame, tool_catalog: pl.DataFrame):
    """Thin: the run's partitions in, the flow (stages/llm.py), rows and rejections out."""
    keys = day_toolset_keys(context)
    # one client for the run (None: every role offline); agents/flow_runner.online decides per phase
    outs = run_llm_stages(keys, trajectories, tool_catalog, llm.client(store.database), k_max=config.k_max,
                          max_steps=config.max_steps, log=context.log.info)
    for name, out in outs.items():
        yield from results(context, name, out)


class DialoguesConfig(dg.Config):
    error_injection_rate: float = 0.0


@dg.multi_asset(
    name="dialogues",  # the op's name: run config stays {"ops": {"dialogues": ...}}
    outs={
        "dialogues": table_out(
            GROUP, "dialogues-v1", {"python", "duckdb", "polars"},
            "Phase IV: one multi-turn dialogue per trajectory in OpenAI chat format (system with "
            "tools; per turn user -> assistant reasoning + tool_calls -> tool results -> assistant reply), "
            "verified turns only."),
        "dialogues_rejections": rejections_out("dialogues", GROUP, "dialogues-v1"),
    },
    ins={"tool_catalog": dg.AssetIn(partition_mapping=per_toolset)},
    internal_asset_deps=stage_deps("dialogues", ("trajectories", "queries", "cot_traces", "tool_catalog")),
    partitions_def=day_toolset_partitions, backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False,
)
def dialogues(context: dg.AssetExecutionContext, config: DialoguesConfig, processes: Processes,
              trajectories: pl.DataFrame, queries: pl.DataFrame, cot_traces: pl.DataFrame,
              tool_catalog: pl.DataFrame):
    out = per_partition(processes, dialogues_stage, partition_calls(
        day_toolset_keys(context), {"trajectories": trajectories, "queries": queries, "cot_traces": cot_traces},
        {"tool_catalog": tool_catalog}, error_injection_rate=config.error_injection_rate))
    yield from results(context, "dialogues", out)
