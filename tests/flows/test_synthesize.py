"""The `synthesize` flow under one session-scoped Prefect test harness: task logic through
``.fn()``, the cache key, artifacts, cached shards on a re-run, the Dask task runner."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.task_runners import ThreadPoolTaskRunner

from flows.synthesize import (
    _shard_cache_key,
    _summary_rows,
    finalize_task,
    make_task_runner,
    plan_task,
    shard_task,
    synthesize,
)
from parallelner import pipeline
from parallelner.readers import read_instances
from parallelner.records import table_to_records
from parallelner.settings import load_settings
from parallelner.shards import read_shard
from parallelner.stages import record_id_for
from parallelner.store import load_snapshot
from tests.flows.helpers import CLUENER_SAMPLE, WIKINEURAL_SAMPLE, comparable


def _config(home: Path, server, **extra) -> dict:
    return {
        "home": str(home),
        "llm_base_url": server.base_url,
        "llm_model": "test-model",
        "shard_size": 6,
        **extra,
    }


def _settings(home: Path, server):
    return load_settings(None, **_config(home, server))


# -- tasks' logic, without Prefect -------------------------------------------------------


def test_plan_task_writes_content_hashed_shards(llm_server, tmp_path):
    settings = _settings(tmp_path / "home", llm_server)
    plan = plan_task.fn([str(WIKINEURAL_SAMPLE)], "zh", settings, None, None)
    again = plan_task.fn([str(WIKINEURAL_SAMPLE)], "zh", settings, None, None)

    assert plan.instances == 20 and [s.size for s in plan.shards] == [6, 6, 6, 2]
    assert [s.index for s in plan.shards] == [0, 1, 2, 3]
    assert plan.run_id == again.run_id and [s.id for s in plan.shards] == [
        s.id for s in again.shards
    ]
    sharded = [inst for s in plan.shards for inst in read_shard(s)]
    assert sharded == list(read_instances(WIKINEURAL_SAMPLE))  # all of them, in order
    # a different configuration of the stages is a different run of the same shards
    other = plan_task.fn(
        [str(WIKINEURAL_SAMPLE)],
        "zh",
        load_settings(None, **_config(tmp_path / "home", llm_server, quality={"min_chrf": 10})),
        None,
        None,
    )
    assert other.config_hash != plan.config_hash and other.run_id != plan.run_id
    assert [s.id for s in other.shards] == [s.id for s in plan.shards]


def test_shard_cache_key_ignores_the_run_and_follows_content_and_config(llm_server, tmp_path):
    settings = _settings(tmp_path / "home", llm_server)
    plan = plan_task.fn([str(WIKINEURAL_SAMPLE)], "zh", settings, None, None)
    shard = plan.shards[1]
    key = _shard_cache_key(None, {"shard": shard, "plan": plan, "settings": settings})
    assert shard.id in key and plan.config_hash in key
    same = _shard_cache_key(
        None, {"shard": shard, "plan": plan, "settings": settings.model_copy(update={"workers": 9})}
    )
    assert same == key  # concurrency never invalidates the cache
    other_shard = _shard_cache_key(None, {"shard": plan.shards[2], "plan": plan})
    assert other_shard != key


def test_shard_and_finalize_tasks_fn(llm_server, tmp_path):
    settings = _settings(tmp_path / "home", llm_server)
    plan = plan_task.fn([str(WIKINEURAL_SAMPLE)], "zh", settings, None, None)
    from parallelner.llm.runtime import RuntimePool, sharing

    with pipeline.LLMRuntime(settings) as runtime, sharing(RuntimePool([runtime])):
        results = [shard_task.fn(s, plan, settings) for s in plan.shards]
    asked = len(llm_server.requests)
    assert asked >= plan.instances

    assert [r.index for r in results] == [0, 1, 2, 3]
    for shard, result in zip(plan.shards, results, strict=True):
        assert Path(result.path).is_file()
        records = table_to_records(pq.read_table(result.path))
        assert [r.instance_id for r in records] == [i.id for i in read_shard(shard)]
        assert sum(result.counts.values()) == shard.size
        assert result.usage["requests"] + result.usage["cache_hits"] >= shard.size

    summary = finalize_task.fn(plan, results, settings, str(tmp_path / "out"))
    assert summary.instances == 20 and sum(summary.counts.values()) == 20
    assert summary.snapshot_id is not None
    assert (Path(summary.report_dir) / "report.md").is_file()
    out = pq.read_table(tmp_path / "out" / f"{plan.run_id}.parquet")
    assert out.num_rows == 20
    rows = load_snapshot(summary.snapshot_id, settings=settings)
    assert sorted(rows.column("record_id").to_pylist()) == sorted(
        out.column("record_id").to_pylist()
    )
    # finalizing again commits nothing new (idempotent per run id)
    assert finalize_task.fn(plan, results, settings, None).snapshot_id == summary.snapshot_id
    assert len(llm_server.requests) == asked


def test_make_task_runner():
    runner = make_task_runner("threads", 3)
    assert isinstance(runner, ThreadPoolTaskRunner) and runner._max_workers == 3
    from prefect_dask import DaskTaskRunner

    assert isinstance(make_task_runner("dask", 2), DaskTaskRunner)
    with pytest.raises(ValueError, match="unknown task runner 'spark'"):
        make_task_runner("spark")


def test_summary_rows_cover_counts_reasons_usage_and_throughput():
    summary = pipeline.RunSummary(
        run_id="run-x", snapshot_id=1, instances=10,
        counts={"accepted": 7, "review": 2, "failed": 1}, reasons={"low_backtranslation": 2},
        read_counts={"read": 10}, usage={"requests": 25, "cache_hits": 3},
    )  # fmt: skip
    rows = {r["what"]: r["count"] for r in _summary_rows(summary, seconds=4.0)}
    assert rows["status:accepted"] == 7 and rows["status:failed"] == 1
    assert rows["reason:low_backtranslation"] == 2 and rows["read:read"] == 10
    assert rows["llm:requests"] == 25 and rows["llm:cache_hits"] == 3
    assert rows["acceptance_rate"] == 0.7 and rows["instances_per_second"] == 2.5


# -- the flow, on the session's Prefect test API ------------------------------------------


def _artifacts(flow_run_id) -> dict:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.type: a for a in found}


def _task_states(flow_run_id) -> list[tuple[str, str]]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted((r.name.rsplit("-", 1)[0], r.state.name) for r in runs)


def test_flow_creates_artifacts_and_caches_shards(prefect_harness, llm_server, tmp_path):
    home = tmp_path / "home"
    config = _config(home, llm_server)
    state = synthesize(
        sources=[str(WIKINEURAL_SAMPLE)], tgt_lang="zh", config=config, return_state=True
    )
    assert state.is_completed(), state
    summary = state.result()
    run_id = state.state_details.flow_run_id
    assert summary["instances"] == 20 and sum(summary["counts"].values()) == 20

    arts = _artifacts(run_id)
    assert set(arts) >= {"progress", "table", "markdown"}
    assert arts["progress"].data == 100.0
    table = {r["what"]: r["count"] for r in json.loads(arts["table"].data)}
    assert sum(v for k, v in table.items() if k.startswith("status:")) == 20
    assert table["llm:requests"] == summary["usage"]["requests"] > 0
    assert 0 < summary["usage"]["latency_p50_s"] <= summary["usage"]["latency_p99_s"]
    assert "instances_per_second" in table and "acceptance_rate" in table
    assert arts["table"].key == "synthesize-summary"
    assert arts["markdown"].key == "quality-report" and arts["markdown"].data.strip()
    assert "](data:image/png;base64," in arts["markdown"].data  # the UI has no scores.png
    assert summary["flow_run_id"] == str(run_id)
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
    assert flow_run.name == f"{summary['run_id']} en→zh" == summary["flow_run_name"]
    assert set(flow_run.tags) == {"en-zh", "model:test-model", "dataset:wikineural"}
    assert _task_states(run_id).count(("process-shard", "Completed")) == 4

    # the same flow again: every shard task is a cache hit, no LLM request
    llm_server.reset_log()
    again = synthesize(
        sources=[str(WIKINEURAL_SAMPLE)], tgt_lang="zh", config=config, return_state=True
    )
    assert again.is_completed()
    assert llm_server.requests == []
    assert _task_states(again.state_details.flow_run_id).count(("process-shard", "Cached")) == 4
    assert again.result()["snapshot_id"] == summary["snapshot_id"]


def test_flow_zh_to_en_both_directions_commit_separately(prefect_harness, llm_server, tmp_path):
    config = _config(tmp_path / "home", llm_server)
    en = synthesize(sources=[str(WIKINEURAL_SAMPLE)], tgt_lang="zh", config=config)
    zh = synthesize(sources=[str(CLUENER_SAMPLE)], tgt_lang="en", fmt="cluener", config=config)
    assert en["run_id"] != zh["run_id"] and en["snapshot_id"] != zh["snapshot_id"]
    rows = load_snapshot("main", settings=load_settings(None, **config))
    assert rows.num_rows == 40
    assert sorted(
        set(
            zip(
                rows.column("src_lang").to_pylist(),
                rows.column("tgt_lang").to_pylist(),
                strict=True,
            )
        )
    ) == [("en", "zh"), ("zh", "en")]


def test_dask_runner_gives_the_thread_runner_table(prefect_harness, llm_server, tmp_path):
    tables = {}
    for kind in ("threads", "dask"):
        config = _config(tmp_path / kind, llm_server)
        flow = synthesize.with_options(task_runner=make_task_runner(kind, 2))
        summary = flow(sources=[str(WIKINEURAL_SAMPLE)], tgt_lang="zh", config=config)
        assert summary["instances"] == 20
        tables[kind] = load_snapshot(summary["snapshot_id"], settings=load_settings(None, **config))
    assert tables["dask"].num_rows == 20
    assert comparable(tables["dask"]) == comparable(tables["threads"])


def test_duplicates_across_shards_are_marked_once_in_run_order(llm_server, tmp_path):
    from parallelner.writers.spanjsonl import write_span_jsonl

    real = list(read_instances(WIKINEURAL_SAMPLE))
    copies = [i.model_copy(update={"id": f"{i.id}-again"}) for i in real[:3]]
    src = tmp_path / "with-copies.jsonl"
    write_span_jsonl(real + copies, src)  # the copies land in the last of 4 shards
    settings = _settings(tmp_path / "home", llm_server)
    plan = plan_task.fn([str(src)], "zh", settings, None, None)
    assert len(plan.shards) == 4
    with pipeline.LLMRuntime(settings) as runtime:
        results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
    summary = pipeline.finalize_run(plan, results, settings, output_dir=tmp_path / "out")

    rows = {
        r.record_id: r
        for r in table_to_records(pq.read_table(tmp_path / "out" / f"{plan.run_id}.parquet"))
    }
    assert len(rows) == 23
    marked = sorted(rid for rid, r in rows.items() if "duplicate" in r.reasons)
    assert marked == sorted(record_id_for(i.id, "zh", plan.config_hash) for i in copies)
    assert summary.reasons.get("duplicate") == 3
    assert sum(summary.counts.values()) == 23


def test_api_key_reaches_the_server_and_nothing_else(
    prefect_harness, llm_server, tmp_path, monkeypatch
):
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    secret = "sk-flowtest-" + "9f3a" * 8
    monkeypatch.setenv("PARALLELNER_LLM_API_KEY", secret)
    home = tmp_path / "home"
    state = synthesize(
        sources=[str(WIKINEURAL_SAMPLE)],
        tgt_lang="zh",
        config=_config(home, llm_server),
        output_dir=str(tmp_path / "out"),
        return_state=True,
    )
    assert state.is_completed()
    assert {r["authorization"] for r in llm_server.requests} == {f"Bearer {secret}"}

    run_id = state.state_details.flow_run_id
    APILogHandler().flush()  # logs go to the API in batches from a background worker
    logs = []
    end = time.monotonic() + 30
    with get_client(sync_client=True) as client:
        while not logs and time.monotonic() < end:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id]))
            )
            time.sleep(0 if logs else 0.5)
        flow_run = client.read_flow_run(run_id)
    assert logs  # the run logged through Prefect's run logger
    assert not [log.message for log in logs if secret in log.message]
    assert secret not in json.dumps(flow_run.parameters)
    assert not [a.key for a in _artifacts(run_id).values() if secret in str(a.data)]
    # rows, shards, reports, the reply cache, Prefect's persisted results: not a byte
    leaked = [
        p
        for p in [*home.rglob("*"), *(tmp_path / "out").rglob("*")]
        if p.is_file() and secret.encode() in p.read_bytes()
    ]
    assert leaked == []


def test_api_key_from_a_prefect_secret_block(prefect_harness, llm_server, tmp_path, monkeypatch):
    from prefect.blocks.system import Secret

    secret = "sk-block-" + "7c1e" * 8
    monkeypatch.delenv("PARALLELNER_LLM_API_KEY", raising=False)
    Secret(value=secret).save("parallelner-llm-key", overwrite=True)
    home = tmp_path / "home"
    state = synthesize(
        sources=[str(WIKINEURAL_SAMPLE)],
        tgt_lang="zh",
        config=_config(home, llm_server),
        llm_api_key_secret="parallelner-llm-key",
        return_state=True,
    )
    assert state.is_completed()
    assert {r["authorization"] for r in llm_server.requests} == {f"Bearer {secret}"}
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    assert secret not in json.dumps(flow_run.parameters)
    assert not [p for p in home.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
