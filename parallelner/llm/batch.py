"""Offline batch path: write requests as OpenAI batch JSONL, read the results back.

A batch file is a backend that records questions instead of sending them: the same
request body as the live chat path (``llm.ask.chat_body``) goes into a file that
``vllm run-batch`` or the OpenAI Batch API executes; each line's ``custom_id`` names the
question (an instance id). Reading the output back yields, per id, the reply text or the
error, which the stage judges exactly as a live reply (``translate.parse_reply``; no
re-asks offline: a bad reply is a failure with its reason, and it can be re-run live).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from parallelner.errors import InputError
from parallelner.llm.ask import Question, chat_body
from parallelner.reasons import Reason
from parallelner.writers.atomic import AtomicTextWriter

__all__ = [
    "BatchAnswerSource",
    "BatchResult",
    "batch_line",
    "write_batch",
    "read_batch_results",
    "JobStatus",
    "OpenAIBatches",
    "VLLMRunBatch",
]

CHAT_URL = "/v1/chat/completions"


class BatchAnswerSource(Protocol):
    """What an ``LLMClient`` in a batch round asks (``parallelner.batchrun.BatchAnswers``):
    the response body a job gave for a question key, whether the key's line failed too
    often, and ``need`` to put the question into the round's job."""

    failed: Mapping[str, int]

    def answer(self, key: str) -> dict[str, Any] | None: ...

    def gave_up(self, key: str) -> bool: ...

    def need(self, key: str, kind: str, body: dict[str, Any]) -> None: ...


@dataclass(frozen=True)
class BatchResult:
    """One line of a batch output file: the reply, or why there is none."""

    custom_id: str
    content: str | None
    finish_reason: str | None
    error: str | None


def batch_line(custom_id: str, body: dict[str, Any], url: str = CHAT_URL) -> dict[str, Any]:
    """One line of an OpenAI batch input file."""
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def write_batch(questions: Iterable[tuple[str, Question]], path: Path, *, model: str) -> int:
    """Write ``(custom_id, question)`` pairs as batch JSONL (atomically); return the count."""
    n = 0
    with AtomicTextWriter(path) as out:
        for custom_id, question in questions:
            body = chat_body(question, model=model)
            out.write_line(json.dumps(batch_line(custom_id, body), ensure_ascii=False))
            n += 1
    return n


def read_batch_results(path: Path) -> dict[str, BatchResult]:
    """Read a batch output file (OpenAI / ``vllm run-batch`` format) keyed by custom_id."""
    path = Path(path)
    out: dict[str, BatchResult] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(str(path), None, Reason.MALFORMED_LINE, "file not found") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            cid = str(obj["custom_id"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise InputError(
                str(path), n, Reason.MALFORMED_LINE, "not a batch output line (custom_id missing)"
            ) from None
        response = obj.get("response") or {}
        error = obj.get("error")
        status = response.get("status_code", 200 if response else None)
        body = response.get("body") or {}
        choices = body.get("choices") or []
        if error or status != 200 or not choices:
            msg = (error or {}).get("message") if isinstance(error, dict) else error
            out[cid] = BatchResult(cid, None, None, str(msg or f"HTTP {status}"))
            continue
        choice = choices[0]
        content = (choice.get("message") or {}).get("content")
        if content is None:
            content = choice.get("text", "")
        out[cid] = BatchResult(cid, content or "", choice.get("finish_reason"), None)
    return out


# -- batch jobs: the OpenAI Batch API and ``vllm run-batch`` ---------------------------

DONE = frozenset({"completed", "expired", "cancelled", "failed"})


@dataclass(frozen=True)
class JobStatus:
    """Where a batch job stands: ``status`` as the API says it, and its line counts."""

    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0

    @property
    def done(self) -> bool:
        return self.status in DONE


class OpenAIBatches:
    """Batch jobs through the OpenAI Files and Batches API (the openai SDK).

    ``submit`` is idempotent on its ``key``: a batch created earlier with that key in its
    metadata (a run killed between creating it and recording it) is found and returned,
    never created twice.
    """

    name = "openai"

    def __init__(self, base_url: str, api_key: str | None, completion_window: str = "24h"):
        import openai

        self._client = openai.OpenAI(base_url=base_url, api_key=api_key or "none", max_retries=5)
        self.window = completion_window

    def find(self, key: str) -> str | None:
        """The id of a batch created with ``key`` (not one that failed validation)."""
        for b in self._client.batches.list(limit=100):
            if (b.metadata or {}).get("parallelner") == key and b.status != "failed":
                return b.id
        return None

    def submit(self, path: Path, key: str) -> str:
        found = self.find(key)
        if found is not None:
            return found
        with open(path, "rb") as fh:
            upload = self._client.files.create(file=(path.name, fh), purpose="batch")
        batch = self._client.batches.create(
            input_file_id=upload.id,
            endpoint=CHAT_URL,
            completion_window=self.window,  # type: ignore[arg-type]
            metadata={"parallelner": key},
        )
        return batch.id

    def status(self, job: str) -> JobStatus:
        b = self._client.batches.retrieve(job)
        c = b.request_counts
        return JobStatus(b.status, c.total if c else 0, c.completed if c else 0,
                         c.failed if c else 0)  # fmt: skip

    def fetch(self, job: str, into: Path) -> int:
        """Write the job's output and error lines to ``into`` (atomically); their count."""
        b = self._client.batches.retrieve(job)
        n = 0
        with AtomicTextWriter(into) as out:
            for fid in (b.output_file_id, b.error_file_id):
                if not fid:
                    continue
                for line in self._client.files.content(fid).text.splitlines():
                    if line.strip():
                        out.write_line(line)
                        n += 1
        return n


class VLLMRunBatch:
    """Batch jobs as ``vllm run-batch`` processes on local files (one per round).

    The process writes ``<input>.part`` and renames it to ``<input>.out`` when it has
    finished (a shell wrapper), so an output file is whole or absent; a killed run that
    starts again finds the process by its pid file, or its finished output.
    """

    name = "vllm"

    def __init__(self, model: str, command: str = "vllm run-batch"):
        self.model = model
        self.command = command

    @staticmethod
    def _paths(path: Path) -> tuple[Path, Path, Path]:
        return path.with_suffix(".out"), path.with_suffix(".part"), path.with_suffix(".pid")

    def submit(self, path: Path, key: str) -> str:
        import shlex
        import subprocess

        out, part, pid = self._paths(path)
        if out.exists() or self._alive(pid):
            return str(path)
        cmd = (
            f"{self.command} -i {shlex.quote(str(path))} -o {shlex.quote(str(part))} "
            f"--model {shlex.quote(self.model)} && mv {shlex.quote(str(part))} "
            f"{shlex.quote(str(out))}"
        )
        log = open(path.with_suffix(".log"), "ab")  # noqa: SIM115 (the child keeps it)
        proc = subprocess.Popen(
            ["sh", "-c", cmd], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        pid.write_text(str(proc.pid))
        return str(path)

    @staticmethod
    def _alive(pid_file: Path) -> bool:
        import os

        try:
            pid = int(pid_file.read_text())
        except (OSError, ValueError):
            return False
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)  # our child: reap it when it is done
            if waited:
                return False
        except ChildProcessError:  # not ours (a run before this one started it)
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def status(self, job: str) -> JobStatus:
        out, _, pid = self._paths(Path(job))
        if out.exists():
            return JobStatus("completed")
        if self._alive(pid):
            return JobStatus("in_progress")
        return JobStatus("failed")  # ended without an output: every line asked again

    def fetch(self, job: str, into: Path) -> int:
        out, _, _ = self._paths(Path(job))
        if not out.exists():
            with AtomicTextWriter(into):
                return 0
        n = 0
        with AtomicTextWriter(into) as w:
            for line in out.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    w.write_line(line)
                    n += 1
        return n
