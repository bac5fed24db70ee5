"""Whole runs through a batch API (``parallelner.batchrun``): the same table as online,
nothing submitted twice whatever step a run is stopped at, failed and expired lines asked
again, and the ``vllm run-batch`` file formats.

The replies come from the noisy translator (40% mistakes, the repair loop and a fallback
model) behind both paths: the online run asks the loopback chat server, the batch run the
Files + Batches stand-in (``testing.batch_server``) whose lines that same server answers.
A stop is an exception raised inside the backend at one step (after the upload, after
the job is created, while polling, while reading the output): what is on disk is then
exactly what a SIGKILL at that point leaves, since the journal is written and fsynced
before each step.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import pytest

from parallelner import batchrun, pipeline
from parallelner.llm.batch import OpenAIBatches
from parallelner.llm.runtime import LLMRuntime
from parallelner.settings import load_settings
from parallelner.testing.batch_server import BatchServer
from parallelner.testing.noisy import NoisyTranslator, load_gold_pairs
from parallelner.testing.openai_server import OpenAIServer
from parallelner.writers.spanjsonl import write_span_jsonl

DATA = Path(__file__).resolve().parents[2] / "data" / "projection-dev"
N = 24


@pytest.fixture(scope="module")
def pairs():
    return load_gold_pairs([DATA / "europarl-en-de.jsonl"])[:N]


@pytest.fixture
def source(tmp_path, pairs):
    path = tmp_path / "src.jsonl"
    write_span_jsonl(
        [p.instance().model_copy(update={"source_dataset": "conll"}) for p in pairs], path
    )
    return path


def _settings(home, base_url, **kw):
    return load_settings(
        None, home=home, llm_base_url=base_url, llm_model="test-model",
        llm_fallback_model="strong-model", shard_size=8,
        batch={"poll_s": 0.02, **kw.pop("batch", {})}, **kw,
    )  # fmt: skip


def _table(plan, results, settings):
    summary = pipeline.finalize_run(plan, results, settings)
    from parallelner.records import table_to_records
    from parallelner.store import load_snapshot

    recs = table_to_records(load_snapshot(summary.snapshot_id, home=settings.home))
    return summary, sorted(
        (
            r.record_id, r.status.value, tuple(x.value for x in r.reasons), r.tgt_text,
            tuple((e.start, e.end, e.label, e.source_index) for e in r.tgt_entities),
        )
        for r in recs
    )  # fmt: skip


def _online(source, home, srv):
    s = _settings(home, srv.base_url)
    plan = pipeline.plan_run([source], "de", s, dataset="conll")
    with LLMRuntime(s) as rt:
        results = [pipeline.process_shard(x, plan, s, rt) for x in plan.shards]
    return _table(plan, results, s)


def _translator(pairs):
    return NoisyTranslator(pairs, mistake_rate=0.4, seed=3, strong_model="strong-model")


def test_a_batch_run_gives_the_online_table(tmp_path, source, pairs):
    with OpenAIServer(responder=_translator(pairs)) as srv:
        _, online = _online(source, tmp_path / "online", srv)
    with OpenAIServer(responder=_translator(pairs)) as srv, BatchServer(chat=srv) as bs:
        s = _settings(tmp_path / "batch", bs.base_url)
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        results, rounds = batchrun.run_batch(plan, s)
        _, batch = _table(plan, results, s)
        submitted = bs.stats()["lines_submitted"]
    assert batch == online
    assert len(batch) == N
    # rounds: translate, read-backs, then the repair loop's questions
    assert len(rounds) >= 3 and rounds[-1].questions == 0 and rounds[-1].job is None
    assert submitted == sum(r.questions for r in rounds)  # each question once
    assert sum(r.usage["requests"] for r in rounds) == submitted
    # the same run online on the same home, its rows files gone: every reply comes from
    # the reply cache the batch run filled, nothing is asked
    from parallelner import storage

    with OpenAIServer(responder=_translator(pairs)) as srv:
        s2 = _settings(tmp_path / "batch", srv.base_url)
        plan2 = pipeline.plan_run([source], "de", s2, dataset="conll")
        assert plan2.run_id == plan.run_id
        shards = storage.ShardStore.of(s2)
        for x in plan2.shards:
            Path(str(shards.rows_path(plan2.config_hash, x.id))).unlink()
        with LLMRuntime(s2) as rt:
            again = [pipeline.process_shard(x, plan2, s2, rt) for x in plan2.shards]
        assert srv.stats()["requests"] == 0
        assert sum(sum(r.counts.values()) for r in again) == N


class _StopOnce(OpenAIBatches):
    """The OpenAI backend, stopped once at ``step``."""

    def __init__(self, base_url: str, step: str):
        super().__init__(base_url, "k")
        self.step = step
        c = self._client
        real_create, real_retrieve, real_content = (
            c.batches.create, c.batches.retrieve, c.files.content,
        )  # fmt: skip

        def create(**kw):
            if self.step == "after_upload":
                self.step = ""
                raise KeyboardInterrupt("stopped after the upload")
            b = real_create(**kw)
            if self.step == "after_create":
                self.step = ""
                raise KeyboardInterrupt("stopped after the job was created")
            return b

        def retrieve(job):
            if self.step == "polling":
                self.step = ""
                raise KeyboardInterrupt("stopped while polling")
            return real_retrieve(job)

        def content(fid):
            if self.step == "reading":
                self.step = ""
                raise KeyboardInterrupt("stopped while reading the output")
            return real_content(fid)

        c.batches.create, c.batches.retrieve, c.files.content = create, retrieve, content


@pytest.mark.parametrize("step", ["after_upload", "after_create", "polling", "reading"])
def test_a_run_stopped_at_any_step_submits_nothing_twice(step, tmp_path, source, pairs):
    with OpenAIServer(responder=_translator(pairs)) as srv:
        _, online = _online(source, tmp_path / "online", srv)
    with OpenAIServer(responder=_translator(pairs)) as srv, BatchServer(chat=srv) as bs:
        s = _settings(tmp_path / "batch", bs.base_url)
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        with pytest.raises(KeyboardInterrupt):
            batchrun.run_batch(plan, s, jobs=_StopOnce(bs.base_url, step))
        stopped_at = bs.stats()
        # started again: the same job is found, waited for and read
        results, rounds = batchrun.run_batch(plan, s)
        _, batch = _table(plan, results, s)
        st = bs.stats()
    assert batch == online  # every instance in exactly one final state, as online
    journal = batchrun.journal_for(s, plan.run_id).rounds()
    asked = sum(r["questions"] for r in journal.values())
    assert st["lines_submitted"] == asked, (stopped_at, st)  # no question submitted twice
    assert st["batches"] == len(journal)  # one job per round, the stopped one included
    assert all("read" in r for r in journal.values())


def test_failed_and_expired_lines_are_asked_again_in_the_next_round(tmp_path, source, pairs):
    with OpenAIServer(responder=_translator(pairs)) as srv:
        _, online = _online(source, tmp_path / "online", srv)
    chat = OpenAIServer(responder=_translator(pairs), fault_mix={"500": 0.15}, seed=2)
    with chat as srv, BatchServer(chat=srv, expire={1}) as bs:
        s = _settings(tmp_path / "batch", bs.base_url)
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        results, rounds = batchrun.run_batch(plan, s)
        _, batch = _table(plan, results, s)
        statuses = bs.stats()["statuses"]
    assert statuses["batch_0001"] == "expired"
    assert any(r.failed for r in rounds[1:])  # HTTP 500 lines, asked again
    assert batch == online


def test_too_many_failed_rounds_fail_the_instance_as_a_transient_failure(tmp_path, source, pairs):
    chat = OpenAIServer(responder=_translator(pairs), fault_mix={"500": 1.0})
    with chat as srv, BatchServer(chat=srv) as bs:
        s = _settings(tmp_path / "batch", bs.base_url, batch={"max_rounds": 2})
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        results, rounds = batchrun.run_batch(plan, s)
        summary = pipeline.finalize_run(plan, results, s)
    assert rounds[-1].job is None  # every instance ended
    assert summary.counts == {"failed": N}
    # no question went out more than max_rounds times
    journal = batchrun.journal_for(s, plan.run_id)
    sent = Counter(
        json.loads(line)["custom_id"]
        for r in journal.rounds()
        for line in journal.input_path(r).read_text().splitlines()
    )
    assert sent and max(sent.values()) == 2
    assert summary.unfinished.get("rows") == N  # the next run asks again


def test_vllm_run_batch_files(tmp_path, source, pairs):
    """The ``vllm run-batch`` backend: our input lines pass vLLM's format checks and its
    output format reads back into the same table (``testing.fake_vllm`` answers them
    through the stand-in, as vLLM would on a GPU)."""
    with OpenAIServer(responder=_translator(pairs)) as srv:
        _, online = _online(source, tmp_path / "online", srv)
    with OpenAIServer(responder=_translator(pairs)) as srv:
        command = f"{sys.executable} -m parallelner.testing.fake_vllm --server {srv.base_url}"
        s = _settings(tmp_path / "batch", None, batch={"backend": "vllm", "vllm_command": command})
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        results, rounds = batchrun.run_batch(plan, s)
        _, batch = _table(plan, results, s)
    assert batch == online
    assert len(rounds) >= 3


def test_the_tail_of_small_rounds_goes_online_when_asked(tmp_path, source, pairs):
    with OpenAIServer(responder=_translator(pairs)) as srv:
        _, online = _online(source, tmp_path / "online", srv)
    with OpenAIServer(responder=_translator(pairs)) as srv, BatchServer(chat=srv) as bs:
        s = _settings(tmp_path / "batch", bs.base_url, batch={"online_below": 10})
        plan = pipeline.plan_run([source], "de", s, dataset="conll")
        results, rounds = batchrun.run_batch(plan, s)
        _, batch = _table(plan, results, s)
        submitted = bs.stats()["lines_submitted"]
        # the online requests went to the chat server directly, not through a job
        direct = [r for r in srv.requests if not r.get("batch")]
    assert batch == online
    assert rounds[-1].online and 0 < rounds[-1].questions < 10
    assert all(r.questions >= 10 for r in rounds[:-1])
    assert len(direct) == rounds[-1].usage["requests"] > 0
    assert submitted == sum(r.questions for r in rounds[:-1])
