"""The closed repair loop: doubts climb automatic rungs before anything goes to people.

After the first pass (translate -> project -> back-translate -> assess), a pair whose
status is ``review`` or ``rejected`` for a reason a machine can act on climbs the rungs
below, cheapest first. Each rung changes the translation or its mentions and the pair is
then projected, read back and assessed **again from scratch** by the same stages: a
repaired pair passes exactly the checks a first-time pair passes. The best state so far
is kept (accepted before review before rejected; fewer doubts first); a rung that makes
things worse changes nothing.

==============  =========================================================  ============
rung            what it asks                                               for
==============  =========================================================  ============
``evidence``    one question for all doubtful mentions of the pair, with   entity doubts,
                the verifier's evidence: "the words you gave, X, read      unplaced
                back as 'Y'; the source mention is 'Z': which words of     mentions
                the translation say 'Z'?" -- and, for words that occur
                more than once, the words around the entity's occurrence
                (``repair-evidence.v2``)
``rewrite``     the mentions re-translated in context, then the sentence   added names,
                rewritten to hold them and no name the source lacks        dropped entities
                (``mention-translate.v2``, ``repair-rewrite.v2``)
``fresh``       a fresh translation, showing the rejected one and what     any doubt left
                was wrong (``translate-retry.v1``: a new question, so the
                reply cache never answers with the reply judged wrong);
                then ``evidence`` / ``rewrite`` on it
``fallback``    the whole chain with ``llm_fallback_model``; then          any doubt left
                ``evidence`` / ``rewrite`` with that model
==============  =========================================================  ============

Cost is bounded per pair: ``ladder.max_requests_per_pair`` questions in all, the first
pass included; a rung that would not fit is skipped (``<rung>:budget``). Every rung
leaves one step on the row's ``repair_steps``, ``ladder:<rung>:<outcome>`` (outcome
``fixed``: no doubt left; ``better``: kept, doubts left; ``failed``: no better;
``no_answer``; ``budget``), ``evidence`` with the entity ids it relocated
(``ladder:evidence:fixed:0,2``); a pair still in doubt when every rung is spent ends in
``review`` with ``ladder:review``. ``LadderStats`` counts per rung: pairs tried, fixed,
requests and tokens.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict

from parallelner.languages import prompt_names
from parallelner.llm.ask import LLM, Question
from parallelner.llm.client import Usage, count_usage
from parallelner.llm.requests import Doubt, RelocateRequest, payload
from parallelner.quality.entities import ENTITY_REASONS
from parallelner.reasons import Reason, Status
from parallelner.records import MentionTranslation, ParallelRecord
from parallelner.stages.contract import Context, Stage, is_failed, run_stage, run_stages
from parallelner.stages.repair import REWRITE_V2_PROMPT, RewriteReply, translate_mentions
from parallelner.stages.translate import Translate

__all__ = [
    "RUNGS",
    "FIXABLE",
    "CountingLLM",
    "ladder_line",
    "LadderStats",
    "doubts",
    "climb",
    "Evidence",
    "Rewrite",
    "EVIDENCE_PROMPT",
]

EVIDENCE_PROMPT = "repair-evidence.v2"
RUNGS = ("evidence", "rewrite", "fresh", "fallback")

# Doubts about one entity, about names the source lacks, and about the sentence itself.
ENTITY_DOUBTS = frozenset(
    {*ENTITY_REASONS, Reason.INCOMPLETE_ENTITIES, Reason.REPAIR_UNFINISHED,
     Reason.LOW_PROJECTION_SCORE, Reason.LABEL_CHANGED, Reason.OVERLAPPING_SPANS,
     Reason.MENTION_MISMATCH}
)  # fmt: skip
NAME_DOUBTS = frozenset({Reason.UNEXPECTED_NAME, Reason.REPLY_EXTRA_ENTITIES})
SENTENCE_DOUBTS = frozenset(
    {Reason.WRONG_LANGUAGE, Reason.SOURCE_LANGUAGE_COPY, Reason.UNTRANSLATED,
     Reason.EMPTY_TRANSLATION, Reason.LENGTH_RATIO, Reason.LOW_BACKTRANSLATION,
     Reason.BORDERLINE_BACKTRANSLATION, Reason.NO_BACKTRANSLATION,
     Reason.WRONG_SCRIPT_VARIANT, Reason.LEFTOVER_MARKUP, Reason.CONTROL_CHARACTERS}
)  # fmt: skip
# A reply stage 1 could not use (after its re-asks): a fresh translation may do better.
# (Transient failures are not here: the next run retries them.)
REPLY_DOUBTS = frozenset(
    {Reason.REPLY_INVALID_JSON, Reason.REPLY_MISSING_ENTITIES, Reason.REPLY_EMPTY,
     Reason.REPLY_TRUNCATED, Reason.REPLY_WRONG_LANGUAGE}
)  # fmt: skip
FIXABLE = ENTITY_DOUBTS | NAME_DOUBTS | SENTENCE_DOUBTS | REPLY_DOUBTS
# What one rung asks at most, the re-assessment's back-translation included.
_COST = {"evidence": 2, "rewrite": 3, "fresh": 2, "fallback": 2}
_RANK = {Status.ACCEPTED: 0, Status.REVIEW: 1, Status.REJECTED: 2, Status.FAILED: 3}


def doubts(draft: ParallelRecord) -> frozenset[Reason]:
    """The reasons a rung may act on (none for an accepted or duplicate pair, or one that
    failed for a transient reason)."""
    if Reason.DUPLICATE in draft.reasons:
        return frozenset()
    if draft.status is Status.FAILED:
        return frozenset(draft.reasons) & REPLY_DOUBTS
    if draft.status not in (Status.REVIEW, Status.REJECTED):
        return frozenset()
    return frozenset(draft.reasons) & FIXABLE


def _rank(draft: ParallelRecord) -> tuple[int, int, int]:
    doubtful_entities = sum(1 for e in draft.tgt_entities if e.checks) + len(draft.unprojected)
    return (_RANK.get(draft.status, 1), len(doubts(draft)), doubtful_entities)


@dataclass
class LadderStats:
    """Per rung: pairs tried and fixed, questions asked, requests and tokens."""

    rungs: dict[str, dict[str, int]] = field(
        default_factory=lambda: {
            r: dict.fromkeys(
                ("tried", "fixed", "better", "questions", "requests", "cache_hits",
                 "prompt_tokens", "completion_tokens"), 0,
            )
            for r in RUNGS
        }
    )  # fmt: skip
    pairs_climbed: int = 0
    pairs_to_review: int = 0

    def add(self, rung: str, outcome: str, usage: Usage, questions: int) -> None:
        row = self.rungs[rung]
        row["tried"] += 1
        row["fixed"] += outcome == "fixed"
        row["better"] += outcome == "better"
        row["questions"] += questions
        row["requests"] += usage.requests
        row["cache_hits"] += usage.cache_hits
        row["prompt_tokens"] += usage.prompt_tokens
        row["completion_tokens"] += usage.completion_tokens

    def merge(self, other: dict[str, Any]) -> None:
        """Add another ``as_dict()`` (a shard's) to these counts."""
        for rung, row in (other.get("rungs") or {}).items():
            mine = self.rungs.setdefault(rung, dict.fromkeys(row, 0))
            for k, v in row.items():
                mine[k] = mine.get(k, 0) + v
        self.pairs_climbed += other.get("pairs_climbed", 0)
        self.pairs_to_review += other.get("pairs_to_review", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rungs": {r: dict(v) for r, v in self.rungs.items()},
            "pairs_climbed": self.pairs_climbed,
            "pairs_to_review": self.pairs_to_review,
        }


class CountingLLM:
    """The LLM interface, counting the questions one pair asks (answered from the cache
    or not: the budget must decide the same way on a re-run that asks nothing)."""

    def __init__(self, llm: LLM):
        self._llm = llm
        self.model = llm.model
        self.max_in_flight = llm.max_in_flight
        self.asked = 0

    async def ask(self, question: Question, *, model: str | None = None) -> Any:
        self.asked += 1
        return await self._llm.ask(question, model=model)


# -- the rungs that change a translation's mentions or words ------------------------------


class _Located(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: int
    target: str
    context: str = ""


class RelocateReply(BaseModel):
    """Where each doubtful mention is in the translation (exact words; "" for none)."""

    model_config = ConfigDict(extra="ignore")
    mentions: list[_Located]


def _evidence(draft: ParallelRecord) -> list[Doubt]:
    """One entry per doubtful source entity: what was taken, what it read back as, why."""
    out = []
    by_index = {e.source_index: e for e in draft.tgt_entities}
    mention = {m.id: m.target for m in draft.mention_translations}
    for i, src in enumerate(draft.src_entities):
        e = by_index.get(i)
        if e is not None and e.checks:
            out.append(
                Doubt(id=i, source_mention=src.text, given=e.text,
                      reads_back_as=e.back_translation or None,
                      problem=", ".join(r.value for r in e.checks))
            )  # fmt: skip
        elif e is None:
            out.append(
                Doubt(id=i, source_mention=src.text, given=mention.get(i, ""),
                      problem="not found in the translation")
            )  # fmt: skip
    return out


class Evidence(Stage):
    """Ask again where each doubtful mention is, showing what the checks found."""

    name = "evidence"
    reads = frozenset(
        {"src_lang", "src_text", "src_entities", "tgt_lang", "tgt_text", "tgt_entities",
         "mention_translations"}
    )  # fmt: skip
    writes = frozenset({"mention_translations"})
    settings_section = "ladder"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        doubtful = _evidence(draft)
        text = draft.tgt_text or ""
        if not doubtful or not text:
            return draft
        req = RelocateRequest(
            source_language=draft.src_lang,
            target_language=draft.tgt_lang,
            source_sentence=draft.src_text,
            translation=text,
            doubts=doubtful,
        )
        outcome = await ctx.llm.ask(
            Question(
                prompt=EVIDENCE_PROMPT,
                reply_model=RelocateReply,
                values={**prompt_names(draft.src_lang, draft.tgt_lang), "payload": payload(req)},
                data=req,
                max_tokens=64 + 48 * len(doubtful),
                max_reasks=1,
            ),
            model=ctx.model,
        )
        if outcome.value is None:
            return draft
        asked = {d.id for d in doubtful}
        found: dict[int, MentionTranslation] = {}
        for m in outcome.value.mentions:
            target = m.target.strip()
            if m.id not in asked or m.id in found or not target or target not in text:
                continue
            said = MentionTranslation(
                id=m.id, source=draft.src_entities[m.id].text, target=target,
                context=m.context.strip() or None,
            )  # fmt: skip
            if text.count(target) == 1 or said.pinned(text) is None:
                # one occurrence needs no context; one that does not pin it is no help
                said = said.model_copy(update={"context": None})
            found[m.id] = said
        old = {m.id: m for m in draft.mention_translations}
        if all(old.get(i) == m for i, m in found.items()):
            return draft
        mentions = tuple(
            found.get(i) or old[i] for i in range(len(draft.src_entities)) if i in found or i in old
        )
        return draft.model_copy(update={"mention_translations": mentions})


class Rewrite(Stage):
    """Re-translate the mentions in context, then rewrite the sentence to hold them."""

    name = "rewrite"
    reads = frozenset({"src_lang", "src_text", "src_entities", "tgt_lang", "tgt_text"})
    writes = frozenset({"tgt_text", "mention_translations", "reasons"})
    settings_section = "ladder"

    async def run(self, draft: ParallelRecord, ctx: Context) -> ParallelRecord:
        inst = draft.source_instance()
        text = draft.tgt_text or ""
        if not inst.entities or not text:
            return draft
        got = await translate_mentions(
            ctx.llm, inst, draft.tgt_lang, model=ctx.model, tgt_text=text
        )
        if len(got) < len(inst.entities):
            return draft
        wanted = [got[i] for i in range(len(inst.entities))]
        outcome = await ctx.llm.ask(
            Question(
                prompt=REWRITE_V2_PROMPT,
                reply_model=RewriteReply,
                values={
                    **prompt_names(draft.src_lang, draft.tgt_lang),
                    "source": draft.src_text,
                    "target": text,
                    "mentions": json.dumps(wanted, ensure_ascii=False),
                },
                max_tokens=max(64, 3 * len(text)),
                max_reasks=1,
            ),
            model=ctx.model,
        )
        new = (outcome.value.translation or "").strip() if outcome.value is not None else ""
        if not new or new == text:
            return draft
        mentions = tuple(
            MentionTranslation(id=i, source=e.text, target=got[i])
            for i, e in enumerate(inst.entities)
        )
        # the reply's extra entity belonged to the sentence now replaced
        reasons = tuple(r for r in draft.reasons if r is not Reason.REPLY_EXTRA_ENTITIES)
        return draft.model_copy(
            update={"tgt_text": new, "mention_translations": mentions, "reasons": reasons}
        )


# -- the loop -------------------------------------------------------------------------------

_DOWNSTREAM = ("tgt_entities", "unprojected", "back_translation", "repair_steps", "scores")


def _restart(draft: ParallelRecord, keep_from: tuple[str, ...]) -> ParallelRecord:
    """``draft`` as it stood after translation: what the later stages wrote is cleared
    (they run again from scratch), reasons kept only where a stage in ``keep_from`` gave
    them."""
    owners = draft.reason_stages or {}
    reasons = tuple(r for r in draft.reasons if owners.get(r.value) in keep_from)
    return draft.model_copy(
        update={
            "tgt_entities": (),
            "unprojected": (),
            "back_translation": None,
            "repair_steps": (),
            "scores": {},
            "status": Status.REVIEW,
            "reasons": reasons,
            "reason_stages": {r.value: owners[r.value] for r in reasons},
        }
    )


@dataclass
class _Climb:
    """One pair's climb: the best draft so far, its history and its budget."""

    best: ParallelRecord
    llm: CountingLLM
    budget: int
    stats: LadderStats | None
    steps: list[str] = field(default_factory=list)

    def fits(self, rung: str) -> bool:
        return self.llm.asked + _COST[rung] <= self.budget

    async def measure(self, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
        usage = Usage()
        before = self.llm.asked
        result = await count_usage(usage, work())
        return result, usage, self.llm.asked - before

    def keep(self, rung: str, candidate: ParallelRecord | None, usage: Usage, asked: int,
             detail: str = "") -> bool:  # fmt: skip
        if candidate is None:
            outcome = "no_answer"
        elif _rank(candidate) < _rank(self.best):
            outcome = "better" if doubts(candidate) else "fixed"
            self.best = candidate
        else:
            outcome = "failed"
        self.steps.append(f"ladder:{rung}:{outcome}" + (f":{detail}" if detail else ""))
        if self.stats is not None:
            self.stats.add(rung, outcome, usage, asked)
        return outcome in ("fixed", "better")


async def _in_translation(climb: _Climb, downstream: tuple[Stage, ...], ctx: Context) -> None:
    """``evidence`` then ``rewrite`` on the best draft, while they apply and fit."""
    for rung, stage in (("evidence", Evidence()), ("rewrite", Rewrite())):
        found = doubts(climb.best)
        if not found:
            return
        if rung == "evidence" and not (found & ENTITY_DOUBTS):
            continue
        if rung == "rewrite" and not (found & (NAME_DOUBTS | ENTITY_DOUBTS)):
            continue
        if not climb.fits(rung):
            climb.steps.append(f"ladder:{rung}:budget")
            continue
        base = climb.best

        async def work(stage: Stage = stage, base: ParallelRecord = base) -> ParallelRecord | None:
            changed = await run_stage(stage, base, ctx)
            if changed is base:
                return None
            return await run_stages(_restart(changed, ("translate", "rewrite")), downstream, ctx)

        candidate, usage, asked = await climb.measure(work)
        detail = ""
        if rung == "evidence" and candidate is not None:
            old = {m.id: m for m in base.mention_translations}
            detail = ",".join(
                str(m.id) for m in candidate.mention_translations if old.get(m.id) != m
            )
        climb.keep(rung, candidate, usage, asked, detail)


async def climb(
    draft: ParallelRecord,
    translate: Translate,
    downstream: tuple[Stage, ...],
    ctx: Context,
    stats: LadderStats | None = None,
) -> ParallelRecord:
    """Climb the rungs for an assessed ``draft`` in doubt; the best state reached, with
    the rungs tried on its ``repair_steps`` (``ladder:review`` when people must look)."""
    ls = ctx.settings.ladder
    if not ls.enabled or not doubts(draft):
        return draft
    llm = ctx.llm if isinstance(ctx.llm, CountingLLM) else CountingLLM(ctx.llm)
    ctx = replace(ctx, llm=llm)
    state = _Climb(draft, llm, ls.max_requests_per_pair, stats)
    if stats is not None:
        stats.pairs_climbed += 1
    await _in_translation(state, downstream, ctx)
    sources: list[tuple[str, Context]] = [
        ("fresh", replace(ctx, attempt=2)),
    ]
    fallback = ctx.settings.llm_fallback_model
    if fallback and fallback != llm.model:
        sources.append(("fallback", replace(ctx, model=fallback, attempt=2)))
    for rung, sctx in sources:
        if not doubts(state.best):
            break
        if not state.fits(rung):
            state.steps.append(f"ladder:{rung}:budget")
            continue
        base = state.best
        sctx = replace(
            sctx,
            rejected=base.tgt_text or "",
            problems=tuple(r.value for r in base.reasons if r in FIXABLE),
        )

        async def work(sctx: Context = sctx, base: ParallelRecord = base) -> ParallelRecord | None:
            start = _restart(base, ())
            start = start.model_copy(
                update={"tgt_text": None, "mention_translations": (), "raw_reply": None}
            )
            translated = await run_stage(translate, start, sctx)
            if is_failed(translated):
                return None
            return await run_stages(translated, downstream, sctx)

        candidate, usage, asked = await state.measure(work)
        if state.keep(rung, candidate, usage, asked):
            await _in_translation(state, downstream, sctx)
    best = state.best
    steps = list(best.repair_steps) + state.steps
    if doubts(best) and best.status is Status.REVIEW:
        steps.append("ladder:review")
        if stats is not None:
            stats.pairs_to_review += 1
    return best.model_copy(update={"repair_steps": tuple(steps)})


def ladder_line(row: dict[str, int]) -> str:
    """One rung of a run summary in words: ``12 tried, 10 fixed, 24 requests, 9,100 tokens``;
    the ``review`` row: pairs handed to people with every rung spent."""
    if "pairs" in row and "tried" not in row:
        return f"{row['pairs']} pairs left to people"
    tokens = row.get("prompt_tokens", 0) + row.get("completion_tokens", 0)
    parts = [f"{row.get('tried', 0)} tried", f"{row.get('fixed', 0)} fixed"]
    if row.get("better"):
        parts.append(f"{row['better']} better")
    parts += [f"{row.get('requests', 0)} requests", f"{tokens:,} tokens"]
    return ", ".join(parts)
