"""Whole runs through a batch API, in rounds (``parallelner run --batch``).

A round runs **the same stage chain** as an online run, over every shard not finished,
with an LLM client that answers from the replies of earlier batch jobs instead of a
server (``BatchAnswers``). An instance whose chain asks a question nobody has answered
yet stops there (``Pending``); its question joins the round's batch. When every
unfinished instance has stopped or ended, the round's questions go out as one batch job;
when the job is done its output is read back, and the next round replays the chain: the
questions answered now are answered at once (from the reply cache, where the client
keeps every reply, or from the job's output), and the chain goes one step further.
A shard whose instances all end is written exactly as an online run writes it, so the
commit, duplicates, report and re-runs are the online path's.

Nothing is paid twice. Each job is recorded in ``<home>/batches/<run_id>/journal.jsonl``
before it is waited for; a run killed and started again polls the recorded job, never
submits its questions again (a job created but not yet recorded is found by the key it
carries: ``OpenAIBatches.submit``). A line that failed (an HTTP error, an expired or
cancelled job's unanswered lines) is asked again in the next round, at most
``batch.max_rounds`` rounds; then its instance fails as a transient failure does online.

The question's key is the reply cache's key (``llm.cache.cache_key``): the batch line's
``custom_id``. So a batch run re-run online asks nothing, and the reverse.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallelner.errors import Pending
from parallelner.llm.batch import CHAT_URL, JobStatus, OpenAIBatches, VLLMRunBatch
from parallelner.progress import muted, notify
from parallelner.settings import Settings
from parallelner.writers.atomic import AtomicTextWriter

__all__ = [
    "Pending",
    "BatchAnswers",
    "BatchJournal",
    "RoundResult",
    "batch_jobs",
    "run_round",
    "run_batch",
]

_PATHS = {"chat": CHAT_URL, "completion": "/v1/completions"}


@dataclass
class BatchAnswers:
    """The replies of finished batch jobs by question key, and the questions still needed."""

    max_rounds: int = 12
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: Counter[str] = field(default_factory=Counter)
    needed: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_output(self, path: Path, asked: Path | None = None) -> tuple[int, int]:
        """Read one job's output (answers and error lines); (answered, failed) lines.
        A question of ``asked`` (the job's input) with no line at all failed too."""
        ok = bad = 0
        seen: set[str] = set()
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            obj = json.loads(line)
            key = str(obj.get("custom_id"))
            seen.add(key)
            response = obj.get("response") or {}
            body = response.get("body") or {}
            if obj.get("error") or response.get("status_code", 200) != 200 or not body:
                self.failed[key] += 1
                bad += 1
                continue
            self.answers[key] = body
            ok += 1
        if asked is not None:  # a job that failed whole, or lost lines
            for line in asked.read_text(encoding="utf-8").splitlines():
                key = str(json.loads(line)["custom_id"]) if line.strip() else ""
                if key and key not in seen:
                    self.failed[key] += 1
                    bad += 1
        return ok, bad

    def answer(self, key: str) -> dict[str, Any] | None:
        """The response body for ``key``, or None (then ``need`` it)."""
        return self.answers.get(key)

    def gave_up(self, key: str) -> bool:
        """Whether ``key``'s line failed in ``max_rounds`` rounds (its instance fails)."""
        return self.failed[key] >= self.max_rounds

    def need(self, key: str, kind: str, body: dict[str, Any]) -> None:
        self.needed[key] = {"custom_id": key, "method": "POST", "url": _PATHS[kind], "body": body}

    def take_needed(self) -> list[dict[str, Any]]:
        """The round's questions (each once), in the order first asked; cleared."""
        out = list(self.needed.values())
        self.needed = {}
        return out


@dataclass
class BatchJournal:
    """The run's batch jobs, durable: one JSON line per event, fsynced.

    Events: ``submitting`` (the round's input file is written; ``key``), ``submitted``
    (``job`` id), ``read`` (the job's output is saved beside the journal).
    """

    dir: Path

    @property
    def path(self) -> Path:
        return self.dir / "journal.jsonl"

    def events(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill: the event never was
                continue
        return out

    def record(self, **event: Any) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        event["at"] = round(time.time(), 3)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(event, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def rounds(self) -> dict[int, dict[str, Any]]:
        """Per round: its key, job id, questions, and whether its output was read."""
        out: dict[int, dict[str, Any]] = {}
        for e in self.events():
            r = out.setdefault(int(e["round"]), {"round": int(e["round"])})
            r.update({k: v for k, v in e.items() if k not in ("event", "at")})
            r[e["event"]] = e["at"]
        return out

    def input_path(self, round_no: int) -> Path:
        return self.dir / f"round-{round_no:03d}.jsonl"

    def output_path(self, round_no: int) -> Path:
        return self.dir / f"round-{round_no:03d}.replies.jsonl"

    def write_input(self, round_no: int, lines: list[dict[str, Any]]) -> Path:
        path = self.input_path(round_no)
        with AtomicTextWriter(path) as out:
            for line in lines:
                out.write_line(json.dumps(line, ensure_ascii=False))
        return path


def batch_jobs(settings: Settings) -> OpenAIBatches | VLLMRunBatch:
    """The batch backend the settings name (``batch.backend``)."""
    bs = settings.batch
    if bs.backend == "vllm":
        return VLLMRunBatch(settings.llm_model, bs.vllm_command)
    if not settings.llm_base_url:
        from parallelner.errors import ConfigError

        raise ConfigError(
            "--batch with the OpenAI Batch API needs --llm-base-url (a server with the "
            "Files and Batches endpoints); set batch.backend: vllm for `vllm run-batch`"
        )
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return OpenAIBatches(settings.llm_base_url.split(",")[0], key, bs.completion_window)


def wait_for(
    jobs: OpenAIBatches | VLLMRunBatch,
    job: str,
    poll_s: float,
    on_status: Callable[[JobStatus, float], None] | None = None,
) -> JobStatus:
    """Poll ``job`` every ``poll_s`` seconds until it is done."""
    t0 = time.monotonic()
    while True:
        st = jobs.status(job)
        if on_status is not None:
            on_status(st, time.monotonic() - t0)
        if st.done:
            return st
        time.sleep(poll_s)


@dataclass
class RoundResult:
    """One round: the shards it finished, the questions it sent, the job's outcome."""

    round: int
    shards_finished: int
    shards_waiting: int
    questions: int = 0
    job: str | None = None
    status: str | None = None
    answered: int = 0
    failed: int = 0
    seconds: float = 0.0
    online: bool = False  # the tail asked online (``batch.online_below``), no job
    # the replies this round's replay used for the first time (the earlier ones come from
    # the reply cache): summed over the rounds, the run's requests and tokens
    usage: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def journal_for(settings: Settings, run_id: str) -> BatchJournal:
    return BatchJournal(Path(settings.home) / "batches" / run_id)


def load_answers(settings: Settings, journal: BatchJournal) -> BatchAnswers:
    """Every reply the run's finished jobs gave (their saved outputs)."""
    answers = BatchAnswers(settings.batch.max_rounds)
    for r, info in sorted(journal.rounds().items()):
        if "read" in info:
            answers.add_output(journal.output_path(r), journal.input_path(r))
    return answers


def finish_job(
    settings: Settings,
    journal: BatchJournal,
    jobs: OpenAIBatches | VLLMRunBatch,
    round_no: int,
    on_status: Callable[[JobStatus, float], None] | None = None,
) -> tuple[str, JobStatus, int]:
    """Submit round ``round_no``'s recorded input if no job is recorded for it (submitting
    is idempotent on the round's key), wait for the job, save its output, record it read.
    Returns the job id, its final status and the output lines saved."""
    info = journal.rounds()[round_no]
    job = info.get("job")
    if job is None:
        job = jobs.submit(journal.input_path(round_no), info["key"])
        journal.record(event="submitted", round=round_no, job=job)
    status = wait_for(jobs, job, settings.batch.poll_s, on_status)
    n = jobs.fetch(job, journal.output_path(round_no))
    journal.record(event="read", round=round_no, status=status.status, lines=n)
    return job, status, n


def unread_round(journal: BatchJournal) -> int | None:
    """The round a killed run submitted (or was submitting) and never read, if any."""
    rounds = journal.rounds()
    if not rounds:
        return None
    last = max(rounds)
    return None if "read" in rounds[last] else last


def run_round(
    plan: Any,
    settings: Settings,
    round_no: int,
    jobs: OpenAIBatches | VLLMRunBatch,
    on_status: Callable[[JobStatus, float], None] | None = None,
) -> tuple[RoundResult, list[Any] | None]:
    """Replay every shard with the answers so far; send what they still need as round
    ``round_no``'s job and wait for it.

    Each shard goes through ``pipeline.process_shard`` with a client in batch mode: a
    shard with an instance still waiting raises ``Pending`` and writes nothing; a shard
    whose instances all ended is written as an online run writes it. Returns the round,
    and the shard results when every shard is finished (then no job was sent).
    """
    from parallelner import pipeline
    from parallelner.llm.runtime import LLMRuntime

    t0 = time.monotonic()
    journal = journal_for(settings, plan.run_id)
    answers = load_answers(settings, journal)
    results: list[Any] = []
    waiting = 0
    runtime = LLMRuntime(settings, batch=answers)
    try:
        with muted():  # replayed instances were counted when they first ended
            for shard in plan.shards:
                try:
                    results.append(pipeline.process_shard(shard, plan, settings, runtime))
                except Pending:
                    waiting += 1
        used = runtime.client.usage.as_dict()
    finally:
        runtime.close()
    lines = answers.take_needed()
    notify("batch_questions", len(lines))
    rr = RoundResult(round_no, len(results), waiting, len(lines))
    rr.usage = {k: int(used.get(k, 0)) for k in ("requests", "prompt_tokens", "completion_tokens")}
    if not waiting:
        rr.seconds = time.monotonic() - t0
        return rr, results
    if not lines:  # a shard waits on nothing: a programming error, never a user's
        raise RuntimeError(f"batch round {round_no}: {waiting} shards wait, no question")
    if len(lines) < settings.batch.online_below and settings.llm_base_url:
        # the tail online: every shard once more, asking the server what is left (the
        # reply cache has every batch reply, so only the tail's questions go out)
        rr.online = True
        runtime = LLMRuntime(settings)
        try:
            with muted():
                results = [pipeline.process_shard(s, plan, settings, runtime) for s in plan.shards]
            used = runtime.client.usage.as_dict()
        finally:
            runtime.close()
        rr.usage = {
            k: int(used.get(k, 0)) for k in ("requests", "prompt_tokens", "completion_tokens")
        }
        rr.seconds = time.monotonic() - t0
        return rr, results
    journal.write_input(round_no, lines)
    journal.record(event="submitting", round=round_no, key=f"{plan.run_id}:r{round_no}",
                   questions=len(lines))  # fmt: skip
    rr.job, status, _ = finish_job(settings, journal, jobs, round_no, on_status)
    rr.status = status.status
    rr.answered, rr.failed = status.completed, status.failed
    rr.seconds = time.monotonic() - t0
    return rr, None


def run_batch(
    plan: Any,
    settings: Settings,
    jobs: OpenAIBatches | VLLMRunBatch | None = None,
    on_round: Callable[[RoundResult], None] | None = None,
    on_status: Callable[[JobStatus, float], None] | None = None,
) -> tuple[list[Any], list[RoundResult]]:
    """Rounds until every shard is finished: the shard results (for ``finalize_run``)
    and the rounds run now. A job a killed run left is waited for and read first."""
    jobs = jobs or batch_jobs(settings)
    journal = journal_for(settings, plan.run_id)
    left = unread_round(journal)
    if left is not None:
        finish_job(settings, journal, jobs, left, on_status)
    rounds: list[RoundResult] = []
    while True:
        round_no = max(journal.rounds(), default=0) + 1
        rr, results = run_round(plan, settings, round_no, jobs, on_status)
        rounds.append(rr)
        if on_round is not None:
            on_round(rr)
        if results is not None:
            return results, rounds
