"""A run through the library (plan_run -> process_shard -> finalize_run) on a loopback
OpenAI-compatible server: what it commits when its input overlaps an earlier run's."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from parallelner import pipeline
from parallelner.llm.runtime import LLMRuntime
from parallelner.reasons import Status
from parallelner.records import table_to_records
from parallelner.settings import load_settings
from parallelner.store import list_snapshots, load_snapshot
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE


def _processed(settings, sources=(WIKINEURAL_SAMPLE,)):
    """A run planned and its shards processed, not finalized."""
    plan = pipeline.plan_run(list(sources), "zh", settings)
    with LLMRuntime(settings) as runtime:
        return plan, [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]


def _run(settings, limit=None):
    plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings, limit=limit)
    with LLMRuntime(settings) as runtime:
        results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
    return pipeline.finalize_run(plan, results, settings)


def test_a_run_over_a_slice_then_the_whole_file_commits_what_is_new(tmp_path):
    """The README's "try a slice": ``--limit 6``, then the whole file on the same home."""
    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=4,
        )  # fmt: skip
        first = _run(settings, limit=6)
        whole = _run(settings)
        again = _run(settings, limit=3)  # a slice of what is there: nothing new
    assert first.snapshot_new and first.rows_skipped == 0
    assert whole.snapshot_new and whole.rows_skipped == 6
    assert whole.snapshot_id != first.snapshot_id
    rows = load_snapshot("main", settings=settings)
    ids = rows.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 20
    snaps = list_snapshots(settings)
    assert [s["added_records"] for s in snaps] == [6, 14]
    assert not again.snapshot_new and again.rows_skipped == 3
    assert again.snapshot_id == whole.snapshot_id and len(list_snapshots(settings)) == 2


def test_a_source_language_that_is_the_target_is_refused(tmp_path):
    from parallelner.errors import ConfigError

    settings = load_settings(None, home=tmp_path / "home", llm_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="--from zh --to zh: the source language is the target"):
        pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings, src_lang="zh")
    assert not (tmp_path / "home" / "shards").exists()  # refused before reading


def test_an_instance_id_seen_in_an_earlier_source_is_named_with_its_source_and_place(tmp_path):
    """Three span JSONL sources; the third's 2nd instance has the id of the second's 3rd."""
    from parallelner.errors import InputError
    from parallelner.readers import read_instances
    from parallelner.writers.spanjsonl import write_span_jsonl

    real = list(read_instances(WIKINEURAL_SAMPLE))
    files = []
    for name, ids in (("a", ["a1", "a2"]), ("b", ["b1", "b2", "b3", "b4"]), ("c", ["c1", "b3"])):
        files.append(tmp_path / f"{name}.jsonl")
        rows = [i.model_copy(update={"id": x}) for i, x in zip(real, ids, strict=False)]
        write_span_jsonl(rows, files[-1])
    settings = load_settings(None, home=tmp_path / "home", llm_base_url="http://127.0.0.1:9/v1")
    assert sum(s.size for s in pipeline.plan_run(files[:2], "zh", settings).shards) == 6
    with pytest.raises(InputError) as caught:
        pipeline.plan_run(files, "zh", settings)
    assert f"instance 2 has the id 'b3' of instance 3 of {files[1]}:" in str(caught.value)


def test_a_target_with_a_script_subtag_runs_and_an_unknown_language_with_one_does_not(tmp_path):
    from parallelner.errors import ConfigError

    pipeline.check_languages("zh-Hant", "en")  # the CLI's gate: refused before this fix
    pipeline.check_languages("pt-BR")
    for bad in ("xx-Hant", "zh-", "zh_Hant"):
        with pytest.raises(ConfigError, match=f"unknown language '{bad}'"):
            pipeline.check_languages(bad)
    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model"
        )
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh-Hant", settings)
        with LLMRuntime(settings) as runtime:
            results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
        pipeline.finalize_run(plan, results, settings)
        system = srv.requests[0]["body"]["messages"][0]["content"]
    rows = table_to_records(load_snapshot("main", settings=settings))
    assert len(rows) == 20 and {r.tgt_lang for r in rows} == {"zh-Hant"}
    assert "from English to Traditional Chinese" in system  # the variant is asked for
    assert {r.status for r in rows} == {Status.ACCEPTED}  # the stand-in answers in it


def _sample_with_a_repeat(tmp_path):
    """The WikiNEuRal sample with its first sentence again at the end (under another id),
    so the duplicate check has to look across shards."""
    text = WIKINEURAL_SAMPLE.read_text(encoding="utf-8")
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    src = tmp_path / "sample.conllu"
    src.write_text("\n\n".join([*blocks, blocks[0]]) + "\n", encoding="utf-8")
    return src


def test_many_shards_commit_one_snapshot_with_the_rows_of_one_shard_at_a_time(tmp_path):
    """Issue 26: finalize streams shard by shard; the snapshot holds what the old
    whole-table commit held: every row once, the duplicate across shards marked, the
    --output file equal to the snapshot."""
    import pyarrow.parquet as pq

    src = _sample_with_a_repeat(tmp_path)
    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=2,
        )  # fmt: skip
        plan, results = _processed(settings, [src])
        summary = pipeline.finalize_run(plan, results, settings, output_dir=tmp_path / "out")
    assert len(plan.shards) == 11
    snaps = list_snapshots(settings)
    assert len(snaps) == 1 and snaps[0]["added_records"] == 21
    rows = load_snapshot("main", settings=settings)
    ids = rows.column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 21
    # what the whole-table finalize committed: the shards' rows, duplicates marked in order
    seen: set[str] = set()
    expected = []
    for r in sorted(results, key=lambda r: r.index):
        expected += pipeline.mark_duplicates(
            table_to_records(pq.read_table(r.path)), settings, seen
        )
    got = {r.record_id: r for r in table_to_records(rows)}
    assert got == {r.record_id: r for r in expected}
    assert sum("duplicate" in r.reasons for r in got.values()) == 1
    out = pq.read_table(summary.output_files[0])
    assert sorted(out.column("record_id").to_pylist()) == sorted(ids)
    assert not (tmp_path / "home" / "staging" / plan.run_id).exists()  # cleaned up


_KILLED_IN_COMMIT = """
import os, signal, sys
from pyiceberg.table import Transaction
real = Transaction.commit_transaction
def killed(self):
    if os.environ.get("KILL_AT") == "before":
        os.kill(os.getpid(), signal.SIGKILL)  # data files written, nothing committed
    out = real(self)
    if os.environ.get("KILL_AT") == "after":
        os.kill(os.getpid(), signal.SIGKILL)  # committed, the run never said so
    return out
Transaction.commit_transaction = killed
sys.path.insert(0, sys.argv[1])
from tests.parallelner.test_pipeline import _run
from parallelner.settings import load_settings
settings = load_settings(None, home=sys.argv[2], llm_base_url=sys.argv[3],
                         llm_model="test-model", shard_size=3)
_run(settings)
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_run_killed_in_the_commit_resumes_to_one_snapshot_with_every_row_once(when, tmp_path):
    import subprocess
    import sys

    repo = str(Path(__file__).resolve().parents[2])
    home = tmp_path / "home"
    with OpenAIServer(model="test-model") as srv:
        killed = subprocess.run(
            [sys.executable, "-c", _KILLED_IN_COMMIT, repo, str(home), srv.base_url],
            env={**os.environ, "KILL_AT": when}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert killed.returncode == -9, killed.stderr[-2000:]
        settings = load_settings(
            None, home=home, llm_base_url=srv.base_url, llm_model="test-model", shard_size=3
        )
        srv.reset_log()
        again = _run(settings)
        asked = srv.stats()["requests"]
    assert asked == 0  # every shard's rows were kept: nothing is asked again
    snaps = list_snapshots(settings)
    assert len(snaps) == 1 and snaps[0]["run_id"] == again.run_id
    ids = load_snapshot("main", settings=settings).column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 20
    assert again.snapshot_new is (when == "before")


def _cut(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def _damage_cache_truncated(home):
    for side in home.glob("llm-cache.sqlite-*"):  # as a copy of the main file alone would
        side.unlink()
    _cut(home / "llm-cache.sqlite", 0.4)
    return home / "llm-cache.sqlite"


def _damage_cache_random(home):
    import random

    for side in home.glob("llm-cache.sqlite-*"):
        side.unlink()
    path = home / "llm-cache.sqlite"
    path.write_bytes(random.Random(25).randbytes(20_000))
    return path


def _damage_rows_truncated(home):
    path = sorted((home / "rows").rglob("*.parquet"))[0]
    _cut(path, 0.5)
    return path


def _damage_shard_cut_mid_line(home):
    path = sorted((home / "shards").glob("*.jsonl"))[0]
    _cut(path, 0.6)
    (home / "rows").rename(home / "rows-gone")  # the shard must be read again
    return path


def _damage_shard_lost_lines(home):
    path = sorted((home / "shards").glob("*.jsonl"))[0]
    lines = path.read_text("utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:2]), "utf-8")
    (home / "rows").rename(home / "rows-gone")
    return path


@pytest.mark.parametrize(
    "damage",
    [
        _damage_cache_truncated,
        _damage_cache_random,
        _damage_rows_truncated,
        _damage_shard_cut_mid_line,
        _damage_shard_lost_lines,
    ],
    ids=lambda f: f.__name__.removeprefix("_damage_"),
)
def test_a_damaged_file_is_set_aside_with_one_warning_and_its_work_redone(tmp_path, caplog, damage):
    """Issue 25 case 10: a damaged reply cache, rows file or shard file was a traceback on
    every re-run. Now the file is renamed ``<name>.damaged-<time>``, one warning line
    names it, and the work it held is done again: every instance ends in a row."""
    import logging

    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=4,
        )  # fmt: skip
        first = _run(settings)
        damaged = damage(tmp_path / "home")
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = _run(settings)
        third = _run(settings)
    lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert len(lines) == 1 and lines[0].startswith(f"{damaged}: ") and "\n" not in lines[0]
    aside = list(damaged.parent.glob(f"{damaged.name}.damaged-*"))
    assert len(aside) == 1 and f"set aside as {aside[0].name}" in lines[0]
    assert again.counts == first.counts and again.instances == first.instances == 20
    assert third.counts == first.counts
    rows = load_snapshot("main", settings=settings)
    assert rows.num_rows == 20


class _FullDisk:
    """The reply cache's SQLite connection on a full disk: every write is refused as
    SQLite refuses it (``database or disk is full``); reads still work."""

    def __init__(self, db):
        self._db = db

    def execute(self, sql, *args):
        if sql == "BEGIN" or sql == "ROLLBACK":
            return self._db.execute(sql, *args)
        raise sqlite3.OperationalError("database or disk is full")

    def executemany(self, sql, rows):
        raise sqlite3.OperationalError("database or disk is full")

    def close(self):
        self._db.close()


def test_a_full_disk_under_the_reply_cache_ends_every_shard_thread(tmp_path):
    """Issue 25 case 8, without a full file system (``tests/flows`` has one on tmpfs):
    the reply cache's writer gets "database or disk is full" while four shards share one
    runtime on worker threads, as the flow runs them. The first shard's error names the
    cache file; closing the runtimes (the flow does on the first error) ends the other
    threads at once: closing stopped the loop under them, and they waited forever."""
    import threading

    from parallelner.errors import NoSpaceError, RunStopped
    from parallelner.llm.runtime import RuntimePool

    errors: dict[int, BaseException | None] = {}
    failed = threading.Event()

    def shard(i, s, plan, settings, runtime):
        try:
            pipeline.process_shard(s, plan, settings, runtime)
            errors[i] = None
        except BaseException as exc:
            errors[i] = exc
            failed.set()

    with OpenAIServer(model="test-model", service_time=0.05) as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=2,
        )  # fmt: skip
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
        pool = RuntimePool()
        runtime = pool.get(settings)
        cache = runtime.client._cache
        cache._db = _FullDisk(cache._db)
        # daemon threads: a thread that never ends fails the test instead of hanging it
        threads = [
            threading.Thread(target=shard, args=(i, s, plan, settings, runtime), daemon=True)
            for i, s in enumerate(plan.shards[:4])
        ]
        for t in threads:
            t.start()
        assert failed.wait(60)
        first = next(e for e in errors.values() if e is not None)
        pool.close()
        for t in threads:
            t.join(15)
        stuck = [t for t in threads if t.is_alive()]
        assert not stuck, f"{len(stuck)} shard threads never finished"
    assert isinstance(first, NoSpaceError), repr(first)
    assert str(settings.home / "llm-cache.sqlite") in str(first)
    assert all(isinstance(e, NoSpaceError | RunStopped) for e in errors.values())


def test_a_server_that_trickles_bytes_is_given_up_on_and_the_run_says_what_it_waits_for(
    tmp_path, caplog
):
    """Issue 25 case 12: a server that sends its reply one byte every 0.5 s never trips
    a per-read timeout, and before any latency was observed the fitted timeout did not
    exist: the run sat silent for 400 s+. The first requests get ``llm_first_timeout_s``
    (doubled per retry); the run says what it waits for, then leaves the shards
    unfinished (the next run asks again)."""
    import logging
    import time

    with OpenAIServer(model="test-model", fault_mix={"trickle": 1.0}) as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=10, llm_first_timeout_s=1.5, llm_outage_wait_s=0,
            translate={"max_retries": 1},
        )  # fmt: skip
        started = time.monotonic()
        with caplog.at_level(logging.WARNING):
            summary = _run(settings, limit=10)
        took = time.monotonic() - started
    assert took < 30, took  # 1.5 s, then 3 s, for each request: not 2 x 120 s
    assert summary.unfinished["shards"] == 1 and summary.counts == {"failed": 10}
    said = [r.getMessage() for r in caplog.records]
    assert any("no reply from the LLM server within 1.5 s" in m for m in said), said
    assert any("llm_first_timeout_s" in m for m in said)


def test_a_rows_file_with_fewer_rows_is_redone_not_committed_short(tmp_path, caplog):
    """Issue 25 case 3: a shard's rows file replaced by a valid Parquet file with fewer
    rows (before the commit): the re-run sets it aside with a warning, asks that shard's
    questions again (from the reply cache) and commits every instance once."""
    import pyarrow.parquet as pq

    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=5,
        )  # fmt: skip
        plan, results = _processed(settings)
        short = Path(results[1].path)
        pq.write_table(pq.read_table(short).slice(0, 2), short)  # whole, but 2 of 5 rows
        summary = _run(settings)
    assert any("holds 2 rows for a shard of 5 instances" in r.getMessage() for r in caplog.records)
    assert list(short.parent.glob(short.name + ".damaged-*"))
    assert summary.shards["reused"] == 3 and summary.shards["processed"] == 1
    ids = load_snapshot("main", settings=settings).column("record_id").to_pylist()
    assert len(ids) == len(set(ids)) == 20


def test_a_rows_file_that_changed_after_its_shard_finished_stops_the_commit(tmp_path):
    """The same, found at finalize (the file changed after process_shard returned): one
    clear error, nothing committed, the file set aside; the same run then redoes it."""
    import pyarrow.parquet as pq

    from parallelner.errors import StoreError

    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=5,
        )  # fmt: skip
        plan, results = _processed(settings)
        short = Path(results[2].path)
        pq.write_table(pq.read_table(short).slice(0, 4), short)
        with pytest.raises(StoreError, match="4 rows for 5 instances.*run the same command"):
            pipeline.finalize_run(plan, results, settings)
        assert not (tmp_path / "home" / "catalog.db").exists()  # nothing committed
        summary = _run(settings)
    assert summary.snapshot_new and len(load_snapshot("main", settings=settings)) == 20


def test_a_shard_started_on_a_closed_runtime_leaves_no_coroutine_unawaited(tmp_path):
    """A shard that starts while the run stops gets RunStopped, and nothing prints
    "coroutine ... was never awaited" under the run's one-line error (it did)."""
    import gc
    import warnings

    from parallelner.errors import RunStopped

    with OpenAIServer(model="test-model") as srv:
        settings = load_settings(
            None, home=tmp_path / "home", llm_base_url=srv.base_url, llm_model="test-model",
            shard_size=4,
        )  # fmt: skip
        plan = pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings)
        runtime = LLMRuntime(settings)
        runtime.close()
        stopped = False
        with warnings.catch_warnings(record=True) as heard:
            warnings.simplefilter("always")
            try:
                pipeline.process_shard(plan.shards[0], plan, settings, runtime)
            except RunStopped:
                stopped = True
            gc.collect()
    assert stopped and [str(w.message) for w in heard if "never awaited" in str(w.message)] == []
