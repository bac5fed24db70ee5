"""A run through the library (plan_run -> process_shard -> finalize_run) on a loopback
OpenAI-compatible server: what it commits when its input overlaps an earlier run's."""

from __future__ import annotations

from parallelner import pipeline
from parallelner.llm.runtime import LLMRuntime
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
    import pytest

    from parallelner.errors import ConfigError

    settings = load_settings(None, home=tmp_path / "home", llm_base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="--from zh --to zh: the source language is the target"):
        pipeline.plan_run([WIKINEURAL_SAMPLE], "zh", settings, src_lang="zh")
    assert not (tmp_path / "home" / "shards").exists()  # refused before reading
