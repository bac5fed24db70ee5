"""The stages for each instance, chained: one async function over a batch of instances.

    translate (sentence + mentions, one call)  ->  project spans  ->  repair ladder
    ->  back-translate  ->  automatic quality (accepted / review / rejected)

Every instance comes back as exactly one ParallelRecord, in input order: a translation
failure is a ``failed`` record with its reason and raw reply, never a missing row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from parallelner.align import project_spans
from parallelner.align.repair import repair_projection
from parallelner.llm.ask import LLM
from parallelner.quality import assess_record
from parallelner.reasons import Reason, Status
from parallelner.records import Instance, ParallelRecord
from parallelner.settings import Settings
from parallelner.translate import (
    Translation,
    TranslationFailure,
    back_translate,
    back_translate_entities,
    translate_stream,
)
from parallelner.version import PIPELINE_VERSION

__all__ = ["synthesize_instances", "record_id_for", "build_record"]


def record_id_for(instance_id: str, tgt_lang: str, config_hash: str) -> str:
    """Deterministic record id: instance, direction and the stage configuration.

    A re-run with the same configuration gives the same ids (and commits nothing new); a
    run with another model or prompt adds its own records beside the earlier ones, so
    no reviewed row is ever overwritten by a re-synthesis.
    """
    return f"{instance_id}>{tgt_lang}#{config_hash[:8]}"


def _failed(
    inst: Instance,
    tr: TranslationFailure,
    run_id: str,
    config_hash: str,
    signature: str | None = None,
) -> ParallelRecord:
    return ParallelRecord(
        **_provenance(inst, tr, run_id, config_hash, signature),
        status=Status.FAILED,
        reasons=(tr.reason,),
        raw_reply=tr.raw_reply,
    )


def _provenance(
    inst: Instance,
    tr: Translation | TranslationFailure,
    run_id: str,
    config_hash: str,
    signature: str | None,
) -> dict[str, Any]:
    """The fields every record of ``inst`` carries: identity, source side, provenance."""
    return {
        "record_id": record_id_for(inst.id, tr.tgt_lang, config_hash),
        "instance_id": inst.id,
        "run_id": run_id,
        "source_dataset": inst.source_dataset,
        "src_lang": inst.lang,
        "tgt_lang": tr.tgt_lang,
        "src_text": inst.text,
        "src_entities": inst.entities,
        "pipeline_version": PIPELINE_VERSION,
        "prompt_version": tr.prompt_version,
        "model": tr.model,
        "config_hash": config_hash,
        "signature": signature,
    }


async def build_record(
    client: LLM,
    inst: Instance,
    tr: Translation,
    run_id: str,
    config_hash: str,
    settings: Settings,
    signature: str | None = None,
) -> ParallelRecord:
    """Stages 2 and 3 for one translated instance: project, repair, back-translate, assess."""
    mentions = {m.id: m.target for m in tr.mentions}
    ps = settings.project
    projection = project_spans(inst, tr.text, tr.tgt_lang, mentions, threshold=ps.fuzzy_threshold)
    text = tr.text
    steps: tuple[str, ...] = ()
    reasons: list[Reason] = list(tr.reasons)
    if projection.unprojected and ps.repair:
        repaired = await repair_projection(
            client, inst, text, tr.tgt_lang, mentions, projection,
            threshold=ps.fuzzy_threshold, fallback_model=settings.llm_fallback_model,
            allow_rewrite=True,
        )  # fmt: skip
        projection, text, steps = repaired.projection, repaired.tgt_text, repaired.steps
        if repaired.needs_review:
            reasons.append(Reason.REPAIR_UNFINISHED)
    back = None
    entities = projection.entities
    if settings.translate.back_translate and text.strip():
        if settings.quality.verify_entities:
            # one request: the sentence, and what each projected span reads as (the
            # spans listed in the order they occur, so a repeated string is unambiguous)
            order = sorted(range(len(entities)), key=lambda i: (entities[i].start, entities[i].end))
            got = await back_translate_entities(
                client, text, [entities[i].text for i in order], tr.tgt_lang, inst.lang, settings
            )
            if got is not None:
                back = got.text
                forms = dict(zip(order, got.mentions, strict=True))
                entities = tuple(
                    e.model_copy(update={"back_translation": forms[i] or ""})
                    for i, e in enumerate(entities)
                )
        else:
            back = await back_translate(client, text, tr.tgt_lang, inst.lang, settings)
        if back is None:
            reasons.append(Reason.NO_BACKTRANSLATION)
    draft = ParallelRecord(
        **_provenance(inst, tr, run_id, config_hash, signature),
        tgt_text=text,
        mention_translations=tr.mentions,
        tgt_entities=entities,
        unprojected=projection.unprojected,
        back_translation=back,
        repair_steps=steps,
        status=Status.REVIEW,  # provisional: the quality stage decides
        reasons=tuple(dict.fromkeys(reasons)),
    )
    return assess_record(draft, settings.quality, seen=set())


async def synthesize_instances(
    client: LLM,
    instances: Iterable[Instance],
    tgt_lang: str,
    run_id: str,
    config_hash: str,
    settings: Settings,
    on_record: Callable[[ParallelRecord], None] | None = None,
    signature: str | None = None,
) -> list[ParallelRecord]:
    """All three stages for ``instances``; one record per instance, in input order.

    Translation, repair and back-translation requests of different instances overlap;
    the client's semaphore bounds what is in flight. Duplicates are marked per run by
    the caller (``run.finalize_run``), since they cross shard boundaries.
    """
    instances = list(instances)
    order = {inst.id: i for i, inst in enumerate(instances)}
    out: list[ParallelRecord | None] = [None] * len(instances)
    tasks: list[asyncio.Task] = []

    async def finish(inst: Instance, tr: Translation) -> None:
        rec = await build_record(client, inst, tr, run_id, config_hash, settings, signature)
        out[order[inst.id]] = rec
        if on_record is not None:
            on_record(rec)

    async for inst, tr in translate_stream(client, instances, tgt_lang, settings):
        if isinstance(tr, TranslationFailure):
            rec = _failed(inst, tr, run_id, config_hash, signature)
            out[order[inst.id]] = rec
            if on_record is not None:
                on_record(rec)
        else:
            tasks.append(asyncio.ensure_future(finish(inst, tr)))
    if tasks:
        await asyncio.gather(*tasks)
    missing = [instances[i].id for i, r in enumerate(out) if r is None]
    if missing:  # a programming error, never a user's: fail loudly rather than lose rows
        raise RuntimeError(f"no record for instances {missing[:5]}")
    return out  # type: ignore[return-value]
