"""The `synthesize` flow: sources -> content-hashed shards -> per-shard stages -> snapshot.

Tasks are thin wrappers over ``parallelner.pipeline``. A shard's result is cached on
(shard content hash, stage configuration hash, code version) and persisted under
``<home>/prefect-results``, so re-running a crashed or killed flow skips finished shards;
the LLM reply cache covers the shard that was cut off.

On an existing Dask cluster (``make_task_runner("dask", address=...)``) the shards run on
other machines: shards and rows go through ``storage_url`` (``parallelner.storage``, the
absolute home path when unset, which must then be on a shared file system), each worker
uses its own home for what is local to it (the SQLite reply cache), and a finished shard
is known by its rows in storage, not by a Prefect result on the client's disk.
"""

from __future__ import annotations

import dataclasses
import logging
import os
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
from prefect.client.orchestration import get_client
from prefect.context import FlowRunContext, TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.utilities.urls import url_for

from parallelner import pipeline, shardprocs
from parallelner.errors import ParallelNERError
from parallelner.llm.endpoints import endpoint_line
from parallelner.llm.runtime import RuntimePool, shared_runtime, sharing
from parallelner.llm.usage import Usage
from parallelner.progress import notify
from parallelner.quality.report import inline_images
from parallelner.settings import Settings, load_settings
from parallelner.shardprocs import ShardProcesses, auto_processes
from parallelner.shards import Shard, shard_origins
from parallelner.stages.ladder import ladder_line
from parallelner.storage import redact

__all__ = ["synthesize", "make_task_runner", "on_this_machine"]


def _shard_cache_key(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    shard: Shard = parameters["shard"]
    plan: pipeline.RunPlan = parameters["plan"]
    # config hash includes the code version; "r2": results pickled before the module
    # ``parallelner.run`` became ``parallelner.pipeline`` are never looked up (the rows
    # files still make such shards finished: ``process_shard`` reads them back)
    key = f"shard-r2-{shard.id}-{plan.config_hash}"
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


def _process_shard(
    shard: Shard, plan: pipeline.RunPlan, settings: Settings
) -> pipeline.ShardResult:
    logger = _run_logger()
    logger.info("%s started (%d instances)", _shard_name(shard, plan), shard.size)
    procs = shardprocs.current()
    if procs is not None:  # in a worker process of this run
        result = procs.process(shard, plan)
    else:
        result = pipeline.process_shard(shard, plan, settings, shared_runtime(settings))
    logger.info("%s finished: %s", _shard_name(shard, plan), _shard_outcome(result))
    return result


def _latency_figures(usage: Usage, endpoints: list[dict[str, Any]]) -> dict[str, Any]:
    """The latency percentiles of ``usage``, and each endpoint's figures when several."""
    out: dict[str, Any] = {
        k: v for k, v in usage.as_dict().items() if k.startswith("latency_") and v
    }
    if len(endpoints) > 1:
        out["endpoints"] = endpoints
    return out


def _retry_unless_users_error(_task: Any, _run: Any, state: Any) -> bool:
    """A shard is retried once for what may pass (a crash, a lost worker), never for a
    user's or configuration error (a refused API key, bad input): it would fail again,
    and pay again."""
    return not isinstance(getattr(state, "data", None), ParallelNERError)


shard_task = task(
    name="process-shard",
    cache_key_fn=_shard_cache_key,
    persist_result=True,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_users_error,
)(_process_shard)


def _process_shard_on_worker(
    shard: Shard, plan: pipeline.RunPlan, settings: Settings
) -> pipeline.ShardResult:
    return _process_shard(shard, plan, on_this_machine(settings))


# on an existing cluster: no Prefect result on one machine's disk; a finished shard is
# known by its rows in the shared storage (``pipeline.process_shard`` reads them back)
cluster_shard_task = task(
    name="process-shard",
    cache_policy=NO_CACHE,
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=_retry_unless_users_error,
)(_process_shard_on_worker)


def on_this_machine(settings: Settings) -> Settings:
    """``settings`` with the home of the machine that runs the task (its PARALLELNER_HOME).

    The flow's settings are pickled on the client; its home is a path on the client's
    disk. Shards and rows are in ``storage_url``; what a worker keeps for itself (the
    SQLite reply cache, the local model) goes under its own home.
    """
    home = os.environ.get("PARALLELNER_HOME") or Settings.model_fields["home"].default
    return settings.model_copy(update={"home": Path(home).absolute()})


def _run_logger() -> logging.Logger | logging.LoggerAdapter:
    """The task run's logger (to the Prefect API); a plain one where ``.fn()`` runs a task."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger(__name__)


def _shard_name(shard: Shard, plan: pipeline.RunPlan) -> str:
    return f"shard {shard.index + 1}/{len(plan.shards)} ({shard.id[:12]})"


def _shard_outcome(result: pipeline.ShardResult, cached: bool = False) -> str:
    """One line for the run's log: rows by status, and the LLM work this run did for them."""
    counts = ", ".join(f"{k} {v}" for k, v in sorted(result.counts.items())) or "no rows"
    if cached:
        return f"{counts}; cached (finished by an earlier run, no LLM requests now)"
    usage = result.usage
    work = ", ".join(
        f"{k.replace('_', ' ')} {usage.get(k, 0)}"
        for k in ("requests", "cache_hits", "retries", "failures")
    )
    return f"{counts}; LLM {work}" + (" (retried unfinished rows)" if result.retried else "")


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


def make_task_runner(kind: str = "threads", workers: int = 4, address: str | None = None):
    """The task runner for shards: threads here; Dask or Ray for several machines.

    ``dask`` with ``address`` (``tcp://host:8786``) sends shards to that running scheduler;
    without, it starts a local cluster of ``workers`` processes for the run.
    """
    if kind == "threads":
        from prefect.task_runners import ThreadPoolTaskRunner

        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if address:
            return DaskTaskRunner(address=address)
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
    usage = {k: v for k, v in summary.usage.items() if k != "endpoints"}
    rows += [{"what": f"llm:{k}", "count": v} for k, v in sorted(usage.items())]
    rows += [
        {"what": f"llm endpoint {e['url']}", "count": endpoint_line(e)}
        for e in summary.usage.get("endpoints", [])
    ]
    rows += [{"what": f"unfinished:{k}", "count": v} for k, v in sorted(summary.unfinished.items())]
    if summary.rows_skipped:
        rows.append({"what": "commit:already_in_dataset", "count": summary.rows_skipped})
    rows += [
        {"what": f"ladder {rung}", "count": ladder_line(row)}
        for rung, row in summary.ladder.items()
    ]
    rows.append({"what": "acceptance_rate", "count": round(summary.acceptance_rate, 4)})
    rows.append(
        {
            "what": "instances_per_second",
            "count": round(summary.instances / seconds, 2) if seconds else 0,
        }
    )
    return rows


@task(name="batch-job", task_run_name="round {round_no}: wait for the job a run left")
def batch_resume_task(plan: pipeline.RunPlan, settings: Settings, round_no: int) -> str:
    """A job a killed run submitted and never read: wait for it, read it (never again
    submitted)."""
    from parallelner import batchrun

    jobs = batchrun.batch_jobs(settings)
    journal = batchrun.journal_for(settings, plan.run_id)
    job, status, lines = batchrun.finish_job(
        settings, journal, jobs, round_no, _status_logger(round_no)
    )
    _run_logger().info("round %d: job %s %s, %d lines read", round_no, job, status.status, lines)
    return status.status


@task(name="batch-round", task_run_name="round {round_no}")
def batch_round_task(plan: pipeline.RunPlan, settings: Settings, round_no: int) -> tuple:
    """One round: replay the shards, send what they still need as one job, wait, read."""
    from parallelner import batchrun

    jobs = batchrun.batch_jobs(settings)
    return batchrun.run_round(plan, settings, round_no, jobs, _status_logger(round_no))


def _status_logger(round_no: int):
    logger = _run_logger()
    said: dict[str, Any] = {"status": None, "at": -1e9}

    def on_status(st: Any, elapsed: float) -> None:
        notify("batch_total_lines", st.total)
        notify("batch_done_lines", st.completed + st.failed)
        notify("batch_wait_s", int(elapsed))
        # a line when the status changes, and once a minute while it waits
        if st.status != said["status"] or elapsed - said["at"] >= 60:
            logger.info(
                "round %d: job %s, %d/%d lines done, %.0f s",
                round_no, st.status, st.completed + st.failed, st.total, elapsed,
            )  # fmt: skip
            said.update(status=st.status, at=elapsed)

    return on_status


def _batch_rounds(plan: pipeline.RunPlan, settings: Settings, progress: Any, rounds: list) -> list:
    """Rounds until every shard is finished; the shard results (``rounds`` gets each
    round's figures)."""
    from parallelner import batchrun

    logger = _run_logger()
    journal = batchrun.journal_for(settings, plan.run_id)
    left = batchrun.unread_round(journal)
    if left is not None:
        batch_resume_task(plan, settings, left)
    while True:
        round_no = max(journal.rounds(), default=0) + 1
        notify("batch_round", round_no)
        notify("batch_questions", 0)
        rr, results = batch_round_task(plan, settings, round_no)
        rounds.append(rr.as_dict())
        if results is not None and rr.online:
            logger.info(
                "round %d: %d questions left (below batch.online_below): asked online, "
                "%d requests",
                round_no, rr.questions, rr.usage.get("requests", 0),
            )  # fmt: skip
        elif results is not None:
            logger.info(
                "round %d: every shard finished (%d), no job sent", round_no, rr.shards_finished
            )
            notify("record", sum(sum(r.counts.values()) for r in results))
            return results
        logger.info(
            "round %d: %d questions from %d shards -> job %s %s (%d answered, %d failed) "
            "in %.0f s",
            round_no, rr.questions, rr.shards_waiting, rr.job, rr.status, rr.answered,
            rr.failed, rr.seconds,
        )  # fmt: skip
        update_progress_artifact(progress, progress=min(95.0, 10.0 * round_no))


def run_labels(plan: pipeline.RunPlan, settings: Settings) -> tuple[str, list[str]]:
    """The flow run's name (``run-<id> en→zh``) and tags: direction, model, source datasets."""
    langs, datasets = shard_origins(plan.shards)
    name = f"{plan.run_id} {','.join(langs) or '?'}→{plan.tgt_lang}"
    tags = [f"{lang}-{plan.tgt_lang}" for lang in langs]
    tags += [f"model:{settings.llm_model}"] + [f"dataset:{d}" for d in datasets]
    return name, tags


def _fresh_prefect_events() -> None:
    """On each worker of an existing cluster: stop the Prefect events client an earlier
    run left behind; the next task starts one for this run's API.

    Prefect reports task runs as events, through one client per worker process that
    keeps the API address of the first run it served: a later run on a new temporary
    API (``parallelner run`` without PREFECT_API_URL) would lose its task runs.
    """
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all(timeout=5, at_exit=False)


def _cluster() -> tuple[bool, str | None]:
    """Whether the flow's shards run in other processes (Dask), and the address of the
    existing cluster they run on (None: threads, or a local cluster)."""
    runner = FlowRunContext.get().task_runner
    if type(runner).__name__ != "DaskTaskRunner":
        return False, None
    return True, getattr(runner, "address", None)


def _label_flow_run(name: str, tags: list[str]) -> dict[str, Any]:
    """Name and tag the current flow run; its id, name and UI address for the summary.

    The run id is known only once the sources are read, so the run starts under the
    flow's provisional name and is renamed here. The address is ``None`` without a
    Prefect UI (the CLI's temporary local API has none).
    """
    run = FlowRunContext.get().flow_run
    tags = sorted(set(run.tags) | set(tags))
    with get_client(sync_client=True) as client:
        client.update_flow_run(run.id, name=name, tags=tags)
    run.name, run.tags = name, tags
    return {
        "flow_run_id": str(run.id),
        "flow_run_name": name,
        "flow_run_url": url_for("flow-run", obj_id=run.id),
    }


@flow(
    name="synthesize",
    flow_run_name="synthesize →{tgt_lang}",  # until the run id is known: see _label_flow_run
    log_prints=False,
    persist_result=False,
)
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
    config_file: str | None = None,
    batch: bool = False,
) -> dict[str, Any]:
    """Translate, project and filter NER instances; commit one dataset snapshot.

    ``config`` holds setting overrides (the same names as the YAML file), never secrets:
    the Prefect API stores parameters in clear. Secrets are read here: the LLM API key
    from ``PARALLELNER_LLM_API_KEY`` or the Prefect ``Secret`` block named by
    ``llm_api_key_secret``; a catalog or reply-cache URL, or a URL with a password, from
    the environment (``PARALLELNER_*``) or the YAML file ``config_file`` (a path: the
    file is read by the flow, its contents never become a parameter). ``dataset`` names
    the label set of sources that do not name theirs; ``limit`` takes only the first N
    usable instances. ``batch``: every question goes through a batch API, in rounds (a
    task per round; ``parallelner.batchrun``).
    """
    logger = get_run_logger()
    shardprocs.lean_memory()  # this process commits and writes the run's Arrow tables
    overrides = dict(config or {})
    if llm_api_key_secret:
        from prefect.blocks.system import Secret

        overrides["llm_api_key"] = Secret.load(llm_api_key_secret).get()
    settings = load_settings(Path(config_file) if config_file else None, **overrides)
    elsewhere, address = _cluster()
    if address is not None:  # shards on other machines: one location every worker reaches
        where = settings.storage_url or str(Path(settings.home).absolute())
        settings = settings.model_copy(update={"storage_url": where, "dask_address": address})
    started = time.perf_counter()
    plan = plan_task(sources, tgt_lang, settings, fmt, src_lang, dataset, limit)
    flow_run = _label_flow_run(*run_labels(plan, settings))
    logger = get_run_logger()  # again: its lines carry the run's new name
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
    if address is not None:
        runner_task = cluster_shard_task
        FlowRunContext.get().task_runner.client.run(_fresh_prefect_events)
        logger.info(
            "shards on the Dask cluster at %s; shards and rows in %s",
            address,
            redact(settings.storage_url or ""),
        )
    rounds: list[dict[str, Any]] = []
    pool = RuntimePool()  # the shards' LLM runtime, closed when they are done
    futures = []
    # all cores of this machine for a large run (``parallelner.shardprocs``)
    n_procs = 0 if batch or elsewhere else auto_processes(plan.instances, settings.processes)
    procs = ShardProcesses(settings, n_procs) if n_procs else None
    if procs is not None:
        logger.info("shards in %d worker processes", n_procs)
    if batch:  # the rounds write every shard; nothing is left to submit
        results = _batch_rounds(plan, settings, progress, rounds)
    else:
        results = []
        with sharing(pool), shardprocs.using(procs):
            futures = [runner_task.submit(shard, plan, settings) for shard in plan.shards]
    latency: dict[str, float] = {}
    try:
        for i, fut in enumerate(futures, 1):
            result = fut.result()
            shard = plan.shards[i - 1]
            cached = fut.state.name == "Cached"
            if cached and not pipeline.shard_done(settings, plan.config_hash, shard):
                # the store says the shard is not done (its rows deleted or damaged since
                # the earlier run's result): processed again here (a damaged file is set
                # aside with a warning)
                with sharing(pool), shardprocs.using(procs):
                    result = _process_shard(shard, plan, settings)
            elif cached:  # finished by an earlier run: it asked nothing now
                result = dataclasses.replace(result, usage={}, reused=True)
                notify("record", sum(result.counts.values()))
                logger.info(
                    "%s finished: %s", _shard_name(shard, plan), _shard_outcome(result, True)
                )
            elif elsewhere:  # its progress events stayed in the worker's process
                notify("record", sum(result.counts.values()))
            results.append(result)
            update_progress_artifact(progress, progress=100.0 * i / len(futures))
        for rt in pool.runtimes():  # latency percentiles of this process's requests
            latency.update(_latency_figures(rt.client.usage, rt.client.endpoint_stats()))
        if procs is not None:  # the workers' requests (their memory is freed here)
            procs.close()
            sample = Usage(latencies_s=procs.latencies()[0])
            latency.update(_latency_figures(sample, procs.endpoint_stats()))
    finally:
        pool.close()
        if procs is not None:
            procs.terminate()
    summary = finalize_task(plan, results, settings, output_dir)
    summary.usage.update(latency)
    if batch:  # what the jobs answered, each reply once (replays read them from the cache)
        for k in ("requests", "prompt_tokens", "completion_tokens"):
            summary.usage[k] = sum(r["usage"].get(k, 0) for r in rounds)
        summary.usage["cache_hits"] = 0
        summary.usage["batch_rounds"] = len(rounds)
        summary.usage["batch_questions"] = sum(r["questions"] for r in rounds if not r["online"])
        summary.usage["batch_online_requests"] = sum(
            r["usage"].get("requests", 0) for r in rounds if r["online"]
        )
    seconds = time.perf_counter() - started
    create_table_artifact(
        key="synthesize-summary",
        table=_summary_rows(summary, seconds),
        description=f"run {plan.run_id}",
    )
    report_md = Path(summary.report_dir or "") / "report.md"
    if report_md.is_file():
        # the UI shows the text alone: the plots travel inside it, as data URIs
        markdown = inline_images(report_md.read_text(encoding="utf-8"), report_md.parent)
        create_markdown_artifact(key="quality-report", markdown=markdown)
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
    out = {**summary.as_dict(), **flow_run}
    if batch:
        out["batch"] = {"rounds": rounds}
    return out
