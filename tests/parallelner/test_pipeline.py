"""A run through the library (plan_run -> process_shard -> finalize_run) on a loopback
OpenAI-compatible server: what it commits when its input overlaps an earlier run's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from parallelner import pipeline
from parallelner.llm.runtime import LLMRuntime
from parallelner.records import table_to_records
from parallelner.settings import load_settings
from parallelner.store import list_snapshots, load_snapshot
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import WIKINEURAL_SAMPLE


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
        plan = pipeline.plan_run([src], "zh", settings)
        with LLMRuntime(settings) as runtime:
            results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
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
