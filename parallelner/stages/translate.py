"""Stage 1, ``translate``: an instance and its entity mentions, in one LLM call.

Three layers (house style): ``translate_question`` / ``check_reply`` / ``parse_reply``
are pure functions for one instance; ``translate_instance`` / ``translate_stream`` ask an
LLM (streaming, many requests in flight); ``Translate`` is the stage in the chain. The
file edge (``parallelner translate``, batch files) is ``parallelner.jobs.translate``.

Wire format of a reply (validated with pydantic, always)::

    {"translation": str, "entities": [{"id": int, "source": str, "target": str}]}

where ``id`` is the entity's position in ``Instance.entities`` (sorted by start offset).
Every instance ends as exactly one ``Translation`` or one ``TranslationFailure`` (with a
Reason and the raw reply). A configured ``llm_fallback_model`` gets a second go at the
instances that failed with the first model.

A *fresh* translation (the repair ladder's ``fresh`` and ``fallback`` rungs) asks with
``translate-retry.v1``: the same request plus the translation that was judged wrong and
what was wrong with it, so it is a new question (a new reply-cache key), never the reply
already judged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict

from parallelner.languages import lang_name, looks_like, prompt_names, script_of
from parallelner.llm.ask import LLM, Question, chat_messages
from parallelner.llm.client import judge_reply
from parallelner.llm.requests import EntityRef, TranslateRequest, payload
from parallelner.reasons import Reason, Status
from parallelner.records import Instance, MentionTranslation, ParallelRecord
from parallelner.settings import Settings, TranslateSettings
from parallelner.stages.contract import Context, Stage

__all__ = [
    "TranslationReply",
    "Translation",
    "TranslationFailure",
    "RETRY_PROMPT",
    "build_messages",
    "check_reply",
    "parse_reply",
    "translate_question",
    "translate_instance",
    "translate_stream",
    "Translate",
]

RETRY_PROMPT = "translate-retry.v1"


class TranslationReply(BaseModel):
    """What the LLM must answer for one instance (validated on our side, always)."""

    model_config = ConfigDict(extra="forbid")

    translation: str
    entities: list[MentionTranslation]


class Translation(BaseModel):
    """A usable translation of one instance, with its provenance and the raw reply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: str
    tgt_lang: str
    text: str
    mentions: tuple[MentionTranslation, ...]
    model: str
    prompt_version: str
    raw_reply: str
    reasons: tuple[Reason, ...] = ()  # informational, e.g. ESCALATED


class TranslationFailure(BaseModel):
    """An instance that could not be translated: why, and the last raw reply."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    instance_id: str
    tgt_lang: str
    reason: Reason
    detail: str
    raw_reply: str | None
    model: str
    prompt_version: str


# -- the questions (prompts are versioned files in parallelner/prompts) ----------------


def translate_question(
    inst: Instance,
    tgt_lang: str,
    ts: TranslateSettings,
    *,
    attempt: int = 1,
    rejected: str | None = None,
    problems: tuple[str, ...] = (),
) -> Question[TranslationReply]:
    """The question that translates ``inst`` and its mentions into ``tgt_lang``.

    ``attempt`` 2 and up: a fresh translation after ``rejected`` was judged wrong for
    ``problems`` (reason codes): prompt ``translate-retry.v1``, a question of its own.
    """
    retry = attempt > 1
    req = TranslateRequest(
        source_language=inst.lang,
        target_language=tgt_lang,
        sentence=inst.text,
        entities=[EntityRef(id=i, text=e.text, type=e.label) for i, e in enumerate(inst.entities)],
        attempt=attempt if retry else None,
        rejected_translation=(rejected or "") if retry else None,
        problems=list(problems) if retry else None,
    )
    return Question(
        prompt=RETRY_PROMPT if retry else ts.prompt_version,
        reply_model=TranslationReply,
        values={**prompt_names(inst.lang, tgt_lang), "payload": payload(req)},
        data=req,
        check=lambda r: check_reply(inst, tgt_lang, r),
        max_tokens=ts.max_tokens,
        temperature=ts.temperature,
        max_reasks=ts.max_reasks,
    )


def build_messages(
    inst: Instance, tgt_lang: str, prompt_version: str = "translate.v1"
) -> list[dict[str, str]]:
    """Chat messages asking to translate ``inst`` and its mentions into ``tgt_lang``."""
    ts = TranslateSettings(prompt_version=prompt_version)
    return chat_messages(translate_question(inst, tgt_lang, ts))


def check_reply(
    inst: Instance, tgt_lang: str, reply: TranslationReply
) -> tuple[Reason, str] | None:
    """Domain checks on a parsed reply: empty, missing entity ids, wrong script."""
    if not reply.translation.strip():
        return Reason.REPLY_EMPTY, "the translation is empty"
    targets = {m.id: m.target for m in reply.entities}
    missing = [i for i in range(len(inst.entities)) if not targets.get(i, "").strip()]
    if missing:
        return (
            Reason.REPLY_MISSING_ENTITIES,
            f"entity ids {missing} are missing or have an empty target",
        )
    if script_of(inst.lang) != script_of(tgt_lang) and not looks_like(reply.translation, tgt_lang):
        return (
            Reason.REPLY_WRONG_LANGUAGE,
            f"the translation is not written in {lang_name(tgt_lang)}",
        )
    return None


def _extra_entities(inst: Instance, reply: TranslationReply) -> tuple[Reason, ...]:
    """REPLY_EXTRA_ENTITIES when the reply lists an entity id the source does not have
    (or one id twice): the LLM saw a name the source does not hold."""
    ids = [m.id for m in reply.entities]
    if len(ids) != len(set(ids)) or any(not 0 <= i < len(inst.entities) for i in ids):
        return (Reason.REPLY_EXTRA_ENTITIES,)
    return ()


def _mentions(inst: Instance, reply: TranslationReply) -> tuple[MentionTranslation, ...]:
    """One MentionTranslation per source entity, in id order (first answer per id wins)."""
    by_id: dict[int, MentionTranslation] = {}
    for m in reply.entities:
        if 0 <= m.id < len(inst.entities) and m.id not in by_id:
            by_id[m.id] = MentionTranslation(
                id=m.id, source=inst.entities[m.id].text, target=m.target.strip()
            )
    return tuple(by_id[i] for i in sorted(by_id))


def parse_reply(
    inst: Instance,
    tgt_lang: str,
    content: str,
    finish_reason: str | None,
    *,
    model: str,
    prompt_version: str,
) -> Translation | TranslationFailure:
    """Judge one raw reply for ``inst`` (used by the batch path and by tests)."""
    value, reason, detail = judge_reply(
        content, finish_reason, TranslationReply, lambda r: check_reply(inst, tgt_lang, r)
    )
    if reason is not None:
        return TranslationFailure(
            instance_id=inst.id,
            tgt_lang=tgt_lang,
            reason=reason,
            detail=detail,
            raw_reply=content,
            model=model,
            prompt_version=prompt_version,
        )
    return Translation(
        instance_id=inst.id,
        tgt_lang=tgt_lang,
        text=value.translation.strip(),
        mentions=_mentions(inst, value),
        model=model,
        prompt_version=prompt_version,
        raw_reply=content,
        reasons=_extra_entities(inst, value),
    )


# -- one instance through the client ----------------------------------------------------


async def _translate_with(
    client: LLM, inst: Instance, tgt_lang: str, ts: TranslateSettings, model: str, **retry: Any
) -> Translation | TranslationFailure:
    outcome = await client.ask(translate_question(inst, tgt_lang, ts, **retry), model=model)
    version = outcome.prompt_version or ts.prompt_version
    if not outcome.ok:
        return TranslationFailure(
            instance_id=inst.id,
            tgt_lang=tgt_lang,
            reason=outcome.reason,
            detail=outcome.detail,
            raw_reply=outcome.raw,
            model=model,
            prompt_version=version,
        )
    return Translation(
        instance_id=inst.id,
        tgt_lang=tgt_lang,
        text=outcome.value.translation.strip(),
        mentions=_mentions(inst, outcome.value),
        model=model,
        prompt_version=version,
        raw_reply=outcome.raw or "",
        reasons=_extra_entities(inst, outcome.value),
    )


async def translate_instance(
    client: LLM,
    inst: Instance,
    tgt_lang: str,
    settings: Settings,
    *,
    model: str | None = None,
    **retry: Any,
) -> Translation | TranslationFailure:
    """Translate one instance and its mentions; escalate to the fallback model on failure.

    ``model``: ask this model only (the ladder's fallback rung); ``retry``: the
    ``attempt`` / ``rejected`` / ``problems`` of a fresh translation. Never raises for a
    per-instance problem: the result is a Translation or a TranslationFailure with a
    Reason and the raw reply.
    """
    ts = settings.translate
    models = [model or client.model]
    fallback = settings.llm_fallback_model
    if model is None and fallback and fallback != client.model:
        models.append(fallback)
    result: Translation | TranslationFailure | None = None
    for n, model in enumerate(models):
        result = await _translate_with(client, inst, tgt_lang, ts, model, **retry)
        if isinstance(result, Translation):
            if n > 0:
                result = result.model_copy(update={"reasons": (*result.reasons, Reason.ESCALATED)})
            return result
    assert result is not None
    return result


async def _aiter(items: Iterable[Instance] | AsyncIterable[Instance]) -> AsyncIterator[Instance]:
    if isinstance(items, AsyncIterable):
        async for x in items:
            yield x
    else:
        for x in items:
            yield x


async def translate_stream(
    client: LLM,
    instances: Iterable[Instance] | AsyncIterable[Instance],
    tgt_lang: str,
    settings: Settings,
) -> AsyncIterator[tuple[Instance, Translation | TranslationFailure]]:
    """Translate many instances concurrently; yield ``(instance, result)`` as each finishes.

    Requests in flight are bounded by the client's semaphore (shared by every caller);
    at most twice that many instances are pulled from ``instances`` ahead, so a huge
    iterator is never materialised. Results come in completion order.
    """
    window = max(2, 2 * client.max_in_flight)
    source = _aiter(instances).__aiter__()
    # finished results arrive on a queue: O(1) per instance, where asyncio.wait over the
    # pending set would cost O(window) per completion
    finished: asyncio.Queue = asyncio.Queue()
    tasks: set[asyncio.Task] = set()
    running = 0
    exhausted = False

    async def one(inst: Instance) -> None:
        try:
            res = await translate_instance(client, inst, tgt_lang, settings)
        except Exception as exc:  # a bug, not a per-instance failure: re-raised below
            finished.put_nowait((inst, None, exc))
        else:
            finished.put_nowait((inst, res, None))

    async def fill() -> None:
        nonlocal exhausted, running
        while not exhausted and running < window:
            try:
                inst = await source.__anext__()
            except StopAsyncIteration:
                exhausted = True
                return
            task = asyncio.ensure_future(one(inst))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            running += 1

    try:
        await fill()
        while running:
            inst, res, exc = await finished.get()
            running -= 1
            if exc is not None:
                raise exc
            await fill()
            yield inst, res
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


# -- the stage ----------------------------------------------------------------------------


class Translate(Stage):
    """Stage 1: the sentence and its mentions in the target language (one question)."""

    name = "translate"
    reads = frozenset({"src_lang", "src_text", "src_entities", "tgt_lang", "instance_id"})
    writes = frozenset(
        {"tgt_text", "mention_translations", "model", "prompt_version", "raw_reply",
         "status", "reasons"}
    )  # fmt: skip
    adds = frozenset(
        {Reason.LLM_UNREACHABLE, Reason.LLM_HTTP_ERROR, Reason.REPLY_INVALID_JSON,
         Reason.REPLY_MISSING_ENTITIES, Reason.REPLY_EMPTY, Reason.REPLY_TRUNCATED,
         Reason.REPLY_WRONG_LANGUAGE, Reason.ESCALATED, Reason.REPLY_EXTRA_ENTITIES}
    )  # fmt: skip
    settings_section = "translate"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        inst = draft.source_instance()
        tr = await translate_instance(
            ctx.llm, inst, draft.tgt_lang, ctx.settings, model=ctx.model,
            attempt=ctx.attempt, rejected=ctx.rejected, problems=ctx.problems,
        )  # fmt: skip
        return apply_translation(draft, tr)


def apply_translation(
    draft: ParallelRecord, tr: Translation | TranslationFailure
) -> ParallelRecord:
    """``draft`` with the outcome of stage 1: its text and mentions, or ``failed``."""
    if isinstance(tr, TranslationFailure):
        return draft.model_copy(
            update={
                "status": Status.FAILED,
                "reasons": (*draft.reasons, tr.reason),
                "raw_reply": tr.raw_reply,
                "model": tr.model,
                "prompt_version": tr.prompt_version,
            }
        )
    return draft.model_copy(
        update={
            "tgt_text": tr.text,
            "mention_translations": tr.mentions,
            "model": tr.model,
            "prompt_version": tr.prompt_version,
            "reasons": tuple(dict.fromkeys((*draft.reasons, *tr.reasons))),
        }
    )
