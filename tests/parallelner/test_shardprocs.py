"""Shards in worker processes (``parallelner.shardprocs``): the same rows as in one
process, one in-flight bound and one reply cache over the workers, errors and progress
back to the caller, a worker that dies or a parent that is gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from parallelner import pipeline, shardprocs
from parallelner.errors import ParallelNERError
from parallelner.progress import listening
from parallelner.records import table_to_records
from parallelner.settings import load_settings
from parallelner.store import load_snapshot
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE
from tests.parallelner.test_pipeline import _processed

REPO = Path(__file__).resolve().parents[2]
# what differs between two runs of the same rows: when they were made
_VOLATILE = {"created_at", "reviewed_at", "run_id"}


def _settings(home, url, **kw):
    return load_settings(
        None, home=home, llm_base_url=url, llm_model="test-model", shard_size=3, **kw
    )


def _rows(settings):
    rows = table_to_records(load_snapshot("main", settings=settings))
    return {r.record_id: r.model_dump(exclude=_VOLATILE) for r in rows}


def test_auto_processes_one_per_core_for_a_large_run_only(monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert shardprocs.auto_processes(257_190, None) == 4
    assert shardprocs.auto_processes(19_999, None) == 0  # a small run: one process
    assert shardprocs.auto_processes(257_190, 0) == 0  # the setting decides
    assert shardprocs.auto_processes(100, 3) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert shardprocs.auto_processes(257_190, None) == 0  # one core: nothing to gain


def test_shards_in_two_processes_give_the_rows_of_one_process_and_share_cache_and_bound(
    tmp_path,
):
    events: dict[str, int] = {}

    def heard(event, n):
        events[event] = events.get(event, 0) + n

    with OpenAIServer(model="test-model", service_time=0.01) as srv:
        one = _settings(tmp_path / "one", srv.base_url)
        plan, results = _processed(one)
        pipeline.finalize_run(plan, results, one)
        expected = _rows(one)

        srv.reset_log()
        two = _settings(tmp_path / "two", srv.base_url, llm_max_in_flight=4)
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", two)
        with listening(heard):
            procs = shardprocs.ShardProcesses(two, 2)
            try:
                futures = [procs.submit(s, plan) for s in plan.shards]
                results = [f.result(timeout=300) for f in futures]
                maps = [Path(f"/proc/{p.proc.pid}/maps").read_text() for p in procs._procs]
            finally:
                procs.close()
        asked = srv.stats()
        pipeline.finalize_run(plan, results, two)
        got = _rows(two)

        # the same cache (the second home's), a new pool: every reply is read, none asked
        srv.reset_log()
        again = _settings(tmp_path / "two", srv.base_url)
        procs = shardprocs.ShardProcesses(again, 2)
        try:
            for shard in plan.shards:  # rows deleted: the shards are processed again
                Path(pipeline._shard_rows_path(again, plan.config_hash, shard)).unlink()
            [procs.process(s, plan) for s in plan.shards]
        finally:
            procs.close()
        asked_again = srv.stats()["requests"]

    assert got == expected  # record ids, texts, spans, statuses and reasons
    assert len(plan.shards) == 7 and len({r.shard_id for r in results}) == 7
    assert events["record"] == 20 and events["shard"] == 7
    assert asked["requests"] > 0 and asked["max_concurrent"] <= 4  # 2 + 2: one bound
    assert asked_again == 0
    # a worker converts records to Arrow without pandas (50 MB a process)
    assert len(maps) == 2 and not any("pandas/_libs" in m for m in maps)
    lat, answered = procs.latencies()
    assert answered == 0 and lat == []  # nothing was asked the second time


def test_a_worker_retires_after_its_shards_and_a_fresh_one_goes_on_within_the_bound(tmp_path):
    with OpenAIServer(model="test-model", service_time=0.01) as srv:
        settings = _settings(tmp_path / "home", srv.base_url, llm_max_in_flight=3)
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
        procs = shardprocs.ShardProcesses(settings, 1, retire_after=2)
        try:
            results = [f.result(timeout=300) for f in [procs.submit(s, plan) for s in plan.shards]]
        finally:
            procs.close()
        peak = srv.stats()["max_concurrent"]
    assert [r.index for r in results] == list(range(7))
    assert sum(sum(r.counts.values()) for r in results) == 20
    assert len(procs._procs) == 4  # 7 shards, 2 each: three workers retired
    assert all(not p.proc.is_alive() and p.proc.exitcode == 0 for p in procs._procs)
    assert peak <= 3  # a successor starts when its predecessor has ended


def test_a_users_error_comes_back_as_itself_and_nothing_is_written(tmp_path):
    with OpenAIServer(model="test-model", fault_mix={"401": 1.0}) as srv:
        settings = _settings(tmp_path / "home", srv.base_url)
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
        procs = shardprocs.ShardProcesses(settings, 1)
        try:
            with pytest.raises(ParallelNERError, match="401|API key|refused"):
                procs.process(plan.shards[0], plan)
        finally:
            procs.close()
    assert not pipeline.shard_done(settings, plan.config_hash, plan.shards[0])


def test_a_worker_that_dies_fails_its_shard_and_another_worker_takes_the_next(tmp_path):
    with OpenAIServer(model="test-model", service_time=2.0) as srv:
        settings = _settings(tmp_path / "home", srv.base_url)
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
        procs = shardprocs.ShardProcesses(settings, 1)
        try:
            doomed = procs.submit(plan.shards[0], plan)
            deadline = time.monotonic() + 60
            while srv.stats()["requests"] == 0 and time.monotonic() < deadline:
                time.sleep(0.1)  # the shard has started: its requests are on the wire
            (worker,) = procs._procs
            os.kill(worker.proc.pid, signal.SIGKILL)
            with pytest.raises(RuntimeError, match="worker process that had this shard died"):
                doomed.result(timeout=60)
            srv.service_time = 0.0
            result = procs.process(plan.shards[1], plan)  # a new worker
        finally:
            procs.close()
    assert result.index == 1 and sum(result.counts.values()) == 3
    assert pipeline.shard_done(settings, plan.config_hash, plan.shards[1])


_PARENT_GOES = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
from parallelner import pipeline, shardprocs
from parallelner.settings import load_settings
from tests.flows.helpers import WIKINEURAL_SAMPLE
settings = load_settings(None, home=sys.argv[2], llm_base_url=sys.argv[3],
                         llm_model="test-model", shard_size=3)
plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
procs = shardprocs.ShardProcesses(settings, 2)
procs.submit(plan.shards[0], plan)
time.sleep(3)
print(" ".join(str(p.proc.pid) for p in procs._procs), flush=True)
os._exit(0)  # as a stopped run does: no close, no atexit
"""


def test_workers_stop_when_the_runs_process_is_gone(tmp_path):
    with OpenAIServer(model="test-model", service_time=5.0) as srv:
        done = subprocess.run(
            [sys.executable, "-c", _PARENT_GOES, str(REPO), str(tmp_path / "h"), srv.base_url],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        pids = [int(p) for p in done.stdout.split()]
        assert len(pids) == 2
        deadline = time.monotonic() + 15
        alive = pids
        while alive and time.monotonic() < deadline:
            time.sleep(0.2)
            alive = [p for p in pids if _alive(p)]
    assert alive == []  # gone within seconds, not after their shard's requests


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
