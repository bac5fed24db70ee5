"""The embedded local model's backend: few-shot completion steps for a tiny *base* model.

Gemma 3 270M copies the source when forced into a JSON grammar, so it is not sent the
chat prompt. For each kind of question (by prompt family) a recipe prompts it in short
completion steps and assembles the reply model the chat backend would have returned:

    translate               the sentence first (``translate-local.v1`` few-shot), then each
                            mention in the context of the translated sentence; re-asked,
                            sampling, while the stage's check rejects it
    backtranslate           one completion of the sentence
    backtranslate-entities  the sentence, then one completion per mention
    mention-translate       one completion per mention (``### completion`` + an example)
    repair-mention,
    repair-rewrite          the prompt file's ``### completion`` section

Stage code never sees the difference: it asks ``client.ask(question)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from string import Template
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from pydantic import BaseModel

from parallelner.errors import LLMError
from parallelner.languages import lang_name, zh_variant
from parallelner.llm.outcomes import ChatOutcome, CompletionOutcome, RequestFailed
from parallelner.llm.requests import (
    BackTranslateRequest,
    MentionTranslateRequest,
    TranslateRequest,
    request_of,
)
from parallelner.prompts import load_prompt, load_prompt_data
from parallelner.reasons import Reason

if TYPE_CHECKING:
    from parallelner.llm.ask import Question
    from parallelner.llm.usage import Usage

__all__ = ["FewShotBackend", "LOCAL_PROMPT_VERSION", "example_block"]

M = TypeVar("M", bound=BaseModel)


class CompletionClient(Protocol):
    """What the few-shot recipes use of a client (``parallelner.llm.client.LLMClient``)."""

    model: str
    usage: Usage

    async def complete_outcome(
        self,
        prompt: str,
        *,
        stop: Sequence[str] | None = None,
        max_tokens: int = 256,
        model: str | None = None,
        prompt_version: str,
        temperature: float = 0.0,
    ) -> CompletionOutcome: ...

    async def complete(
        self,
        prompt: str,
        *,
        stop: Sequence[str] | None = None,
        max_tokens: int = 256,
        model: str | None = None,
        prompt_version: str,
        temperature: float = 0.0,
    ) -> str: ...


LOCAL_PROMPT_VERSION = "translate-local.v1"
_BACK_SENTENCE_PROMPT = "backtranslate.v1"  # the sentence step of an entity read-back
# where a completion ends, per prompt family (the mention prompt opens a quote)
_STOP = {"repair-mention": ['"', "\n"]}


def _shots(src: str, tgt: str, *, terms: bool) -> str:
    """Few-shot block for a language pair from the bundled parallel examples."""
    spec = load_prompt_data(LOCAL_PROMPT_VERSION)
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


def _failed(reason: Reason, detail: str, raw: str | None, model: str, version: str) -> ChatOutcome:
    return ChatOutcome(None, reason, detail, raw, model, prompt_version=version)


def _answer(value: BaseModel, model: str, version: str) -> ChatOutcome:
    return ChatOutcome(value, None, "", value.model_dump_json(), model, prompt_version=version)


async def _translate(client: CompletionClient, q: Question[M], model: str) -> ChatOutcome[M]:
    """Sentence, then mentions in context; re-asked (sampling) while ``q.check`` objects."""
    req = request_of(q.data, TranslateRequest)
    src, tgt = req.source_language, req.target_language
    mentions = [e.text for e in req.entities]
    src_name, tgt_name = lang_name(src), lang_name(tgt)
    sentence = _one_line(req.sentence)
    version = LOCAL_PROMPT_VERSION
    last: tuple[Reason, str, str | None] = (Reason.REPLY_EMPTY, "no attempt", None)
    for ask in range(q.max_reasks + 1):
        # a re-ask samples instead of repeating the same greedy answer
        temperature = q.temperature if ask == 0 else min(1.0, 0.4 * ask)
        try:
            out = await client.complete_outcome(
                f"{_shots(src, tgt, terms=False)}{src_name}: {sentence}\n{tgt_name}:",
                stop=["\n"],
                max_tokens=min(q.max_tokens, 64 + 3 * len(sentence)),
                model=model,
                prompt_version=version,
                temperature=temperature,
            )
            text = out.text.strip()
            if out.finish_reason == "length":
                last = (Reason.REPLY_TRUNCATED, "the translation was cut off", out.text)
                if ask < q.max_reasks:
                    client.usage.reasks += 1
                continue
            context = f"{_shots(src, tgt, terms=True)}{src_name}: {sentence}\n{tgt_name}: {text}\n"
            targets = await asyncio.gather(
                *(
                    client.complete(
                        f"{context}{src_name} term: {m}\n{tgt_name} term:",
                        stop=["\n"],
                        max_tokens=48,
                        model=model,
                        prompt_version=version,
                        temperature=temperature,
                    )
                    for m in mentions
                )
            )
        except RequestFailed as exc:
            return _failed(exc.reason, exc.detail, last[2], model, version)
        reply = q.reply_model.model_validate(
            {
                "translation": text,
                "entities": [
                    {"id": i, "source": m, "target": t.strip()}
                    for i, (m, t) in enumerate(zip(mentions, targets, strict=True))
                ],
            }
        )
        verdict = q.check(reply) if q.check is not None else None
        if verdict is None:
            return _answer(reply, model, version)
        last = (verdict[0], verdict[1], reply.model_dump_json())
        if ask < q.max_reasks:
            client.usage.reasks += 1
    return _failed(*last, model, version)


async def _back_sentence(
    client: CompletionClient, q: Question, model: str | None, version: str
) -> str | None:
    """The back-translated sentence, or None (failed, empty or cut off)."""
    req = request_of(q.data, BackTranslateRequest)
    src, tgt, text = req.source_language, req.target_language, req.sentence
    try:
        out = await client.complete_outcome(
            f"{_shots(src, tgt, terms=False)}{lang_name(src)}: {_one_line(text)}\n"
            f"{lang_name(tgt)}:",
            stop=["\n"],
            max_tokens=min(q.max_tokens, 64 + 3 * len(text)),
            model=model,
            prompt_version=version,
            temperature=q.temperature,
        )
    except RequestFailed:
        return None
    result = out.text.strip()
    return result if result and out.finish_reason != "length" else None


async def _backtranslate(client: CompletionClient, q: Question[M], model: str) -> ChatOutcome[M]:
    sentence = await _back_sentence(client, q, model, q.prompt)
    if sentence is None:
        return _failed(Reason.REPLY_EMPTY, "no usable back-translation", None, model, q.prompt)
    return _answer(q.reply_model.model_validate({"translation": sentence}), model, q.prompt)


async def _backtranslate_entities(
    client: CompletionClient, q: Question[M], model: str
) -> ChatOutcome[M]:
    """The sentence, then one short completion per mention (sequentially)."""
    sentence = await _back_sentence(client, q, model, _BACK_SENTENCE_PROMPT)
    if sentence is None:
        return _failed(Reason.REPLY_EMPTY, "no usable back-translation", None, model, q.prompt)
    req = request_of(q.data, BackTranslateRequest)
    src, tgt, text = req.source_language, req.target_language, req.sentence
    context = (
        f"{_shots(src, tgt, terms=True)}"
        f"{lang_name(src)}: {_one_line(text)}\n{lang_name(tgt)}: {sentence}\n"
    )
    forms = []
    for m in req.mentions or []:
        try:
            out = await client.complete(
                f"{context}{lang_name(src)} term: {m.text}\n{lang_name(tgt)} term:",
                stop=["\n"],
                max_tokens=48,
                model=model,
                prompt_version=q.prompt,
                temperature=q.temperature,
            )
        except RequestFailed:
            continue
        if out.strip():
            forms.append({"id": m.id, "translation": out.strip()})
    value = q.reply_model.model_validate({"translation": sentence, "mentions": forms})
    return _answer(value, model, q.prompt)


async def _mention_translate(
    client: CompletionClient, q: Question[M], model: str
) -> ChatOutcome[M]:
    """One completion per mention, after a one-shot example for the language pair."""
    prompt = load_prompt(q.prompt)
    req = request_of(q.data, MentionTranslateRequest)
    values = dict(q.values)
    values["example"] = example_block(
        "translate", req.source_language, req.target_language, req.tgt_text
    )
    values.pop("mentions", None)
    found = []
    for i, mention in enumerate(req.mentions):
        try:
            text = await client.complete(
                prompt.completion(**values, mention=mention),
                stop=["\n"],
                max_tokens=24,
                model=model,
                prompt_version=q.prompt,
            )
        except LLMError:
            continue
        text = text.strip().strip('"').strip()
        if text:
            found.append({"id": i, "target": text})
    return _answer(q.reply_model.model_validate({"mentions": found}), model, q.prompt)


async def _completion(client: CompletionClient, q: Question[M], model: str) -> ChatOutcome[M]:
    """The prompt file's ``### completion`` section; the text fills the reply's one field."""
    (name,) = q.reply_model.model_fields
    try:
        text = await client.complete(
            load_prompt(q.prompt).completion(**q.values),
            stop=_STOP.get(q.family, ["\n"]),
            max_tokens=q.max_tokens,
            model=model,
            prompt_version=q.prompt,
            temperature=q.temperature,
        )
    except LLMError as exc:
        return _failed(Reason.LLM_HTTP_ERROR, str(exc), None, model, q.prompt)
    if not text.strip():
        return _failed(Reason.REPLY_EMPTY, "the completion is empty", text, model, q.prompt)
    return _answer(q.reply_model.model_validate({name: text.strip()}), model, q.prompt)


async def _not_asked(client: CompletionClient, q: Question[M], model: str) -> ChatOutcome[M]:
    """Questions a 270M base model cannot answer usefully (the repair ladder's evidence
    re-ask, a fresh translation after a rejected one): no request, no answer."""
    return _failed(Reason.REPLY_EMPTY, f"{q.family} is not asked of the local base model",
                   None, model, q.prompt)  # fmt: skip


_RECIPES: dict[str, Callable[[Any, Any, str], Awaitable[ChatOutcome]]] = {
    "translate": _translate,
    "translate-retry": _not_asked,
    "repair-evidence": _not_asked,
    "backtranslate": _backtranslate,
    "backtranslate-entities": _backtranslate_entities,
    "mention-translate": _mention_translate,
}


class FewShotBackend:
    """Answers ``Question``s with few-shot completions on the embedded local model."""

    def __init__(self, client: CompletionClient):
        self.client = client

    async def ask(self, question: Question[M], *, model: str | None = None) -> ChatOutcome[M]:
        recipe = _RECIPES.get(question.family, _completion)
        return await recipe(self.client, question, model or self.client.model)


# One-shot examples for the completion prompts of the local base model (a made-up
# sentence, not from any evaluation set): source text, target text, (mention, as written).
_EXAMPLE_EN = "The European Commission will discuss the proposal with the German government in Brussels on Monday ."
_EXAMPLES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "de": (
        "Die Europäische Kommission wird den Vorschlag am Montag in Brüssel mit der deutschen Regierung erörtern .",
        [
            ("European Commission", "Europäische Kommission"),
            ("German", "deutschen"),
            ("Brussels", "Brüssel"),
        ],
    ),
    "es": (
        "La Comisión Europea debatirá la propuesta con el Gobierno alemán en Bruselas el lunes .",
        [
            ("European Commission", "Comisión Europea"),
            ("German", "alemán"),
            ("Brussels", "Bruselas"),
        ],
    ),
    "it": (
        "La Commissione europea discuterà la proposta con il governo tedesco a Bruxelles lunedì .",
        [
            ("European Commission", "Commissione europea"),
            ("German", "tedesco"),
            ("Brussels", "Bruxelles"),
        ],
    ),
    "fr": (
        "La Commission européenne discutera de la proposition avec le gouvernement allemand à Bruxelles lundi .",
        [
            ("European Commission", "Commission européenne"),
            ("German", "allemand"),
            ("Brussels", "Bruxelles"),
        ],
    ),
    "zh-Hans": (
        "欧盟委员会将于周一在布鲁塞尔与德国政府讨论该提案。",
        [("European Commission", "欧盟委员会"), ("German", "德国"), ("Brussels", "布鲁塞尔")],
    ),
    "zh-Hant": (
        "歐盟委員會將於週一在布魯塞爾與德國政府討論該提案。",
        [("European Commission", "歐盟委員會"), ("German", "德國"), ("Brussels", "布魯塞爾")],
    ),
}
_TRAD = set("們國會說這為時來對學後個經過發還與開關東車長門問間們給區當種點體議員聯總統")
_SIMP = set("们国会说这为时来对学后个经过发还与开关东车长门问间们给区当种点体议员联总统")


def _example_key(tgt_lang: str, tgt_text: str) -> str:
    base = tgt_lang.split("-")[0].lower()
    if base != "zh":
        return base
    variant = zh_variant(tgt_lang)
    if variant is not None:
        return "zh-Hant" if variant == "hant" else "zh-Hans"
    trad = sum(c in _TRAD for c in tgt_text)
    simp = sum(c in _SIMP for c in tgt_text)
    return "zh-Hant" if trad > simp else "zh-Hans"


def example_block(kind: str, src_lang: str, tgt_lang: str, tgt_text: str = "") -> str:
    """A one-shot example for a completion prompt (``kind``: translate | mention).

    Empty when there is no example for the language pair (English sources only).
    ``tgt_text`` (the known target sentence, if any) picks Traditional or Simplified
    Chinese when the tag does not say.
    """
    ex = _EXAMPLES.get(_example_key(tgt_lang, tgt_text))
    if src_lang.split("-")[0].lower() != "en" or ex is None:
        return ""
    src, tgt = lang_name(src_lang), lang_name(tgt_lang)
    target, pairs = ex
    out = [""]
    if kind == "translate":
        for m, t in pairs:
            out += [f"{src} sentence: {_EXAMPLE_EN}", f"{src} name: {m}", f"{tgt} name: {t}", ""]
    else:
        out += [f"{src} sentence: {_EXAMPLE_EN}", f"{tgt} translation: {target}"]
        out += [f'In the {tgt} translation, "{m}" is written exactly as: "{t}"' for m, t in pairs]
        out.append("")
    return "\n".join(out)
