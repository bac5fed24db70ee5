"""The repair ladder for entities the cascade could not place (async, needs an LLM).

The paper's stages, each tried only for what the one before left unplaced:

(a) ``a:mention``  ask the LLM for the mention exactly as it appears in the translation;
                   the answer is used only if it is a substring of the translation
                   (verified here) at a span no other entity holds -> ``repair_mention``;
(b) ``b:rewrite``  ask the LLM to rewrite the translation so that it contains every
                   translated mention verbatim, then project the whole sentence again
                   -> ``repair_rewrite`` (never for human translations: ``allow_rewrite``);
(c) ``c:fallback`` (a), and (b) where allowed, with ``fallback_model``
                   -> ``repair_fallback``;
(d) ``d:review``   still incomplete: ``needs_review`` is set and the entities left keep
                   ``Reason.REPAIR_EXHAUSTED``.

Every rung appends one step string ``"<rung>:<what>:<outcome>"`` (outcome ``ok``,
``partial``, ``failed`` or ``skipped``) so a record shows exactly what was tried.
Also here: ``translate_mentions``, the LLM translation of mentions in context used by
``parallelner project`` on human translations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

from parallelner.align.cascade import Projection, _Target, project_spans
from parallelner.languages import prompt_names
from parallelner.llm.ask import LLM, Question
from parallelner.llm.requests import MentionTranslateRequest
from parallelner.reasons import Reason
from parallelner.records import Instance, ProjectedEntity

__all__ = [
    "Repair",
    "REPAIRABLE",
    "repair_projection",
    "translate_mentions",
    "MENTION_PROMPT",
    "REWRITE_PROMPT",
    "REWRITE_V2_PROMPT",
    "RewriteReply",
    "TRANSLATE_PROMPT",
]

MENTION_PROMPT = "repair-mention.v2"
REWRITE_PROMPT = "repair-rewrite.v1"
# the closed loop's rewrite (``parallelner.stages.ladder``): also names no one the source
# does not name
REWRITE_V2_PROMPT = "repair-rewrite.v2"
TRANSLATE_PROMPT = "mention-translate.v2"
REPAIR_MENTION_SCORE = 0.9  # verified substring, but the LLM chose which words

# Reasons the ladder can do something about (not: empty target, wrong script, bad input).
REPAIRABLE = frozenset(
    {Reason.NOT_FOUND, Reason.SPAN_TAKEN, Reason.MENTION_TOO_LONG, Reason.AMBIGUOUS}
)


class _MentionReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mention: str


class _RewriteReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    translation: str


RewriteReply = _RewriteReply  # the rewrite's reply (its schema name stays ``_RewriteReply``)


class _MentionItem(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    target: str


class _MentionsReply(BaseModel):
    model_config = ConfigDict(extra="ignore")
    mentions: list[_MentionItem]


@dataclass(frozen=True)
class Repair:
    """Outcome of the ladder: the final projection and target text, and what was tried."""

    projection: Projection
    tgt_text: str
    steps: tuple[str, ...]
    needs_review: bool
    rewritten: bool = False


# --------------------------------------------------------------------------------------
# One LLM question each; every failure (transport, invalid reply) is "no answer".


async def _ask(
    client: LLM,
    prompt_version: str,
    reply_model: type[BaseModel],
    field: str,
    values: dict[str, str],
    *,
    model: str | None,
    max_tokens: int,
) -> str | None:
    outcome = await client.ask(
        Question(
            prompt=prompt_version,
            reply_model=reply_model,
            values=values,
            max_tokens=max_tokens,
            max_reasks=1,
        ),
        model=model,
    )
    if outcome.value is None:
        return None
    return (getattr(outcome.value, field) or "").strip() or None


def _values(source: Instance, tgt_text: str, tgt_lang: str) -> dict[str, str]:
    return {
        **prompt_names(source.lang, tgt_lang),
        "source": source.text,
        "target": tgt_text,
    }


async def translate_mentions(
    client: LLM,
    source: Instance,
    tgt_lang: str,
    *,
    model: str | None = None,
    tgt_text: str = "",
) -> dict[int, str]:
    """Translate every source mention in the context of its sentence (one question).

    Returns ``{entity index: translated mention}``; a mention the LLM did not answer
    is simply absent (the cascade then tries the source mention). ``tgt_text``, when a
    translation exists already, only picks the example's script (Traditional/Simplified).
    """
    if not source.entities:
        return {}
    listing = json.dumps(
        [{"id": i, "text": e.text} for i, e in enumerate(source.entities)], ensure_ascii=False
    )
    outcome = await client.ask(
        Question(
            prompt=TRANSLATE_PROMPT,
            reply_model=_MentionsReply,
            values={**_values(source, "", tgt_lang), "mentions": listing},
            data=MentionTranslateRequest(
                source_language=source.lang,
                target_language=tgt_lang,
                mentions=[e.text for e in source.entities],
                tgt_text=tgt_text,
            ),
            max_tokens=64 + 48 * len(source.entities),
            max_reasks=1,
        ),
        model=model,
    )
    if outcome.value is None:
        return {}
    n = len(source.entities)
    return {
        m.id: m.target.strip() for m in outcome.value.mentions if 0 <= m.id < n and m.target.strip()
    }


# --------------------------------------------------------------------------------------
# The rungs.


def _place(tgt_text: str, answer: str, taken: list[tuple[int, int]]) -> tuple[int, int] | None:
    """A free occurrence of ``answer`` in the text, whole words first, else any."""
    target = _Target(tgt_text)
    free = [
        (s, e) for s, e, _ in target.exact(answer) if not any(s < te and ts < e for ts, te in taken)
    ]
    if free:
        return free[0]
    i = tgt_text.find(answer)
    while i >= 0:
        s, e = i, i + len(answer)
        if not any(s < te and ts < e for ts, te in taken):
            return s, e
        i = tgt_text.find(answer, i + 1)
    return None


def _outcome(before: int, after: int) -> str:
    if after == 0:
        return "ok"
    return "partial" if after < before else "failed"


async def _rung_mention(
    client: LLM,
    source: Instance,
    tgt_text: str,
    tgt_lang: str,
    proj: Projection,
    *,
    model: str | None,
    method: str,
) -> Projection:
    taken = [(e.start, e.end) for e in proj.entities]
    placed = list(proj.entities)
    left = []
    for u in proj.unprojected:
        if u.reason not in REPAIRABLE:
            left.append(u)
            continue
        answer = await _ask(
            client,
            MENTION_PROMPT,
            _MentionReply,
            "mention",
            {
                **_values(source, tgt_text, tgt_lang),
                "mention": source.entities[u.source_index].text,
            },
            model=model,
            max_tokens=48,
        )
        span = _place(tgt_text, answer, taken) if answer else None
        if span is None:
            left.append(u)
            continue
        s, e = span
        taken.append(span)
        placed.append(
            ProjectedEntity(
                start=s,
                end=e,
                label=u.label,
                text=tgt_text[s:e],
                source_index=u.source_index,
                method=method,
                score=REPAIR_MENTION_SCORE,
            )
        )
    return Projection(
        tuple(sorted(placed, key=lambda p: (p.start, p.end))), tuple(left), proj.ambiguous
    )


async def _rung_rewrite(
    client: LLM,
    source: Instance,
    tgt_text: str,
    tgt_lang: str,
    mentions: Mapping[int, str],
    proj: Projection,
    *,
    model: str | None,
    method: str,
    threshold: float,
) -> tuple[Projection, str] | None:
    """Rewrite the translation to contain every mention; None when it did not help."""
    wanted = [mentions[i] for i in range(len(source.entities)) if mentions.get(i)]
    if not wanted:
        return None
    answer = await _ask(
        client,
        REWRITE_PROMPT,
        _RewriteReply,
        "translation",
        {
            **_values(source, tgt_text, tgt_lang),
            "mentions": json.dumps(wanted, ensure_ascii=False),
        },
        model=model,
        max_tokens=max(64, 3 * len(tgt_text)),
    )
    if not answer or answer == tgt_text:
        return None
    new = project_spans(source, answer, tgt_lang, mentions, threshold=threshold)
    if len(new.unprojected) >= len(proj.unprojected):
        return None
    missing = {u.source_index for u in proj.unprojected}
    ents = tuple(
        e.model_copy(update={"method": method}) if e.source_index in missing else e
        for e in new.entities
    )
    return Projection(ents, new.unprojected, new.ambiguous), answer


async def repair_projection(
    client: LLM,
    source: Instance,
    tgt_text: str,
    tgt_lang: str,
    mentions: Mapping[int, str] | None,
    projection: Projection,
    *,
    threshold: float = 0.8,
    fallback_model: str | None = None,
    allow_rewrite: bool = True,
) -> Repair:
    """Run the ladder (a) -> (b) -> (c) -> (d) on what ``projection`` left unplaced.

    ``allow_rewrite=False`` for human translations: rung (b) is then skipped, in (c)
    too. Never raises for an LLM failure: a rung that gets no usable answer fails.
    """
    steps: list[str] = []
    proj = projection
    text = tgt_text
    rewritten = False
    if not any(u.reason in REPAIRABLE for u in proj.unprojected):
        return Repair(proj, text, (), needs_review=False)

    def n_left(p: Projection) -> int:
        return sum(1 for u in p.unprojected if u.reason in REPAIRABLE)

    # (a) the mention as it appears in the translation
    before = n_left(proj)
    proj = await _rung_mention(
        client, source, text, tgt_lang, proj, model=None, method="repair_mention"
    )
    steps.append(f"a:mention:{_outcome(before, n_left(proj))}")

    # (b) rewrite the translation around the mentions
    if n_left(proj):
        if not allow_rewrite or not mentions:
            steps.append("b:rewrite:skipped")
        else:
            before = n_left(proj)
            got = await _rung_rewrite(
                client, source, text, tgt_lang, mentions, proj,
                model=None, method="repair_rewrite", threshold=threshold,
            )  # fmt: skip
            if got is not None:
                proj, text = got
                rewritten = True
            steps.append(f"b:rewrite:{_outcome(before, n_left(proj))}")

    # (c) the same with the fallback model
    if n_left(proj):
        if not fallback_model:
            steps.append("c:fallback:skipped")
        else:
            before = n_left(proj)
            proj = await _rung_mention(
                client, source, text, tgt_lang, proj, model=fallback_model,
                method="repair_fallback",
            )  # fmt: skip
            if n_left(proj) and allow_rewrite and mentions:
                got = await _rung_rewrite(
                    client, source, text, tgt_lang, mentions, proj,
                    model=fallback_model, method="repair_fallback", threshold=threshold,
                )  # fmt: skip
                if got is not None:
                    proj, text = got
                    rewritten = True
            steps.append(f"c:fallback:{_outcome(before, n_left(proj))}")

    # (d) people
    needs_review = n_left(proj) > 0
    if needs_review:
        steps.append("d:review")
        proj = Projection(
            proj.entities,
            tuple(
                u.model_copy(update={"reason": Reason.REPAIR_EXHAUSTED})
                if u.reason in REPAIRABLE
                else u
                for u in proj.unprojected
            ),
            proj.ambiguous,
        )
    return Repair(proj, text, tuple(steps), needs_review=needs_review, rewritten=rewritten)
