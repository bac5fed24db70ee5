"""Span projection: place every source entity in the target sentence (pure, no I/O).

The cascade, per entity, from the most to the least certain way of finding it:

1. ``exact``      the translated mention occurs verbatim (word boundaries respected);
2. ``normalized`` it occurs after normalisation (``normalize.normalize``: NFKC, case,
                  quotes, dashes, whitespace and spacing around punctuation);
3. ``fuzzy``      a window of whole target words (of single characters for CJK) is
                  similar to it: ``rapidfuzz.fuzz.ratio`` >= ``threshold``;
4. ``source_copy`` the source mention itself is found by 1-3 (names kept in Latin
                  script, numbers, acronyms);
5. otherwise the entity is listed as unprojected with a reason, for the repair ladder.

With ``mentions=None`` (no translation of the mentions, ``--llm none``) the source
mention is the query and its matches are reported as exact/normalized/fuzzy.

Assignment is global, not per entity, tier by tier from the most certain evidence to
the least: verbatim source mentions (observed, not guessed: a name kept as it is), then
exact translated mentions, normalised translated mentions, normalised source mentions,
fuzzy translated mentions, fuzzy source mentions. Within a tier entities go in source
order. So a fuzzy guess never takes a span that another entity matches exactly, and an
LLM's wrong guess (``Lynne`` -> ``lei``) does not win over the name found verbatim
(except a name in brackets right after its translation, ``卡塔拉諾（Catalano）``, a
gloss, and a name inside the translated mention found verbatim, ``Eon`` in
``Eon能源公司``: there the translated mention is the span). A
source match is reported as ``source_copy`` unless the translated mention is the source
string itself (then it is ``exact``/``normalized``/``fuzzy``). A target span is given to
at most one entity and output spans never overlap. When a string occurs several times,
the occurrence whose relative position in the target is closest to the entity's
relative position in the source wins, which keeps repeated mentions in source order.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from parallelner.align.normalize import Normalized, is_boundary, normalize
from parallelner.languages import script_of, script_share
from parallelner.reasons import Reason
from parallelner.records import Instance, ProjectedEntity, UnprojectedEntity

__all__ = [
    "Projection",
    "project_spans",
    "script_ok",
    "METHODS",
    "NORMALIZED_SCORE",
]

METHODS = (
    "exact",
    "normalized",
    "fuzzy",
    "source_copy",
    "repair_mention",
    "repair_rewrite",
    "repair_fallback",
)
NORMALIZED_SCORE = 0.95  # a normalised match is certain about the string, not the spelling

# One token: a run of space-delimited word characters, or one CJK character, or one
# other non-space character (punctuation).
_TOKEN = re.compile(r"[^\W_\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003ffff]+|\S")


@dataclass(frozen=True)
class Projection:
    """The result of projecting one instance: placed entities and the ones left out.

    ``ambiguous`` lists source indices that were placed although their string occurs
    more often in the target than in the source (placed by relative position).
    """

    entities: tuple[ProjectedEntity, ...]
    unprojected: tuple[UnprojectedEntity, ...]
    ambiguous: tuple[int, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every source entity has a span."""
        return not self.unprojected


def script_ok(text: str, lang: str) -> bool:
    """False when ``text`` is clearly not written in the script of ``lang``.

    Looser than ``languages.looks_like`` on purpose: a human translation is only refused
    when it has no CJK character at all for a CJK language, or fewer than half of its
    letters in the language's script otherwise (names in Latin script are common in
    every language). Text without letters passes.
    """
    share = script_share(text, lang)
    return share > 0 if script_of(lang) in ("CJK", "HANGUL") else share >= 0.5


# --------------------------------------------------------------------------------------
# Candidate search over one target sentence.


class _Target:
    """The target sentence prepared once: normalised form and token windows."""

    __slots__ = ("text", "norm", "tokens", "_nospace")

    def __init__(self, text: str):
        self.text = text
        self.norm: Normalized = normalize(text)
        self.tokens: list[tuple[int, int, bool]] | None = None  # (start, end, is_word)
        self._nospace: Normalized | None = None

    def nospace(self) -> Normalized:
        """The normalised text without any spaces (CJK text writes ``LindsayGay``)."""
        if self._nospace is None:
            keep = [i for i, c in enumerate(self.norm.text) if c != " "]
            self._nospace = Normalized(
                "".join(self.norm.text[i] for i in keep), tuple(self.norm.index[i] for i in keep)
            )
        return self._nospace

    def _bounded(self, s: int, e: int) -> bool:
        """True if the original span [s, e) cuts no word of a space-delimited script."""
        t = self.text
        return is_boundary(t[s - 1 : s], t[s : s + 1]) and is_boundary(t[e - 1 : e], t[e : e + 1])

    def token_spans(self) -> list[tuple[int, int, bool]]:
        if self.tokens is None:
            self.tokens = [
                (m.start(), m.end(), m.group()[0].isalnum())
                for m in _TOKEN.finditer(self.norm.text)
            ]
        return self.tokens

    def exact(self, query: str) -> list[tuple[int, int, float]]:
        """All verbatim occurrences of ``query`` that respect word boundaries."""
        out = []
        text = self.text
        i = text.find(query)
        while i >= 0:
            j = i + len(query)
            if self._bounded(i, j):
                out.append((i, j, 1.0))
            i = text.find(query, i + 1)
        return out

    def normalized(self, qnorm: str) -> list[tuple[int, int, float]]:
        """All occurrences of the normalised query, mapped back to original spans.

        When there are none, spaces are ignored altogether (``Lindsay Gay`` is written
        ``LindsayGay`` in Chinese text); word boundaries are checked in the original.
        """
        out = self._find(self.norm, qnorm)
        if not out and " " in qnorm:
            out = self._find(self.nospace(), qnorm.replace(" ", ""))
        return out

    def _find(self, norm: Normalized, q: str) -> list[tuple[int, int, float]]:
        out = []
        i = norm.text.find(q)
        while i >= 0:
            s, e = norm.span(i, i + len(q))
            if self._bounded(s, e):
                out.append((s, e, NORMALIZED_SCORE))
            i = norm.text.find(q, i + 1)
        return out

    def fuzzy(self, qnorm: str, threshold: float) -> list[tuple[int, int, float]]:
        """Windows of whole tokens whose normalised text scores >= ``threshold``.

        Only windows whose length could reach the threshold are scored: for
        ``ratio = 2M / (a + b)`` that means ``b`` in ``[a*t/(2-t), a*(2-t)/t]``.
        """
        if not qnorm or threshold <= 0:
            return []
        a = len(qnorm)
        lo = a * threshold / (2 - threshold)
        hi = a * (2 - threshold) / threshold
        cutoff = threshold * 100
        norm = self.norm.text
        toks = self.token_spans()
        out = []
        for i, (s, _, word_s) in enumerate(toks):
            if not word_s:
                continue
            for k in range(i, len(toks)):
                _, e, word_e = toks[k]
                length = e - s
                if length > hi:
                    break
                if length < lo or not word_e:
                    continue
                score = fuzz.ratio(qnorm, norm[s:e], score_cutoff=cutoff)
                if score:
                    os_, oe = self.norm.span(s, e)
                    out.append((os_, oe, round(score / 100, 4)))
        return out


@dataclass
class _Job:
    index: int
    label: str
    source_text: str
    rel: float  # relative position of the entity in the source sentence
    pin: tuple[int, int] | None = None  # the occurrence the model pointed at
    queries: list[tuple[str, str]] = field(default_factory=list)  # (kind, string)
    done: bool = False
    taken: bool = False  # had candidates, all taken by other entities


def _tiers(has_mentions: bool) -> list[tuple[str, str, str]]:
    """(query kind, level, method) in the order they are assigned."""
    if has_mentions:
        return [
            ("source", "exact", "source_copy"),
            ("mention", "exact", "exact"),
            ("mention", "normalized", "normalized"),
            ("source", "normalized", "source_copy"),
            ("mention", "fuzzy", "fuzzy"),
            ("source", "fuzzy", "source_copy"),
        ]
    return [
        ("source", "exact", "exact"),
        ("source", "normalized", "normalized"),
        ("source", "fuzzy", "fuzzy"),
    ]


_OPEN_GLOSS = re.compile(r"\s*[（(]\s*$")


def _is_gloss(tgt_text: str, start: int, mention: str) -> bool:
    """Whether the span at ``start`` sits in brackets right after ``mention``."""
    head = tgt_text[:start]
    m = _OPEN_GLOSS.search(head)
    return m is not None and head[: m.start()].endswith(mention) and mention != ""


def _overlaps(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    s, e = span
    return any(s < te and ts < e for ts, te in taken)


def project_spans(
    source: Instance,
    tgt_text: str,
    tgt_lang: str,
    mentions: Mapping[int, str] | None = None,
    *,
    threshold: float = 0.8,
    pins: Mapping[int, tuple[int, int]] | None = None,
) -> Projection:
    """Find the span of every source entity in ``tgt_text``.

    ``mentions`` maps a source entity index (its position in ``source.entities``) to its
    translated mention; ``None`` when only string matching of the source mention is
    possible. Every source entity ends either in ``entities`` (with method and score)
    or in ``unprojected`` (with a reason). ``threshold`` is the minimum fuzzy score
    (0..1); 0 turns fuzzy matching off. ``pins`` maps an entity index to the span the
    model pointed at with the words around it (``MentionTranslation.pinned``): where its
    mention occurs more than once, only that occurrence is a candidate.
    """
    ents = source.entities
    if not ents:
        return Projection((), ())

    def all_unprojected(reason: Reason) -> Projection:
        return Projection(
            (),
            tuple(
                UnprojectedEntity(source_index=i, label=e.label, text=e.text, reason=reason)
                for i, e in enumerate(ents)
            ),
        )

    if not tgt_text or not tgt_text.strip():
        return all_unprojected(Reason.EMPTY_TARGET)
    if not script_ok(tgt_text, tgt_lang):
        return all_unprojected(Reason.UNEXPECTED_SCRIPT)

    target = _Target(tgt_text)
    src_len = max(len(source.text), 1)
    tgt_len = len(tgt_text)
    has_mentions = mentions is not None
    jobs: list[_Job] = []
    for i, e in enumerate(ents):
        job = _Job(i, e.label, e.text, e.start / src_len, (pins or {}).get(i))
        if has_mentions:
            m = (mentions.get(i) or "").strip()
            if m:
                job.queries.append(("mention", m))
        job.queries.append(("source", e.text))
        jobs.append(job)

    # How many source entities share each query string: more target occurrences than
    # that makes the placement a choice by position (reported as ambiguous).
    share = Counter((k, q) for j in jobs for k, q in j.queries)

    placed: dict[int, ProjectedEntity] = {}
    ambiguous: list[int] = []
    taken: list[tuple[int, int]] = []
    norm_cache: dict[str, str] = {}

    for kind, level, tier_method in _tiers(has_mentions):
        for job in jobs:
            if job.done:
                continue
            query = next((q for k, q in job.queries if k == kind), None)
            if query is None:
                continue
            method = tier_method
            if kind == "source" and job.queries[0] == ("mention", query):
                method = level  # the translated mention is the source string itself
            if level == "exact":
                cands = target.exact(query)
            else:
                qn = norm_cache.get(query)
                if qn is None:
                    qn = norm_cache[query] = normalize(query).text
                if not qn:
                    continue
                if level == "normalized":
                    cands = target.normalized(qn)
                else:
                    cands = target.fuzzy(qn, threshold)
            if kind == "source" and cands and job.queries[0][0] == "mention":
                # "卡塔拉諾（Catalano）": the source name in brackets right after its
                # translation is a gloss; the translation is the mention
                # and a name inside the translated mention ("Eon" in "Eon能源公司") is
                # placed by the mention, which is the longer, observed span
                gloss = job.queries[0][1]
                inside = target.exact(gloss) if len(gloss) > len(query) else []
                cands = [
                    c
                    for c in cands
                    if not _is_gloss(tgt_text, c[0], gloss)
                    and not any(a <= c[0] and c[1] <= b for a, b, _ in inside)
                ]
            if job.pin is not None and job.pin in {(c[0], c[1]) for c in cands}:
                cands = [c for c in cands if (c[0], c[1]) == job.pin]
            if not cands:
                continue
            cands.sort(key=lambda c: (-c[2], abs(c[0] / tgt_len - job.rel), c[0]))
            free = [c for c in cands if not _overlaps((c[0], c[1]), taken)]
            if not free:
                job.taken = True
                continue
            s, e, score = free[0]
            best = [c for c in cands if c[2] == score]
            if len(best) > share[(kind, query)]:
                ambiguous.append(job.index)
            taken.append((s, e))
            placed[job.index] = ProjectedEntity(
                start=s,
                end=e,
                label=job.label,
                text=tgt_text[s:e],
                source_index=job.index,
                method=method,
                score=score,
            )
            job.done = True

    unprojected = []
    for job in jobs:
        if job.done:
            continue
        if job.taken:
            reason = Reason.SPAN_TAKEN
        elif all(len(q) > tgt_len for _, q in job.queries):
            reason = Reason.MENTION_TOO_LONG
        else:
            reason = Reason.NOT_FOUND
        unprojected.append(
            UnprojectedEntity(
                source_index=job.index, label=job.label, text=job.source_text, reason=reason
            )
        )
    return Projection(
        tuple(sorted(placed.values(), key=lambda p: (p.start, p.end))),
        tuple(unprojected),
        tuple(sorted(ambiguous)),
    )
