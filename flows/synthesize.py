"""The `synthesize` flow: sources -> content-hashed shards -> per-shard stages -> snapshot.

Tasks are thin wrappers over ``parallelner.pipeline``. A shard's result is cached on
(shard content hash, stage configuration hash, code version) and persisted under
``<home>/prefect-results``, so re-running a crashed or killed flow skips finished shards;
the LLM reply cache covers the shard that was cut off.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NONE as NO_CACHE
from prefect.context import TaskRunContext

from parallelner import pipeline
from parallelner.settings import Settings, load_settings
from parallelner.shards import Shard

__all__ = ["synthesize", "make_task_runner"]

_RUNTIME: dict[str, pipeline.LLMRuntime] = {}
# Shard tasks start on several worker threads at once: without the lock each of them could
# find no runtime and build its own, and each runtime has its own in-flight bound.
_RUNTIME_LOCK = threading.Lock()


def _runtime(settings: Settings) -> pipeline.LLMRuntime:
    """The process-wide LLM runtime (one event loop, one global in-flight bound)."""
    key = settings.model_dump_json()
    with _RUNTIME_LOCK:
        if key not in _RUNTIME:
            _RUNTIME[key] = pipeline.LLMRuntime(settings)
        return _RUNTIME[key]


def _close_runtimes() -> None:
    with _RUNTIME_LOCK:
        while _RUNTIME:
            _RUNTIME.popitem()[1].close()


def _shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    shard: Shard = parameters["shard"]
    plan: pipeline.RunPlan = parameters["plan"]
    key = f"shard-{shard.id}-{plan.config_hash}"  # config hash includes the code version
    settings: Settings | None = parameters.get("settings")
    if settings is not None:
        # rows with transient LLM failures: not finished, so no cached result may stand
        # for them; the token changes with each attempt
        token = pipeline.shard_unfinished(settings, plan.config_hash, shard)
        if token is not None:
            key += f"-retry-{token}"
    return key


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_task(
    sources: list[str],
    tgt_lang: str,
    settings: Settings,
    fmt: str | None,
    src_lang: str | None,
    dataset: str | None = None,
    limit: int | None = None,
) -> pipeline.RunPlan:
    return pipeline.plan_run(
        [Path(s) for s in sources], tgt_lang, settings, fmt=fmt, src_lang=src_lang,
        dataset=dataset, limit=limit,
    )  # fmt: skip


@task(
    name="process-shard",
    cache_key_fn=_shard_cache_key,
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
)
def shard_task(shard: Shard, plan: pipeline.RunPlan, settings: Settings) -> pipeline.ShardResult:
    return pipeline.process_shard(shard, plan, settings, _runtime(settings))


@task(name="finalize-run", cache_policy=NO_CACHE)
def finalize_task(
    plan: pipeline.RunPlan,
    results: list[pipeline.ShardResult],
    settings: Settings,
    output_dir: str | None,
) -> pipeline.RunSummary:
    return pipeline.finalize_run(
        plan, results, settings, output_dir=Path(output_dir) if output_dir else None
    )


def make_task_runner(kind: str = "threads", workers: int = 4):
    """The task runner for shards: threads here; Dask or Ray for several machines."""
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(
            cluster_kwargs={"n_workers": workers, "processes": True, "threads_per_worker": 1}
        )
    if kind == "ray":  # pragma: no cover - needs prefect-ray
        from prefect_ray import RayTaskRunner

        return RayTaskRunner()
    raise ValueError(f"unknown task runner {kind!r}: threads, dask or ray")


def _summary_rows(summary: pipeline.RunSummary, seconds: float) -> list[dict[str, Any]]:
    rows = [{"what": f"status:{k}", "count": v} for k, v in sorted(summary.counts.items())]
    rows += [{"what": f"reason:{k}", "count": v} for k, v in sorted(summary.reasons.items())]
    rows += [{"what": f"read:{k}", "count": v} for k, v in sorted(summary.read_counts.items())]
    rows += [{"what": f"llm:{k}", "count": v} for k, v in sorted(summary.usage.items())]
    rows += [{"what": f"unfinished:{k}", "count": v} for k, v in sorted(summary.unfinished.items())]
    rows.append({"what": "acceptance_rate", "count": round(summary.acceptance_rate, 4)})
    rows.append(
        {
            "what": "instances_per_second",
            "count": round(summary.instances / seconds, 2) if seconds else 0,
        }
    )
    return rows


@flow(name="synthesize", log_prints=False, persist_result=False)
def synthesize(
    sources: list[str],
    tgt_lang: str,
    src_lang: str | None = None,
    fmt: str | None = None,
    config: dict[str, Any] | None = None,
    output_dir: str | None = None,
    llm_api_key_secret: str | None = None,
    dataset: str | None = None,
    limit: int | None = None,
) -> dict[str, Any]:
    """Translate, project and filter NER instances; commit one dataset snapshot.

    ``config`` holds setting overrides (the same names as the YAML file), never secrets:
    the LLM API key comes from ``PARALLELNER_LLM_API_KEY`` or from the Prefect ``Secret``
    block named by ``llm_api_key_secret``. ``dataset`` names the label set of sources
    that do not name theirs; ``limit`` takes only the first N usable instances.
    """
    logger = get_run_logger()
    overrides = dict(config or {})
    if llm_api_key_secret:
        from prefect.blocks.system import Secret

        overrides["llm_api_key"] = Secret.load(llm_api_key_secret).get()
    settings = load_settings(None, **overrides)
    started = time.perf_counter()
    plan = plan_task(sources, tgt_lang, settings, fmt, src_lang, dataset, limit)
    logger.info(
        "run %s: %d instances in %d shards -> %s",
        plan.run_id,
        plan.instances,
        len(plan.shards),
        tgt_lang,
    )
    progress = create_progress_artifact(progress=0.0, description=f"{plan.run_id}: shards done")
    # a Path, not an unsaved LocalFileSystem block: Prefect 3.9 refuses unsaved blocks
    storage = Path(settings.home).resolve() / "prefect-results"
    runner_task = shard_task.with_options(result_storage=storage)
    futures = [runner_task.submit(shard, plan, settings) for shard in plan.shards]
    results = []
    latency: dict[str, float] = {}
    try:
        for i, fut in enumerate(futures, 1):
            result = fut.result()
            if fut.state.name == "Cached":  # finished by an earlier run: it asked nothing now
                result = dataclasses.replace(result, usage={}, reused=True)
                pipeline._notify("record", sum(result.counts.values()))
            results.append(result)
            update_progress_artifact(progress, progress=100.0 * i / len(futures))
        for rt in _RUNTIME.values():  # latency percentiles of this process's requests
            usage = rt.client.usage.as_dict()
            latency.update({k: v for k, v in usage.items() if k.startswith("latency_") and v})
    finally:
        _close_runtimes()
    summary = finalize_task(plan, results, settings, output_dir)
    summary.usage.update(latency)
    seconds = time.perf_counter() - started
    create_table_artifact(
        key="synthesize-summary",
        table=_summary_rows(summary, seconds),
        description=f"run {plan.run_id}",
    )
    report_md = Path(summary.report_dir or "") / "report.md"
    if report_md.is_file():
        create_markdown_artifact(key="quality-report", markdown=report_md.read_text())
    logger.info(
        "run %s finished: %s, snapshot %s", plan.run_id, summary.counts, summary.snapshot_id
    )
    if summary.unfinished:
        logger.warning(
            "run %s: %d rows failed for transient LLM errors (server down, overloaded or too "
            "slow) in %d shards; run it again to retry exactly those",
            plan.run_id,
            summary.unfinished.get("rows", 0),
            summary.unfinished.get("shards", 0),
        )
    return summary.as_dict()
