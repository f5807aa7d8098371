"""Where a run's steps execute: the default multiprocess executor on one machine, or Celery workers
on any number of machines when `FUNREASON_EXECUTOR=celery` (README "Running on several machines"), or
Kubernetes Jobs with `FUNREASON_EXECUTOR=k8s` (dagster-k8s, not installed by default).

With Celery each step is a task on the broker (`FUNREASON_CELERY_BROKER`, e.g. Redis); whichever
worker subscribed to the queue takes it and runs it in its own process, so the steps of one run spread
over workers that share nothing but the broker, the instance storage (deploy/dagster.postgres.yaml)
and the shared table store (storage.py, `FUNREASON_LAKE`). Concurrent LLM steps stay capped per
endpoint by the Dagster pool `llm` the LLM assets declare: the executor claims a pool slot in the
instance before it enqueues such a step, whichever worker then runs it.
"""

from __future__ import annotations

import os

import dagster as dg


def celery_config() -> dict:
    broker = os.environ.get("FUNREASON_CELERY_BROKER", "").strip()
    if not broker:
        raise RuntimeError("FUNREASON_EXECUTOR=celery needs FUNREASON_CELERY_BROKER (e.g. redis://host:6379/0)")
    return {
        "broker": broker,
        "backend": os.environ.get("FUNREASON_CELERY_BACKEND", "").strip() or broker,
        # one step at a time per worker process: a worker does not reserve steps another could start
        "config_source": {"worker_prefetch_multiplier": 1, "broker_connection_retry_on_startup": True},
    }


def build_executor() -> dg.ExecutorDefinition | None:
    kind = os.environ.get("FUNREASON_EXECUTOR", "").strip().lower()
    if kind in ("", "multiprocess", "default"):
        return None
    if kind == "celery":
        from dagster_celery import celery_executor  # the `cluster` extra

        return celery_executor.configured(celery_config(), name="celery")
    if kind == "k8s":
        # the cluster path (a Kubernetes Job per step, configured by the Helm chart's run config);
        # documented, not tested here: needs `pip install dagster-k8s==0.29.27` and a cluster
        from dagster_k8s import k8s_job_executor

        return k8s_job_executor
    raise RuntimeError(f"FUNREASON_EXECUTOR={kind!r}: use 'celery', 'k8s' or leave it unset (multiprocess)")


@dg.definitions
def executor() -> dg.Definitions:
    ex = build_executor()
    return dg.Definitions(executor=ex) if ex is not None else dg.Definitions()
