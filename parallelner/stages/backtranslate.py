"""Stage 3a, ``backtranslate``: the target sentence read back in the source language,
and what each projected target mention says there (the entity read-backs).

One request: the sentence, and the projected spans listed in the order they occur (so a
repeated string is unambiguous). With ``quality.verify_entities`` off, the plain
``backtranslate.v1`` question. No answer: ``no_backtranslation`` on the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

from parallelner.languages import lang_name, looks_like, prompt_names, script_of
from parallelner.llm.ask import LLM, Question
from parallelner.llm.requests import BackTranslateRequest, MentionRef, payload
from parallelner.reasons import Reason
from parallelner.records import ParallelRecord
from parallelner.settings import Settings
from parallelner.stages.contract import Context, Stage

__all__ = [
    "BACK_PROMPT_VERSION",
    "ENTITY_BACK_PROMPT_VERSION",
    "BackTranslationReply",
    "EntityBackTranslationReply",
    "BackTranslation",
    "back_translate",
    "back_translate_entities",
    "BackTranslate",
]

BACK_PROMPT_VERSION = "backtranslate.v1"
ENTITY_BACK_PROMPT_VERSION = "backtranslate-entities.v1"

M = TypeVar("M", bound=BaseModel)


class BackTranslationReply(BaseModel):
    """What the LLM must answer for a back-translation."""

    model_config = ConfigDict(extra="forbid")

    translation: str


class MentionBackTranslation(BaseModel):
    """One target mention, read back in the source language."""

    model_config = ConfigDict(extra="forbid")

    id: int
    translation: str


class EntityBackTranslationReply(BaseModel):
    """A back-translation that also reads back each listed target mention."""

    model_config = ConfigDict(extra="forbid")

    translation: str
    mentions: list[MentionBackTranslation]


class BackTranslation(BaseModel):
    """A back-translated sentence and, per target mention asked about, what it says in
    the source language (None where the LLM gave nothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    mentions: tuple[str | None, ...] = ()


def _back_question(
    version: str,
    reply_model: type[M],
    text: str,
    src_lang: str,
    tgt_lang: str,
    settings: Settings,
    mentions: Sequence[str] | None = None,
) -> Question[M]:
    """A back-translation question (with ``mentions`` to read back, when given)."""
    ts = settings.translate
    req = BackTranslateRequest(
        source_language=src_lang,
        target_language=tgt_lang,
        sentence=text,
        mentions=None
        if mentions is None
        else [MentionRef(id=i, text=m) for i, m in enumerate(mentions)],
    )

    def check(r: Any) -> tuple[Reason, str] | None:
        if not r.translation.strip():
            return Reason.REPLY_EMPTY, "the translation is empty"
        if script_of(src_lang) != script_of(tgt_lang) and not looks_like(r.translation, tgt_lang):
            return Reason.REPLY_WRONG_LANGUAGE, f"not written in {lang_name(tgt_lang)}"
        return None

    return Question(
        prompt=version,
        reply_model=reply_model,
        values={**prompt_names(src_lang, tgt_lang), "payload": payload(req)},
        data=req,
        check=check,
        max_tokens=ts.max_tokens,
        temperature=ts.temperature,
        max_reasks=ts.max_reasks,
    )


async def back_translate(
    client: LLM,
    text: str,
    src_lang: str,
    tgt_lang: str,
    settings: Settings,
    *,
    model: str | None = None,
) -> str | None:
    """Translate plain ``text`` written in ``src_lang`` into ``tgt_lang``; None on failure.

    For the quality stage: ``back_translate(client, rec.tgt_text, rec.tgt_lang,
    rec.src_lang, settings)``. Same client, cache and usage counters as translation.
    """
    outcome = await client.ask(
        _back_question(
            BACK_PROMPT_VERSION, BackTranslationReply, text, src_lang, tgt_lang, settings
        ),
        model=model,
    )
    return outcome.value.translation.strip() if outcome.ok else None


async def back_translate_entities(
    client: LLM,
    text: str,
    mentions: Sequence[str],
    src_lang: str,
    tgt_lang: str,
    settings: Settings,
    *,
    model: str | None = None,
) -> BackTranslation | None:
    """Back-translate ``text`` (written in ``src_lang``) into ``tgt_lang`` and read back
    each of its ``mentions`` (exact substrings of ``text``) in the same question.

    For stage 3's entity round trip: ``back_translate_entities(client, rec.tgt_text,
    [e.text for e in rec.tgt_entities], rec.tgt_lang, rec.src_lang, settings)``. A chat
    endpoint answers in one request (no more requests than a plain back-translation).
    None when no usable back-translation came back.
    """
    # a read-back left out is not re-asked (that would cost a request and, after the
    # re-asks, the sentence too): the entity is "unverified" and the pair goes to review
    outcome = await client.ask(
        _back_question(
            ENTITY_BACK_PROMPT_VERSION,
            EntityBackTranslationReply,
            text,
            src_lang,
            tgt_lang,
            settings,
            mentions,
        ),
        model=model,
    )
    if not outcome.ok:
        return None
    by_id: dict[int, str] = {}
    for m in outcome.value.mentions:
        if 0 <= m.id < len(mentions) and m.id not in by_id and m.translation.strip():
            by_id[m.id] = m.translation.strip()
    return BackTranslation(
        text=outcome.value.translation.strip(),
        mentions=tuple(by_id.get(i) for i in range(len(mentions))),
    )


class BackTranslate(Stage):
    """Read the target sentence and every projected mention back in the source language."""

    name = "backtranslate"
    reads = frozenset({"tgt_text", "tgt_entities", "tgt_lang", "src_lang"})
    writes = frozenset({"back_translation", "tgt_entities", "reasons"})
    adds = frozenset({Reason.NO_BACKTRANSLATION})
    settings_section = "translate"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        settings = ctx.settings
        text = draft.tgt_text or ""
        if not ctx.section(self).back_translate or not text.strip():
            return draft
        entities = draft.tgt_entities
        back = None
        if settings.quality.verify_entities:
            order = sorted(range(len(entities)), key=lambda i: (entities[i].start, entities[i].end))
            got = await back_translate_entities(
                ctx.llm, text, [entities[i].text for i in order], draft.tgt_lang,
                draft.src_lang, settings, model=ctx.model,
            )  # fmt: skip
            if got is not None:
                back = got.text
                forms = dict(zip(order, got.mentions, strict=True))
                entities = tuple(
                    e.model_copy(update={"back_translation": forms[i] or ""})
                    for i, e in enumerate(entities)
                )
        else:
            back = await back_translate(
                ctx.llm, text, draft.tgt_lang, draft.src_lang, settings, model=ctx.model
            )
        update: dict[str, Any] = {"back_translation": back, "tgt_entities": entities}
        if back is None:
            update["reasons"] = tuple(dict.fromkeys((*draft.reasons, Reason.NO_BACKTRANSLATION)))
        return draft.model_copy(update=update)
