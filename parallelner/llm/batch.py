"""Offline batch path: write requests as OpenAI batch JSONL, read the results back.

The same request bodies as the live path (``translate.build_messages`` +
``client.json_chat_body``) go into a file that ``vllm run-batch`` or the OpenAI Batch
API executes; each line's ``custom_id`` is the instance id. Reading the output back
yields, per instance, the reply text or the error, which ``translate.parse_reply``
judges exactly as a live reply (no re-asks offline: a bad reply is a failure with its
reason, and the instance can be re-run live).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from parallelner.errors import InputError
from parallelner.llm.client import json_chat_body
from parallelner.reasons import Reason
from parallelner.records import Instance
from parallelner.settings import Settings

__all__ = ["BatchResult", "batch_line", "write_translate_batch", "read_batch_results"]

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


def write_translate_batch(
    instances: Iterable[Instance], tgt_lang: str, settings: Settings, path: Path
) -> int:
    """Write the translation requests for ``instances`` as batch JSONL; return the count."""
    from parallelner.translate import TranslationReply, build_messages

    ts = settings.translate
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for inst in instances:
            body = json_chat_body(
                build_messages(inst, tgt_lang, ts.prompt_version),
                TranslationReply,
                model=settings.llm_model,
                max_tokens=ts.max_tokens,
                temperature=ts.temperature,
            )
            fh.write(json.dumps(batch_line(inst.id, body), ensure_ascii=False) + "\n")
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
