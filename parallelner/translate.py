"""Stage 1: translate an Instance together with its entity mentions, in one LLM call.

Three layers (house style): ``build_messages`` / ``parse_reply`` are pure functions for
one instance; ``translate_instance`` / ``translate_stream`` talk to an ``LLMClient``
(streaming, many requests in flight); ``run`` is the file-to-file edge.

Wire format of a reply (validated with pydantic, always)::

    {"translation": str, "entities": [{"id": int, "source": str, "target": str}]}

where ``id`` is the entity's position in ``Instance.entities`` (sorted by start offset).
Instruction-tuned servers (vLLM, OpenAI) get the chat prompt ``translate.v1`` with
``response_format=json_schema``. The embedded local model is a tiny *base* model that
copies the source when forced into a JSON grammar, so it is prompted in few-shot
completion steps (``translate-local.v1``): the sentence first, then each mention in the
context of the translated sentence; the same reply is assembled and validated.

Every instance ends as exactly one ``Translation`` or one ``TranslationFailure`` (with a
Reason and the raw reply). A configured ``llm_fallback_model`` gets a second go at the
instances that failed with the first model.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Sequence
from functools import cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from pydantic import BaseModel, ConfigDict

from parallelner.langid import LANG_NAMES, lang_name, looks_like, script_of
from parallelner.llm.client import LLMClient, RequestFailed, judge_reply
from parallelner.reasons import Reason
from parallelner.records import Instance, MentionTranslation
from parallelner.settings import Settings, TranslateSettings

__all__ = [
    "TranslationReply",
    "BackTranslationReply",
    "Translation",
    "TranslationFailure",
    "LANG_NAMES",
    "build_messages",
    "check_reply",
    "parse_reply",
    "translate_instance",
    "translate_stream",
    "back_translate",
    "BackTranslation",
    "EntityBackTranslationReply",
    "back_translate_entities",
    "results_from_batch",
    "result_to_json",
    "run",
    "LOCAL_PROMPT_VERSION",
    "BACK_PROMPT_VERSION",
]

LOCAL_PROMPT_VERSION = "translate-local.v1"
BACK_PROMPT_VERSION = "backtranslate.v1"
ENTITY_BACK_PROMPT_VERSION = "backtranslate-entities.v1"


class TranslationReply(BaseModel):
    """What the LLM must answer for one instance (validated on our side, always)."""

    model_config = ConfigDict(extra="forbid")

    translation: str
    entities: list[MentionTranslation]


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


# -- prompts (versioned files in parallelner/prompts) -----------------------------------


@cache
def _prompt_file(name: str) -> str:
    return resources.files("parallelner.prompts").joinpath(name).read_text(encoding="utf-8")


def _chat_template(version: str) -> tuple[Template, Template]:
    """(system, user) templates of a chat prompt file (sections '### system' / '### user')."""
    text = _prompt_file(f"{version}.txt")
    _, _, rest = text.partition("### system\n")
    system, _, user = rest.partition("### user\n")
    return Template(system.strip()), Template(user.strip())


def build_messages(
    inst: Instance, tgt_lang: str, prompt_version: str = "translate.v1"
) -> list[dict[str, str]]:
    """Chat messages asking to translate ``inst`` and its mentions into ``tgt_lang``."""
    system, user = _chat_template(prompt_version)
    payload = json.dumps(
        {
            "source_language": inst.lang,
            "target_language": tgt_lang,
            "sentence": inst.text,
            "entities": [
                {"id": i, "text": e.text, "type": e.label} for i, e in enumerate(inst.entities)
            ],
        },
        ensure_ascii=False,
    )
    names = {"src_name": lang_name(inst.lang), "tgt_name": lang_name(tgt_lang)}
    return [
        {"role": "system", "content": system.substitute(names)},
        {"role": "user", "content": user.substitute(names, payload=payload)},
    ]


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


async def _translate_chat(
    client: LLMClient, inst: Instance, tgt_lang: str, ts: TranslateSettings, model: str
) -> Translation | TranslationFailure:
    outcome = await client.chat_json(
        build_messages(inst, tgt_lang, ts.prompt_version),
        TranslationReply,
        model=model,
        prompt_version=ts.prompt_version,
        max_tokens=ts.max_tokens,
        temperature=ts.temperature,
        check=lambda r: check_reply(inst, tgt_lang, r),
        max_reasks=ts.max_reasks,
    )
    if not outcome.ok:
        return TranslationFailure(
            instance_id=inst.id,
            tgt_lang=tgt_lang,
            reason=outcome.reason,
            detail=outcome.detail,
            raw_reply=outcome.raw,
            model=model,
            prompt_version=ts.prompt_version,
        )
    return Translation(
        instance_id=inst.id,
        tgt_lang=tgt_lang,
        text=outcome.value.translation.strip(),
        mentions=_mentions(inst, outcome.value),
        model=model,
        prompt_version=ts.prompt_version,
        raw_reply=outcome.raw or "",
        reasons=_extra_entities(inst, outcome.value),
    )


@cache
def _local_prompts() -> dict[str, Any]:
    return json.loads(_prompt_file(f"{LOCAL_PROMPT_VERSION}.json"))


def _local_shots(src: str, tgt: str, *, terms: bool) -> str:
    """Few-shot block for a language pair from the bundled parallel examples."""
    spec = _local_prompts()
    line, term_line = Template(spec["sentence_line"]), Template(spec["term_line"])
    src, tgt = src.split("-")[0], tgt.split("-")[0]
    blocks = []
    for ex in spec["examples"]:
        if src not in ex or tgt not in ex:
            continue
        rows = [
            line.substitute(lang_name=lang_name(src), text=ex[src]["text"]),
            line.substitute(lang_name=lang_name(tgt), text=ex[tgt]["text"]),
        ]
        if terms:
            rows += [
                term_line.substitute(lang_name=lang_name(src), text=ex[src]["term"]),
                term_line.substitute(lang_name=lang_name(tgt), text=ex[tgt]["term"]),
            ]
        blocks.append("\n".join(rows))
    return "".join(b + "\n\n" for b in blocks)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _translate_local(
    client: LLMClient, inst: Instance, tgt_lang: str, ts: TranslateSettings, model: str
) -> Translation | TranslationFailure:
    """Few-shot completion steps for a base model; assembles and validates the reply."""
    src_name, tgt_name = lang_name(inst.lang), lang_name(tgt_lang)
    sentence = _one_line(inst.text)
    last: tuple[Reason, str, str | None] = (Reason.REPLY_EMPTY, "no attempt", None)
    for ask in range(ts.max_reasks + 1):
        # a re-ask samples instead of repeating the same greedy answer
        temperature = ts.temperature if ask == 0 else min(1.0, 0.4 * ask)
        try:
            out = await client.complete_outcome(
                f"{_local_shots(inst.lang, tgt_lang, terms=False)}"
                f"{src_name}: {sentence}\n{tgt_name}:",
                stop=["\n"],
                max_tokens=min(ts.max_tokens, 64 + 3 * len(sentence)),
                model=model,
                prompt_version=LOCAL_PROMPT_VERSION,
                temperature=temperature,
            )
            text = out.text.strip()
            if out.finish_reason == "length":
                last = (Reason.REPLY_TRUNCATED, "the translation was cut off", out.text)
                if ask < ts.max_reasks:
                    client.usage.reasks += 1
                continue
            context = (
                f"{_local_shots(inst.lang, tgt_lang, terms=True)}"
                f"{src_name}: {sentence}\n{tgt_name}: {text}\n"
            )
            targets = await asyncio.gather(
                *(
                    client.complete(
                        f"{context}{src_name} term: {e.text}\n{tgt_name} term:",
                        stop=["\n"],
                        max_tokens=48,
                        model=model,
                        prompt_version=LOCAL_PROMPT_VERSION,
                        temperature=temperature,
                    )
                    for e in inst.entities
                )
            )
        except RequestFailed as exc:
            return TranslationFailure(
                instance_id=inst.id,
                tgt_lang=tgt_lang,
                reason=exc.reason,
                detail=exc.detail,
                raw_reply=last[2],
                model=model,
                prompt_version=LOCAL_PROMPT_VERSION,
            )
        reply = TranslationReply(
            translation=text,
            entities=[
                MentionTranslation(id=i, source=e.text, target=t.strip())
                for i, (e, t) in enumerate(zip(inst.entities, targets, strict=True))
            ],
        )
        raw = reply.model_dump_json()
        verdict = check_reply(inst, tgt_lang, reply)
        if verdict is None:
            return Translation(
                instance_id=inst.id,
                tgt_lang=tgt_lang,
                text=text,
                mentions=_mentions(inst, reply),
                model=model,
                prompt_version=LOCAL_PROMPT_VERSION,
                raw_reply=raw,
            )
        last = (verdict[0], verdict[1], raw)
        if ask < ts.max_reasks:
            client.usage.reasks += 1
    return TranslationFailure(
        instance_id=inst.id,
        tgt_lang=tgt_lang,
        reason=last[0],
        detail=last[1],
        raw_reply=last[2],
        model=model,
        prompt_version=LOCAL_PROMPT_VERSION,
    )


async def translate_instance(
    client: LLMClient, inst: Instance, tgt_lang: str, settings: Settings
) -> Translation | TranslationFailure:
    """Translate one instance and its mentions; escalate to the fallback model on failure.

    Never raises for a per-instance problem: the result is a Translation or a
    TranslationFailure with a Reason and the raw reply.
    """
    ts = settings.translate
    step = _translate_local if client.is_local else _translate_chat
    models = [client.model]
    if settings.llm_fallback_model and settings.llm_fallback_model != client.model:
        models.append(settings.llm_fallback_model)
    result: Translation | TranslationFailure | None = None
    for n, model in enumerate(models):
        result = await step(client, inst, tgt_lang, ts, model)
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
    client: LLMClient,
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


async def back_translate(
    client: LLMClient, text: str, src_lang: str, tgt_lang: str, settings: Settings
) -> str | None:
    """Translate plain ``text`` written in ``src_lang`` into ``tgt_lang``; None on failure.

    For the quality stage: ``back_translate(client, rec.tgt_text, rec.tgt_lang,
    rec.src_lang, settings)``. Same client, cache and usage counters as translation.
    """
    ts = settings.translate
    if client.is_local:
        try:
            out = await client.complete_outcome(
                f"{_local_shots(src_lang, tgt_lang, terms=False)}"
                f"{lang_name(src_lang)}: {_one_line(text)}\n{lang_name(tgt_lang)}:",
                stop=["\n"],
                max_tokens=min(ts.max_tokens, 64 + 3 * len(text)),
                prompt_version=BACK_PROMPT_VERSION,
                temperature=ts.temperature,
            )
        except RequestFailed:
            return None
        result = out.text.strip()
        return result if result and out.finish_reason != "length" else None

    outcome = await _ask_back(
        client, BACK_PROMPT_VERSION, BackTranslationReply, text, src_lang, tgt_lang, settings
    )
    return outcome.value.translation.strip() if outcome.ok else None


async def _ask_back(
    client: LLMClient,
    version: str,
    reply_model: type[BaseModel],
    text: str,
    src_lang: str,
    tgt_lang: str,
    settings: Settings,
    extra: dict[str, Any] | None = None,
    check_more: Callable[[Any], tuple[Reason, str] | None] | None = None,
) -> Any:
    """One back-translation request on a chat endpoint (``extra`` joins the payload)."""
    ts = settings.translate
    system, user = _chat_template(version)
    names = {"src_name": lang_name(src_lang), "tgt_name": lang_name(tgt_lang)}
    payload = json.dumps(
        {"source_language": src_lang, "target_language": tgt_lang, "sentence": text}
        | (extra or {}),
        ensure_ascii=False,
    )

    def check(r: Any) -> tuple[Reason, str] | None:
        if not r.translation.strip():
            return Reason.REPLY_EMPTY, "the translation is empty"
        if script_of(src_lang) != script_of(tgt_lang) and not looks_like(r.translation, tgt_lang):
            return Reason.REPLY_WRONG_LANGUAGE, f"not written in {lang_name(tgt_lang)}"
        return check_more(r) if check_more is not None else None

    return await client.chat_json(
        [
            {"role": "system", "content": system.substitute(names)},
            {"role": "user", "content": user.substitute(names, payload=payload)},
        ],
        reply_model,
        prompt_version=version,
        max_tokens=ts.max_tokens,
        temperature=ts.temperature,
        check=check,
        max_reasks=ts.max_reasks,
    )


async def back_translate_entities(
    client: LLMClient,
    text: str,
    mentions: Sequence[str],
    src_lang: str,
    tgt_lang: str,
    settings: Settings,
) -> BackTranslation | None:
    """Back-translate ``text`` (written in ``src_lang``) into ``tgt_lang`` and read back
    each of its ``mentions`` (exact substrings of ``text``) in the same request.

    For stage 3's entity round trip: ``back_translate_entities(client, rec.tgt_text,
    [e.text for e in rec.tgt_entities], rec.tgt_lang, rec.src_lang, settings)``. Chat
    endpoints answer in one request (no more requests than a plain back-translation);
    the local base model gets one short completion per mention after the sentence.
    None when no usable back-translation came back.
    """
    ts = settings.translate
    if client.is_local:
        sentence = await back_translate(client, text, src_lang, tgt_lang, settings)
        if sentence is None:
            return None
        context = (
            f"{_local_shots(src_lang, tgt_lang, terms=True)}"
            f"{lang_name(src_lang)}: {_one_line(text)}\n{lang_name(tgt_lang)}: {sentence}\n"
        )
        forms: list[str | None] = []
        for m in mentions:
            try:
                out = await client.complete(
                    f"{context}{lang_name(src_lang)} term: {m}\n{lang_name(tgt_lang)} term:",
                    stop=["\n"],
                    max_tokens=48,
                    prompt_version=ENTITY_BACK_PROMPT_VERSION,
                    temperature=ts.temperature,
                )
            except RequestFailed:
                forms.append(None)
                continue
            forms.append(out.strip() or None)
        return BackTranslation(text=sentence, mentions=tuple(forms))

    # a read-back left out is not re-asked (that would cost a request and, after the
    # re-asks, the sentence too): the entity is "unverified" and the pair goes to review
    outcome = await _ask_back(
        client,
        ENTITY_BACK_PROMPT_VERSION,
        EntityBackTranslationReply,
        text,
        src_lang,
        tgt_lang,
        settings,
        extra={"mentions": [{"id": i, "text": m} for i, m in enumerate(mentions)]},
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


# -- the file edge ------------------------------------------------------------------------


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
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".part")
    async with LLMClient.from_settings(settings, wait_out_outages=True) as client:
        with tmp.open("w", encoding="utf-8") as fh:
            async for inst, result in translate_stream(client, instances, tgt_lang, settings):
                row = result_to_json(inst, result)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                fh.flush()
                counts[row["status"]] += 1
                for r in row["reasons"]:
                    counts[f"reason:{r}"] += 1
        tmp.replace(out_path)
        return {
            "instances": len(instances),
            "translated": counts["translated"],
            "failed": counts["failed"],
            "reasons": {k[7:]: v for k, v in sorted(counts.items()) if k.startswith("reason:")},
            "model": client.model,
            "local": client.is_local,
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
