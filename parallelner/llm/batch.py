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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallelner.errors import InputError
from parallelner.llm.ask import Question, chat_body
from parallelner.reasons import Reason
from parallelner.writers.atomic import AtomicTextWriter

__all__ = ["BatchResult", "batch_line", "write_batch", "read_batch_results"]

CHAT_URL = "/v1/chat/completions"


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
