"""The chain: every instance through the stage list, then up the repair ladder.

    translate -> project (+ repair ladder for unplaced mentions) -> backtranslate -> assess
    -> while doubts remain and the budget allows: a rung of ``stages.ladder``, then
       project -> backtranslate -> assess again from scratch

One loop runs any list of stages (``contract.run_stages``); each stage's work is checked
against its declarations (``contract.run_stage``). Every instance comes back as exactly one
ParallelRecord, in input order: a stage that gives up returns the draft ``failed`` with
its reason (stage 1's raw reply kept), never a missing row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from parallelner.errors import Pending
from parallelner.reasons import Status
from parallelner.records import Instance, ParallelRecord
from parallelner.settings import Settings
from parallelner.stages.assess import Assess
from parallelner.stages.backtranslate import BackTranslate
from parallelner.stages.contract import Context, Stage, run_stages
from parallelner.stages.ladder import CountingLLM, LadderStats, climb
from parallelner.stages.project import Project
from parallelner.stages.translate import Translate
from parallelner.version import PIPELINE_VERSION

if TYPE_CHECKING:
    from parallelner.llm.ask import LLM

__all__ = [
    "STAGES",
    "record_id_for",
    "start_draft",
    "synthesize_one",
    "synthesize_instances",
]

STAGES: tuple[Stage, ...] = (Translate(), Project(), BackTranslate(), Assess())


def record_id_for(instance_id: str, tgt_lang: str, config_hash: str) -> str:
    """Deterministic record id: instance, direction and the stage configuration.

    A re-run with the same configuration gives the same ids (and commits nothing new); a
    run with another model or prompt adds its own records beside the earlier ones, so
    no reviewed row is ever overwritten by a re-synthesis.
    """
    return f"{instance_id}>{tgt_lang}#{config_hash[:8]}"


def start_draft(
    inst: Instance,
    tgt_lang: str,
    run_id: str,
    config_hash: str,
    settings: Settings,
    model: str,
    signature: str | None = None,
) -> ParallelRecord:
    """The draft before any stage: the source instance, the direction, the provenance."""
    return ParallelRecord(
        record_id=record_id_for(inst.id, tgt_lang, config_hash),
        instance_id=inst.id,
        run_id=run_id,
        source_dataset=inst.source_dataset,
        src_lang=inst.lang,
        tgt_lang=tgt_lang,
        src_text=inst.text,
        src_entities=inst.entities,
        pipeline_version=PIPELINE_VERSION,
        prompt_version=settings.translate.prompt_version,
        model=model,
        config_hash=config_hash,
        signature=signature,
        status=Status.REVIEW,  # provisional: the assess stage decides
        reason_stages={},
    )


async def synthesize_one(
    llm: LLM,
    inst: Instance,
    tgt_lang: str,
    run_id: str,
    config_hash: str,
    settings: Settings,
    signature: str | None = None,
    stats: LadderStats | None = None,
) -> ParallelRecord:
    """Every stage for one instance, then the repair ladder while doubts remain."""
    # the ladder's budget counts the first pass too
    ctx = Context(llm=CountingLLM(llm), settings=settings)
    draft = start_draft(inst, tgt_lang, run_id, config_hash, settings, llm.model, signature)
    draft = await run_stages(draft, STAGES, ctx)
    translate, *downstream = STAGES
    return await climb(draft, translate, tuple(downstream), ctx, stats)  # type: ignore[arg-type]


async def synthesize_instances(
    client: LLM,
    instances: Iterable[Instance],
    tgt_lang: str,
    run_id: str,
    config_hash: str,
    settings: Settings,
    on_record: Callable[[ParallelRecord], None] | None = None,
    signature: str | None = None,
    stats: LadderStats | None = None,
) -> list[ParallelRecord]:
    """The chain for every instance; one record per instance, in input order.

    Instances overlap (their requests share the client's in-flight bound); at most four
    times that bound are pulled ahead, so a huge iterable is never held twice over.
    Duplicates are marked per run by the caller (``run.finalize_run``), since they cross
    shard boundaries. In a batch round (``parallelner.batchrun``) an instance that asks
    what no batch answered yet stops; when every instance has ended or stopped,
    ``Pending`` is raised and nothing is returned.
    """
    instances = list(instances)
    out: list[ParallelRecord | None] = [None] * len(instances)
    window = asyncio.Semaphore(max(4, 4 * client.max_in_flight))
    waiting: list[Pending] = []

    async def one(i: int, inst: Instance) -> None:
        async with window:
            try:
                rec = await synthesize_one(
                    client, inst, tgt_lang, run_id, config_hash, settings, signature, stats
                )
            except Pending as exc:  # a batch round: this instance waits for the next one
                waiting.append(exc)
                return
        out[i] = rec
        if on_record is not None:
            on_record(rec)

    await asyncio.gather(*(one(i, inst) for i, inst in enumerate(instances)))
    if waiting:  # every other instance went as far as it could: the round's questions
        raise Pending(f"{len(waiting)} of {len(instances)} instances wait for a batch")
    missing = [instances[i].id for i, r in enumerate(out) if r is None]
    if missing:  # a programming error, never a user's: fail loudly rather than lose rows
        raise RuntimeError(f"no record for instances {missing[:5]}")
    return out  # type: ignore[return-value]
