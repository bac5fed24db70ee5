"""``parallelner translate``: stage 1 alone, file to file (and through batch files).

The edge of ``parallelner.stages.translate``: ``run`` reads instances, asks through one
``LLMClient`` and writes JSONL atomically; ``write_translate_batch`` / ``results_from_batch``
write the questions to a batch file (``vllm run-batch``, the OpenAI Batch API) and judge
its output.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from parallelner.llm.batch import write_batch
from parallelner.llm.client import LLMClient
from parallelner.reasons import Reason
from parallelner.records import Instance
from parallelner.settings import Settings
from parallelner.stages.translate import (
    Translation,
    TranslationFailure,
    parse_reply,
    translate_question,
    translate_stream,
)
from parallelner.writers.atomic import AtomicTextWriter

__all__ = ["run", "result_to_json", "write_translate_batch", "results_from_batch"]


def write_translate_batch(
    instances: Iterable[Instance], tgt_lang: str, settings: Settings, path: Path
) -> int:
    """Write the translation questions for ``instances`` as a batch file; return the count.

    ``vllm run-batch`` or the OpenAI Batch API executes it; ``results_from_batch``
    judges its output.
    """
    ts = settings.translate
    return write_batch(
        ((inst.id, translate_question(inst, tgt_lang, ts)) for inst in instances),
        path,
        model=settings.llm_model,
    )


def results_from_batch(
    instances: Iterable[Instance], batch: dict[str, Any], tgt_lang: str, settings: Settings
) -> Iterator[tuple[Instance, Translation | TranslationFailure]]:
    """Judge batch output (``llm.batch.read_batch_results``) for each instance, in order.

    An instance with no line in the batch output, or an errored line, is a failure
    (``llm_http_error``) — never skipped.
    """
    pv = settings.translate.prompt_version
    for inst in instances:
        res = batch.get(inst.id)
        if res is None or res.content is None:
            detail = "no result in the batch output" if res is None else res.error
            yield (
                inst,
                TranslationFailure(
                    instance_id=inst.id,
                    tgt_lang=tgt_lang,
                    reason=Reason.LLM_HTTP_ERROR,
                    detail=detail or "batch request failed",
                    raw_reply=None,
                    model=settings.llm_model,
                    prompt_version=pv,
                ),
            )
            continue
        yield (
            inst,
            parse_reply(
                inst,
                tgt_lang,
                res.content,
                res.finish_reason,
                model=settings.llm_model,
                prompt_version=pv,
            ),
        )


def result_to_json(inst: Instance, result: Translation | TranslationFailure) -> dict[str, Any]:
    """One output line: the projection-task shape (id, source, target) plus provenance."""
    ok = isinstance(result, Translation)
    return {
        "id": inst.id,
        "source": inst.model_dump(mode="json"),
        "target": {"lang": result.tgt_lang, "text": result.text} if ok else None,
        "mention_translations": [m.model_dump() for m in result.mentions] if ok else [],
        "status": "translated" if ok else "failed",
        "reasons": [r.value for r in result.reasons] if ok else [result.reason.value],
        "detail": None if ok else result.detail,
        "model": result.model,
        "prompt_version": result.prompt_version,
        "raw_reply": result.raw_reply,
    }


async def _run_async(
    instances: list[Instance], out_path: Path, tgt_lang: str, settings: Settings
) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    async with LLMClient.from_settings(settings, wait_out_outages=True) as client:
        with AtomicTextWriter(out_path) as out:
            async for inst, result in translate_stream(client, instances, tgt_lang, settings):
                row = result_to_json(inst, result)
                out.write_line(json.dumps(row, ensure_ascii=False))
                out.flush()
                counts[row["status"]] += 1
                for r in row["reasons"]:
                    counts[f"reason:{r}"] += 1
        return {
            "instances": len(instances),
            "translated": counts["translated"],
            "failed": counts["failed"],
            "reasons": {k[7:]: v for k, v in sorted(counts.items()) if k.startswith("reason:")},
            **client.describe(),
            "usage": client.usage.as_dict(),
            "output": str(out_path),
        }


def run(
    instances: Iterable[Instance], out_path: Path, tgt_lang: str, settings: Settings
) -> dict[str, Any]:
    """Translate ``instances`` into ``tgt_lang``, write JSONL to ``out_path``; return a summary.

    Each output line has the projection-task shape (``id``, ``source``, ``target``) plus
    ``mention_translations``, ``status`` (translated/failed), ``reasons``, ``model``,
    ``prompt_version`` and ``raw_reply``. Lines are written as results arrive (completion
    order); the file appears under its final name only when the run is complete.
    """
    return asyncio.run(_run_async(list(instances), Path(out_path), tgt_lang, settings))
