"""A translator that answers from gold parallel pairs and makes realistic mistakes.

For tests and benchmarks of the quality stage: plugged into the loopback
``OpenAIServer`` (``OpenAIServer(responder=NoisyTranslator(pairs, ...))``), it answers
forward-translation requests (``translate.v1``) with the *human* translation and the
*gold* target mentions of a ``data/projection-dev`` pair, except that, at configurable
rates and from a seed, it injects one of these mistakes into the reply and records
which (``translator.mistakes[pair_id]``):

===================  ================================================================
kind                 what the reply gets wrong
===================  ================================================================
``extended``         one mention runs on into the next word (next characters in CJK)
``truncated``        one mention loses its last word (last characters)
``swapped``          the mentions of two entities are exchanged
``other_span``       one mention is another span of the translation of similar length
                     (spans holding numbers preferred when there are any)
``other_sentence``   the translation (and mentions) of a different sentence
``untranslated``     the source sentence and mentions, untranslated
``dropped_entity``   one entity left out of the translation; its mention still named
``wrong_variant``    Simplified Chinese where Traditional was asked, or the reverse
                     (only when the request names a variant: ``zh-Hant``/``zh-Hans``)
``extra_entity``     a name the source does not have, added to the translation (and
                     listed as an entity with a new id if ``list_extra``)
===================  ================================================================

Every other request is answered *truthfully* about the text it shows, as a good LLM
would: a back-translation (``backtranslate.v1``/``v2``) gives what the shown target
text says in the source language, and for each listed target mention what exactly those
words say (``source_form``); the repair prompts get the gold mention when the shown
translation holds it (else nothing), and a rewrite gets the gold translation when it
holds every requested mention. So a benchmark measures the pipeline's checks, not the
server.

How it answers, question by question (json_schema name of the request):

=============================  ======================================================
question                       answer
=============================  ======================================================
``TranslationReply``           gold translation and mentions, with the pair's drawn
                               mistake. The draw hashes ``seed`` and the pair id, so
                               a plain re-ask gets the same reply (as a model at
                               temperature 0 does); ``"attempt": k`` (k >= 2) with a
                               ``"rejected_translation"`` in the payload is another
                               question and draws anew (hash includes k); attempt 1
                               or no key is exactly the first draw
model ``strong_model``         the same, drawn at ``strong_rate`` (default 5%)
                               instead of ``mistake_rate`` (hash includes the model)
``EntityBackTranslationReply`` what the shown text says in the source language and,
(``BackTranslationReply``)     per listed mention, what exactly those words say; with
                               ``paraphrase_rate`` > 0, that share of (pair, entity)
                               correct read-backs is worded as real models word it
                               (``PARAPHRASES``: "Madrid Community", "Shulman",
                               "Mr Barroso", "European Union" for "EU", "the
                               Commission"), recorded in ``paraphrased``
``RelocateReply``              per doubted entity id, the exact words of the shown
                               translation that are that entity ("" when it does not
                               hold it)
``_MentionReply``              the gold mention when the shown translation holds it
``_RewriteReply``              the gold translation when it holds every requested
                               mention, else the shown one
``_MentionsReply``             the gold mentions of the source sentence
=============================  ======================================================

Every answer but the forward translation is truthful whichever model is asked.
``mistakes[pair_id]`` is the first reply's mistake (default model, attempt 1);
``draws[(pair_id, "default"|"strong", attempt)]`` records every forward reply's.

Truthfulness without a translation model: every target text the translator hands out
is a ``View`` that knows what it says in the source language (``src_text``) and which
target spans are which source spans (``anchors``: the aligned entities). Words outside
the anchors map proportionally onto the source words between the same anchors. A span
that is exactly an entity's target mention reads as that entity's source mention;
anything more or less reads as more or less than it.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from parallelner.languages import convert_variant, zh_variant
from parallelner.records import Entity, Instance, ParallelRecord
from parallelner.testing.samples import GLOSS_GAP, read_projection_drafts, read_projection_pairs

__all__ = [
    "MISTAKES",
    "PARAPHRASES",
    "paraphrases",
    "GoldPair",
    "View",
    "Mistake",
    "NoisyTranslator",
    "load_gold_pairs",
    "source_form",
]

MISTAKES = (
    "extended",
    "truncated",
    "swapped",
    "other_span",
    "other_sentence",
    "untranslated",
    "dropped_entity",
    "wrong_variant",
    "extra_entity",
)

# one unit: a CJK character, a run of letters/digits, or one other non-space character
_HAN = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003ffff"
_UNIT = re.compile(rf"[{_HAN}]|[^\W_{_HAN}]+|\S")
_CJK = re.compile(rf"[{_HAN}]")
_WORD = re.compile(r"[^\W_]")


def _context(text: str, start: int, end: int) -> str:
    """The words around ``text[start:end]``, one more on each side until they occur once
    (characters for Chinese), as a model copies them to say which occurrence it means."""
    cjk = _is_cjk(text[start:end])
    s, e = start, end
    while text.count(text[s:e]) > 1 and (s > 0 or e < len(text)):
        if cjk:
            s, e = max(0, s - 1), min(len(text), e + 1)
            continue
        left = text.rfind(" ", 0, max(0, s - 1))
        right = text.find(" ", min(len(text), e + 1))
        s, e = left + 1, len(text) if right == -1 else right
    return text[s:e]


def _is_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@dataclass(frozen=True)
class GoldPair:
    """One projection-dev pair: the source instance, the human translation, gold spans.

    ``mapping`` gives each source entity index the index of its gold target entity
    (``testing.samples.match_gold``: a name written alike first, then by label in
    order); ``gold`` holds the matched spans only (a span of a name the source lacks is
    left out); ``glossed``: a bracketed gloss of a name was matched to a source entity of
    its own (the gloss did not write the source name alike, so ``match_gold`` could not
    tell it from a second name).
    """

    id: str
    src_lang: str
    tgt_lang: str
    src_text: str
    src_spans: tuple[tuple[int, int, str], ...]  # (start, end, label), sorted by start
    tgt_text: str
    gold: tuple[tuple[int, int, str], ...]  # sorted by start
    mapping: Mapping[int, int]
    glossed: bool = False

    @property
    def one_to_one(self) -> bool:
        """Every source entity has one gold span of its label, and no gloss annotated as
        a second entity (``米爾德里德（Mildred）`` is one entity in the sentence, not
        two)."""
        return (
            not self.glossed
            and len(self.src_spans) == len(self.gold)
            and sorted(self.mapping) == sorted(self.mapping.values()) == list(range(len(self.gold)))
        )

    def src_mention(self, i: int) -> str:
        s, e, _ = self.src_spans[i]
        return self.src_text[s:e]

    def gold_mention(self, k: int) -> str:
        s, e, _ = self.gold[k]
        return self.tgt_text[s:e]

    def instance(self) -> Instance:
        """The source side as the pipeline reads it (id: the pair id)."""
        return Instance(
            id=self.id,
            lang=self.src_lang,
            text=self.src_text,
            entities=tuple(
                Entity(start=s, end=e, label=label, text=self.src_text[s:e])
                for s, e, label in self.src_spans
            ),
            source_dataset="projection-dev",
        )

    @classmethod
    def from_draft(cls, d: ParallelRecord, glossed: bool = False) -> GoldPair:
        order = sorted(range(len(d.src_entities)), key=lambda i: d.src_entities[i].start)
        rank = {old: new for new, old in enumerate(order)}
        gold = sorted(d.tgt_entities, key=lambda e: (e.start, e.end))
        return cls(
            id=d.record_id,
            src_lang=d.src_lang,
            tgt_lang=d.tgt_lang,
            src_text=d.src_text,
            src_spans=tuple(
                (d.src_entities[i].start, d.src_entities[i].end, d.src_entities[i].label)
                for i in order
            ),
            tgt_text=d.tgt_text or "",
            gold=tuple((e.start, e.end, e.label) for e in gold),
            mapping={rank[e.source_index]: k for k, e in enumerate(gold)},
            glossed=glossed,
        )


def load_gold_pairs(paths: Iterable[Path | str]) -> list[GoldPair]:
    """Gold pairs from projection-dev JSONL files (``data/projection-dev/*.jsonl``)."""
    out = []
    for path in paths:
        for (_, pair), d in zip(
            read_projection_pairs(Path(path)), read_projection_drafts(Path(path)), strict=True
        ):
            gold = sorted(pair.get("gold", ()), key=lambda g: (g["start"], g["end"]))
            matched = {(e.start, e.end) for e in d.tgt_entities}
            glossed = any(
                a["label"] == b["label"]
                and (b["start"], b["end"]) in matched
                and GLOSS_GAP.fullmatch(d.tgt_text[a["end"] : b["start"]])
                for a, b in zip(gold, gold[1:], strict=False)
            )
            out.append(GoldPair.from_draft(d, glossed=bool(glossed)))
    return out


@dataclass(frozen=True)
class View:
    """A target text handed out, and what it truthfully says in the source language.

    ``anchors``: (tgt_start, tgt_end, src_start, src_end, entity) of aligned mentions,
    sorted by target start and not overlapping; ``entity`` is the pair's source entity
    index, or -1 for a name the pair's source does not have.
    """

    pair: GoldPair
    text: str
    src_text: str
    anchors: tuple[tuple[int, int, int, int, int], ...]


@dataclass(frozen=True)
class Mistake:
    """The mistake made in one pair's forward reply (``kind`` is one of MISTAKES)."""

    kind: str
    entity: int | None = None
    detail: str = ""


# --------------------------------------------------------------------------------------
# Truthful reading of a span of a view


def _gaps(view: View) -> list[tuple[int, int, int, int]]:
    """The stretches between anchors: (tgt_start, tgt_end, src_start, src_end)."""
    out, t0, s0 = [], 0, 0
    for ts, te, ss, se, _ in view.anchors:
        out.append((t0, ts, s0, ss))
        t0, s0 = te, se
    out.append((t0, len(view.text), s0, len(view.src_text)))
    return out


def _src_word_near(
    src: str, lo: int, hi: int, pos: float, equal_to: str | None = None
) -> tuple[int, int] | None:
    """The source word (unit) in [lo, hi) nearest to position ``pos`` (only words equal
    to ``equal_to``, case aside, when given)."""
    best: tuple[float, int, int] | None = None
    for m in _UNIT.finditer(src, lo, hi):
        if not _WORD.search(m.group()):
            continue
        if equal_to is not None and m.group().casefold() != equal_to.casefold():
            continue
        d = abs((m.start() + m.end()) / 2 - pos)
        if best is None or d < best[0]:
            best = (d, m.start(), m.end())
    return None if best is None else (best[1], best[2])


def source_form(view: View, start: int, end: int) -> str:
    """What the target span ``view.text[start:end]`` says in the source language.

    An exact anchor reads as its source mention. A part of an anchor reads as the same
    share of the source mention's characters; a word outside the anchors reads as the
    source word at the same relative position between the neighbouring anchors (or as
    itself, untranslated, when there is none). The answer is the source stretch from
    the first to the last of those pieces.
    """
    pieces: list[tuple[int, int]] = []
    kept: list[str] = []
    for ts, te, ss, se, _ in view.anchors:
        lo, hi = max(start, ts), min(end, te)
        if lo >= hi:
            continue
        if lo == ts and hi == te:
            pieces.append((ss, se))
        else:  # a part reads as a part: never the whole source mention
            part = view.text[lo:hi].strip()
            at = view.src_text.find(part, ss, se) if len(part) > 1 else -1
            if at != -1 and not _is_cjk(part):
                pieces.append((at, at + len(part)))  # a name kept as it is (Prodi)
                continue
            n = se - ss
            a = ss + round((lo - ts) / (te - ts) * n)
            b = ss + round((hi - ts) / (te - ts) * n)
            if b <= a:
                b = min(se, a + 1)
            if (a, b) == (ss, se):
                if n < 2:
                    kept.append(view.text[lo:hi])
                    continue
                a, b = (a, b - 1) if hi < te else (a + 1, b)
            pieces.append((a, b))
    for ts, te, ss, se in _gaps(view):
        for m in _UNIT.finditer(view.text, max(ts, start), min(te, end)):
            if m.start() < start or m.end() > end or not _WORD.search(m.group()):
                continue
            rel = ((m.start() + m.end()) / 2 - ts) / max(1, te - ts)
            same = None
            if not _is_cjk(m.group()) and len(m.group()) > 1:  # a word kept as it is
                same = _src_word_near(
                    view.src_text, 0, len(view.src_text), ss + rel * (se - ss), m.group()
                )
            word = same or _src_word_near(view.src_text, ss, se, ss + rel * (se - ss))
            if word is None:
                kept.append(m.group())
            else:
                pieces.append(word)
    if not pieces:
        return " ".join(kept)
    a, b = min(p[0] for p in pieces), max(p[1] for p in pieces)
    text = view.src_text[a:b].strip()
    return " ".join([text, *kept]) if kept else text


# --------------------------------------------------------------------------------------
# Chinese variants


_convert = convert_variant
_variant = zh_variant


def _convert_view(view: View, to: str) -> View:
    """The view with its target text converted piecewise (anchors stay exact)."""
    out, anchors, pos = [], [], 0
    for ts, te, ss, se, i in view.anchors:
        out.append(_convert(view.text[pos:ts], to))
        start = sum(map(len, out))
        out.append(_convert(view.text[ts:te], to))
        anchors.append((start, start + len(out[-1]), ss, se, i))
        pos = te
    out.append(_convert(view.text[pos:], to))
    return View(view.pair, "".join(out), view.src_text, tuple(anchors))


# --------------------------------------------------------------------------------------
# The translator


def _unit(seed: int, *parts: object) -> float:
    blob = ":".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") / 2**64


@dataclass
class NoisyTranslator:
    """Responder for ``OpenAIServer``: gold translations with injected mistakes.

    ``rates`` maps mistake kinds to their probability per pair (default: ``mistake_rate``
    spread evenly over ``MISTAKES``). A kind that cannot be made for a pair (one entity
    cannot be swapped) passes its share to the kinds that can, so the overall rate
    holds. Draws hash ``seed`` and the pair id: a re-ask gets the same reply.
    """

    pairs: Sequence[GoldPair]
    mistake_rate: float = 0.4
    seed: int = 0
    rates: Mapping[str, float] | None = None
    # extra_entity: also list the added name as an entity with a new id (a model handed
    # a list of ids rarely does; off, the name is only in the translation)
    list_extra: bool = False
    # a second model name (the fallback rung's): its replies err at ``strong_rate``
    strong_model: str = "strong-model"
    strong_rate: float = 0.05
    # share of (pair, entity) whose correct read-back is worded as real models word it
    # (``PARAPHRASES``); 0 reads every correct span back as its exact source mention
    paraphrase_rate: float = 0.0
    mistakes: dict[str, Mistake] = field(default_factory=dict)
    # every forward reply's mistake: (pair id, model, attempt) -> Mistake
    draws: dict[tuple[str, str, int], Mistake] = field(default_factory=dict)
    # (pair id, source entity index) -> the PARAPHRASES kind its correct read-back got
    paraphrased: dict[tuple[str, int], str] = field(default_factory=dict)
    _by_source: dict[tuple[str, str], GoldPair] = field(default_factory=dict, repr=False)
    _views: dict[str, View] = field(default_factory=dict, repr=False)
    _asked: dict[str, str] = field(default_factory=dict, repr=False)  # pair id -> tgt tag

    def __post_init__(self) -> None:
        if self.rates is None:
            self.rates = {k: self.mistake_rate / len(MISTAKES) for k in MISTAKES}
        unknown = set(self.rates) - set(MISTAKES)
        if unknown:
            raise ValueError(f"unknown mistake kinds {sorted(unknown)}; known: {MISTAKES}")
        if sum(self.rates.values()) > 1 + 1e-9:
            raise ValueError("mistake rates add up to more than 1")
        for p in self.pairs:
            self._by_source[(p.src_text, p.tgt_lang.split("-")[0])] = p

    # -- the OpenAIServer hook -------------------------------------------------------

    def __call__(self, body: dict[str, Any], chat: bool, text: str) -> tuple[str, str] | None:
        """Reply content for one request, or None to let the server answer as usual."""
        if not chat:
            return None
        name = body.get("response_format", {}).get("json_schema", {}).get("name", "")
        payload = _payload(text)
        if name == "TranslationReply" and payload:
            return self._forward(payload, str(body.get("model", ""))), "stop"
        if name in ("BackTranslationReply", "EntityBackTranslationReply") and payload:
            return self._backward(payload), "stop"
        if name == "_MentionReply":
            return self._locate(text), "stop"
        if name == "_RewriteReply":
            return self._rewrite(text), "stop"
        if name == "_MentionsReply":
            return self._mentions(text), "stop"
        if name == "RelocateReply" and payload:
            return self._relocate(payload), "stop"
        return None

    # -- forward translation ---------------------------------------------------------

    def _pair(self, src_text: str, tgt_lang: str) -> GoldPair | None:
        return self._by_source.get((src_text, tgt_lang.split("-")[0]))

    def _base_view(self, p: GoldPair, tgt_lang: str) -> View:
        anchors = tuple(
            sorted(
                (p.gold[k][0], p.gold[k][1], p.src_spans[i][0], p.src_spans[i][1], i)
                for i, k in p.mapping.items()
            )
        )
        view = View(p, p.tgt_text, p.src_text, anchors)
        want = _variant(tgt_lang)
        if want is not None:  # answer in the variant asked for
            view = _convert_view(view, want)
        return self._register(view)

    def gold_view(self, p: GoldPair, tgt_lang: str) -> View:
        """The clean translation of ``p`` in the variant ``tgt_lang`` asks for."""
        return self._base_view(p, tgt_lang)

    def _register(self, view: View) -> View:
        self._views.setdefault(view.text, view)
        return self._views[view.text]

    def _mentions_of(self, view: View) -> dict[int, str]:
        """Source entity index -> its target mention in the view (source text if none)."""
        p = view.pair
        by_ent = {i: (ts, te) for ts, te, _, _, i in view.anchors}
        out = {}
        for i in range(len(p.src_spans)):
            span = by_ent.get(i)
            out[i] = view.text[span[0] : span[1]] if span else p.src_mention(i)
        return out

    def draw(
        self, p: GoldPair, tgt_lang: str, salt: tuple[str, ...] = (), strong: bool = False
    ) -> str | None:
        """The mistake kind for pair ``p`` (None: a clean reply). ``salt`` makes it
        another question (a fresh attempt, the strong model); ``strong`` draws at
        ``strong_rate`` in all."""
        assert self.rates is not None
        u = _unit(self.seed, p.id, *salt, "mistake")
        total = sum(self.rates.values())
        if strong:  # the same mix of kinds, at the strong model's rate
            u = u / min(1.0, self.strong_rate) * total if self.strong_rate > 0 else 2.0
        if u >= total:
            return None
        able = [k for k in MISTAKES if self.rates.get(k) and self._applicable(k, p, tgt_lang)]
        if not able:
            return None
        mass = sum(self.rates[k] for k in able)
        x = u / total * mass
        for k in able:
            x -= self.rates[k]
            if x < 0:
                return k
        return able[-1]

    def _applicable(self, kind: str, p: GoldPair, tgt_lang: str) -> bool:
        mapped = list(p.mapping)
        if kind in ("extended", "truncated", "other_span"):
            return bool(mapped)
        if kind == "swapped":
            texts = {p.gold_mention(p.mapping[i]) for i in mapped}
            return len(texts) >= 2
        if kind == "dropped_entity":
            return any(p.tgt_text.count(p.gold_mention(p.mapping[i])) == 1 for i in mapped)
        if kind == "wrong_variant":
            return _variant(tgt_lang) is not None
        if kind == "extra_entity":
            return any(
                q is not p and any(c.isupper() for c in q.src_mention(i))
                for q in self.pairs
                for i in q.mapping
            )
        return True

    def _forward(self, payload: dict[str, Any], model: str = "") -> str:
        src = str(payload.get("sentence", ""))
        tgt_lang = str(payload.get("target_language", ""))
        n = len(payload.get("entities") or [])
        p = self._pair(src, tgt_lang)
        if p is None:  # not a gold pair: echo, as a broken model would
            return json.dumps({"translation": src, "entities": []}, ensure_ascii=False)
        # the same question gets the same reply (a model at temperature 0); a fresh
        # attempt (another question: it shows the rejected translation) or the strong
        # model draws anew
        attempt = payload.get("attempt")
        fresh = (
            isinstance(attempt, int)
            and not isinstance(attempt, bool)
            and attempt >= 2
            and isinstance(payload.get("rejected_translation"), str)
        )
        strong = bool(model) and model == self.strong_model
        salt = ((model,) if strong else ()) + ((f"attempt:{attempt}",) if fresh else ())
        view = self._base_view(p, tgt_lang)
        kind = self.draw(p, tgt_lang, salt, strong)
        mentions = self._mentions_of(view)
        extra: list[dict[str, Any]] = []
        mistake = Mistake("none")
        if kind is not None:
            view, mentions, extra, mistake = self._inject(kind, p, view, mentions, tgt_lang, salt)
        if not salt:  # the first reply's mistake, as benchmarks count them
            self.mistakes[p.id] = mistake
        self.draws[(p.id, "strong" if strong else "default", attempt if fresh else 1)] = mistake
        self._asked[p.id] = tgt_lang
        ents = [{"id": i, "source": p.src_mention(i), "target": mentions[i]} for i in range(n)]
        return json.dumps({"translation": view.text, "entities": ents + extra}, ensure_ascii=False)

    def _pick(
        self, p: GoldPair, tag: str, options: Sequence[Any], salt: tuple[str, ...] = ()
    ) -> Any:
        return options[int(_unit(self.seed, p.id, *salt, tag) * len(options))]

    def _inject(
        self,
        kind: str,
        p: GoldPair,
        view: View,
        mentions: dict[int, str],
        tgt_lang: str,
        salt: tuple[str, ...] = (),
    ) -> tuple[View, dict[int, str], list[dict[str, Any]], Mistake]:
        anchor_of = {i: (ts, te) for ts, te, _, _, i in view.anchors}
        mapped = sorted(p.mapping)

        def pick(tag: str, options: Sequence[Any]) -> Any:
            return self._pick(p, tag, options, salt)

        def span(i: int) -> tuple[int, int]:
            return anchor_of[i]

        text = view.text
        if kind == "extended":
            i = pick("entity", mapped)
            s, e = span(i)
            ns, ne = _extend(text, s, e)
            mentions[i] = text[ns:ne]
            return view, mentions, [], Mistake(kind, i, mentions[i])
        if kind == "truncated":
            i = pick("entity", mapped)
            s, e = span(i)
            mentions[i] = _truncate(text[s:e])
            return view, mentions, [], Mistake(kind, i, mentions[i])
        if kind == "swapped":
            pairs = [(a, b) for a in mapped for b in mapped if a < b and mentions[a] != mentions[b]]
            a, b = pick("entity", pairs)
            mentions[a], mentions[b] = mentions[b], mentions[a]
            return view, mentions, [], Mistake(kind, a, f"{a}<->{b}")
        if kind == "other_span":
            i = pick("entity", mapped)
            s, e = span(i)
            spans = _other_spans(text, s, e, [(a[0], a[1]) for a in view.anchors])
            if not spans:  # nothing of similar length: any other unit
                spans = [
                    (m.start(), m.end())
                    for m in _UNIT.finditer(text)
                    if _WORD.search(m.group()) and (m.end() <= s or m.start() >= e)
                ] or [(s, e)]
            numeric = [x for x in spans if any(c.isdigit() for c in text[x[0] : x[1]])]
            if numeric and _unit(self.seed, p.id, *salt, "numeric") < 0.5:
                spans = numeric
            a, b = pick("span", spans)
            mentions[i] = text[a:b]
            return view, mentions, [], Mistake(kind, i, mentions[i])
        if kind == "other_sentence":
            others = [q for q in self.pairs if q is not p and q.tgt_lang == p.tgt_lang]
            q = pick("other", others)
            other = self._base_view(q, tgt_lang)
            theirs = self._mentions_of(other)
            got = {
                i: (theirs[i % len(theirs)] if theirs else other.text[:4])
                for i in range(len(p.src_spans))
            }
            return other, got, [], Mistake(kind, None, q.id)
        if kind == "untranslated":
            anchors = tuple((s, e, s, e, i) for i, (s, e, _) in enumerate(p.src_spans))
            v = self._register(View(p, p.src_text, p.src_text, anchors))
            got = {i: p.src_mention(i) for i in range(len(p.src_spans))}
            return v, got, [], Mistake(kind)
        if kind == "dropped_entity":
            options = [i for i in mapped if text.count(mentions[i]) == 1]
            i = pick("entity", options)
            s, e = span(i)
            cut_s, cut_e = s, e
            if not _is_cjk(text[s:e]):  # take one neighbouring space with it
                if cut_e < len(text) and text[cut_e] == " ":
                    cut_e += 1
                elif cut_s > 0 and text[cut_s - 1] == " ":
                    cut_s -= 1
            ss, se = p.src_spans[i][:2]
            src_cut_s, src_cut_e = ss, se
            if src_cut_e < len(p.src_text) and p.src_text[src_cut_e] == " ":
                src_cut_e += 1
            new_text = text[:cut_s] + text[cut_e:]
            new_src = p.src_text[:src_cut_s] + p.src_text[src_cut_e:]
            dt, ds = cut_e - cut_s, src_cut_e - src_cut_s
            anchors = tuple(
                (
                    a if a < cut_s else a - dt,
                    b if a < cut_s else b - dt,
                    c if c < src_cut_s else c - ds,
                    d if c < src_cut_s else d - ds,
                    j,
                )
                for a, b, c, d, j in view.anchors
                if j != i
            )
            v = self._register(View(p, new_text, new_src, anchors))
            return v, mentions, [], Mistake(kind, i, mentions[i])
        if kind == "wrong_variant":
            want = _variant(tgt_lang)
            v = self._register(_convert_view(view, "hans" if want == "hant" else "hant"))
            return v, self._mentions_of(v), [], Mistake(kind)
        if kind == "extra_entity":
            # a name: an English mention with a capital (not "millennium bug")
            donors = [
                (q, k)
                for q in self.pairs
                if q is not p
                for k in q.mapping
                if any(c.isupper() for c in q.src_mention(k))
            ]
            q, i = pick("donor", donors)
            k = q.mapping[i]
            name, src_name = q.gold_mention(k), q.src_mention(i)
            if _variant(tgt_lang):
                name = _convert(name, _variant(tgt_lang) or "hant")
            v = self._register(_insert_name(view, name, src_name))
            extra = [{"id": len(p.src_spans), "source": src_name, "target": name}]
            return (
                v,
                self._mentions_of(v),
                extra if self.list_extra else [],
                Mistake(kind, None, name),
            )
        raise ValueError(f"unknown mistake kind {kind!r}")

    # -- truthful answers ------------------------------------------------------------

    def _view_for(self, text: str) -> View | None:
        view = self._views.get(text)
        if view is None:  # a text we never handed out: the gold pair it is closest to
            from rapidfuzz import fuzz

            best = max(self.pairs, key=lambda q: fuzz.ratio(q.tgt_text, text), default=None)
            if best is None:
                return None
            view = View(best, text, best.src_text, ())
        return view

    def _backward(self, payload: dict[str, Any]) -> str:
        text = str(payload.get("sentence", ""))
        view = self._view_for(text)
        reply: dict[str, Any] = {"translation": view.src_text if view else text}
        if "mentions" in payload:
            out, cursor = [], 0
            for m in payload.get("mentions") or []:  # listed in the order they occur
                mention = str(m.get("text", ""))
                start = text.find(mention, cursor) if mention else -1
                if start == -1 and mention:
                    start = text.find(mention)
                if view is None or start == -1:
                    form = mention
                else:
                    cursor = start + len(mention)  # projected spans never overlap
                    form = source_form(view, start, start + len(mention))
                    if self.paraphrase_rate > 0:
                        form = self._worded(view, start, start + len(mention), form)
                out.append({"id": m.get("id"), "translation": form})
            reply["mentions"] = out
        return json.dumps(reply, ensure_ascii=False)

    def _worded(self, view: View, start: int, end: int, form: str) -> str:
        """A correct read-back (an entity's exact span, read as its source mention) as a
        real model may word it: with ``paraphrase_rate`` per (pair, entity), one of the
        ``PARAPHRASES`` that apply, chosen from the seed and recorded in ``paraphrased``."""
        p = view.pair
        for ts, te, _, _, i in view.anchors:
            if (ts, te) != (start, end) or i < 0 or form != p.src_mention(i):
                continue
            if _unit(self.seed, p.id, i, "paraphrase") >= self.paraphrase_rate:
                return form
            options = paraphrases(form, p.src_spans[i][2])
            if not options:
                return form
            kinds = sorted(options)
            kind = kinds[int(_unit(self.seed, p.id, i, "paraphrase-kind") * len(kinds))]
            self.paraphrased[(p.id, i)] = kind
            return options[kind]
        return form

    def _relocate(self, payload: dict[str, Any]) -> str:
        """``RelocateReply``: for each doubted entity, the exact words of the shown
        translation that are that entity ("" when it does not hold it)."""
        shown = str(payload.get("translation", ""))
        view = self._views.get(shown)
        src = str(payload.get("source_sentence", ""))
        if view is None or view.pair.src_text != src:  # another sentence: nothing of ours
            view = None
        out = []
        for d in payload.get("doubts") or []:
            if not isinstance(d, dict) or not isinstance(d.get("id"), int):
                continue
            answer, context = "", ""
            if view is not None:
                p = view.pair
                i, said = d["id"], str(d.get("source_mention", ""))
                if not (0 <= i < len(p.src_spans)) or (said and p.src_mention(i) != said):
                    i = next((j for j in range(len(p.src_spans)) if p.src_mention(j) == said), -1)
                for ts, te, _, _, j in view.anchors:
                    if j == i >= 0:
                        answer = view.text[ts:te]
                        if view.text.count(answer) > 1:
                            context = _context(view.text, ts, te)
            out.append({"id": d["id"], "target": answer, "context": context})
        return json.dumps({"mentions": out}, ensure_ascii=False)

    def _locate(self, text: str) -> str:
        fields = _fields(text, ("sentence", "translation", "Mention"))
        view = self._view_for(fields.get("translation", ""))
        answer = ""
        if view is not None:
            p = view.pair
            by_ent = {i: (ts, te) for ts, te, _, _, i in view.anchors}
            for i in range(len(p.src_spans)):
                if p.src_mention(i) == fields.get("Mention") and i in by_ent:
                    ts, te = by_ent[i]
                    answer = view.text[ts:te]
                    break
        return json.dumps({"mention": answer}, ensure_ascii=False)

    def _rewrite(self, text: str) -> str:
        fields = _fields(text, ("sentence", "translation", "verbatim"))
        shown = fields.get("translation", "")
        view = self._view_for(shown)
        try:
            wanted = json.loads(fields.get("verbatim", "[]"))
        except json.JSONDecodeError:
            wanted = []
        answer = shown
        if view is not None:
            tag = self._asked.get(view.pair.id, view.pair.tgt_lang)
            gold = self._base_view(view.pair, tag).text
            if all(isinstance(w, str) and w in gold for w in wanted):
                answer = gold
        return json.dumps({"translation": answer}, ensure_ascii=False)

    def _mentions(self, text: str) -> str:
        fields = _fields(text, ("sentence", "Mentions"))
        src = fields.get("sentence", "")
        p = next((q for q in self.pairs if q.src_text == src), None)
        out = []
        if p is not None:
            view = self._base_view(p, p.tgt_lang)
            for i, m in self._mentions_of(view).items():
                out.append({"id": i, "target": m})
        return json.dumps({"mentions": out}, ensure_ascii=False)


# --------------------------------------------------------------------------------------
# Correct read-backs, worded as real models word them

PARAPHRASES = ("word_order", "transliteration", "title", "acronym", "article")

# acronyms and their English expansions, both ways
_ACRONYMS = {
    "EU": "European Union",
    "UK": "United Kingdom",
    "US": "United States",
    "UN": "United Nations",
    "EP": "European Parliament",
    "EC": "European Commission",
    "ECB": "European Central Bank",
    "NATO": "North Atlantic Treaty Organization",
    "WTO": "World Trade Organization",
    "IMF": "International Monetary Fund",
    "CEN": "European Committee for Standardization",  # a French acronym
}
_EXPANSIONS = {v: k for k, v in _ACRONYMS.items()}
_TITLES = ("Mr", "Mrs", "Ms", "Dr", "President", "Commissioner", "Mr.", "Mrs.", "Dr.")
# spelling alternations of transliterated names (Hillary/Hilary, Schulman/Shulman)
_SPELLINGS = (
    ("sch", "sh"), ("ph", "f"), ("ck", "k"), ("ll", "l"), ("ss", "s"), ("tt", "t"),
    ("ou", "u"), ("y", "i"), ("w", "v"), ("ai", "ei"), ("c", "k"), ("l", "ll"), ("n", "nn"),
)  # fmt: skip


def _respell(name: str) -> str | None:
    """``name`` with one spelling alternation applied to its longest word, or None."""
    words = name.split(" ")
    order = sorted(range(len(words)), key=lambda k: -len(words[k]))
    for k in order:
        w = words[k]
        if len(w) < 3 or not w[0].isupper() or not w.isalpha():
            continue
        for a, b in _SPELLINGS:
            # a single letter never first (Cox stays C-), nor "c" before e/i (soft)
            at = w.lower().find(a, 0 if len(a) > 1 else 1)
            if at == -1 or (len(a) == 1 and a == b[:1] and w[at + 1 : at + 2] == a):
                continue
            if a == "c" and w[at + 1 : at + 2].lower() in ("e", "i", "h", "k"):
                continue
            new = w[:at] + (b.capitalize() if at == 0 else b) + w[at + len(a) :]
            return " ".join([*words[:k], new, *words[k + 1 :]])
    return None


def paraphrases(mention: str, label: str) -> dict[str, str]:
    """The ways (``PARAPHRASES``) a model may word a correct read-back of ``mention``:
    another word order ("Madrid Community"), a transliteration variant ("Shulman"), a
    title added or dropped ("Mr Barroso"), an acronym expanded or contracted, an article
    added ("the Commission")."""
    out: dict[str, str] = {}
    m = re.fullmatch(r"([A-Z][\w-]*) of (?:the )?([A-Z][\w-]*)", mention)
    if m:
        out["word_order"] = f"{m.group(2)} {m.group(1)}"
    if label == "PER" or label == "LOC":
        spelled = _respell(mention)
        if spelled and spelled != mention:
            out["transliteration"] = spelled
    first, _, rest = mention.partition(" ")
    if first in _TITLES and rest:
        out["title"] = rest
    elif label == "PER" and mention[:1].isupper():
        title = "President" if len(mention) % 2 else "Mr"
        out["title"] = f"{title} {mention}"
    if mention in _ACRONYMS:
        out["acronym"] = _ACRONYMS[mention]
    elif mention in _EXPANSIONS:
        out["acronym"] = _EXPANSIONS[mention]
    if label != "PER" and not re.match(r"(?i)(the|a|an) ", mention) and mention[:1].isalpha():
        out["article"] = "the " + mention
    return out


# --------------------------------------------------------------------------------------
# helpers


def _payload(text: str) -> dict[str, Any]:
    try:
        value = json.JSONDecoder().raw_decode(text, text.index("{"))[0]
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _fields(text: str, keys: Sequence[str]) -> dict[str, str]:
    """``Label: value`` lines of a plain-text prompt, by a word of their label."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        label, sep, value = line.partition(": ")
        if not sep:
            continue
        for k in keys:
            if k in label and k not in out:
                out[k] = value
    return out


def _extend(text: str, s: int, e: int) -> tuple[int, int]:
    """The span run on into the next word (next two CJK characters); at the end of the
    sentence, into the previous one."""
    if _is_cjk(text[s:e]):
        after = [m for m in _UNIT.finditer(text, e) if _CJK.fullmatch(m.group())][:2]
        if after and after[0].start() == e:
            return s, after[-1].end() if after[-1].start() == e + 1 else after[0].end()
        before = [m for m in _UNIT.finditer(text, 0, s) if _CJK.fullmatch(m.group())]
        if before and before[-1].end() == s:
            return before[-1].start(), e
    words_after = [m for m in _UNIT.finditer(text, e) if _WORD.search(m.group())]
    if words_after:
        return s, words_after[0].end()
    words_before = [m for m in _UNIT.finditer(text, 0, s) if _WORD.search(m.group())]
    if words_before:
        return words_before[-1].start(), e
    return s, min(len(text), e + 1)


def _truncate(mention: str) -> str:
    """The mention without its last word (last CJK character, last letters)."""
    if _is_cjk(mention) and len(mention) >= 2:
        return mention[:-1]
    words = mention.split(" ")
    if len(words) >= 2:
        return " ".join(words[:-1])
    cut = max(1, min(3, len(mention) // 3))
    return mention[:-cut] if len(mention) > cut else mention


def _other_spans(
    text: str, s: int, e: int, taken: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Unit-aligned spans of similar length that overlap no entity."""
    units = [m for m in _UNIT.finditer(text) if _WORD.search(m.group())]
    length = e - s
    out = []
    for a, ua in enumerate(units):
        for ub in units[a : a + 6]:
            lo, hi = ua.start(), ub.end()
            if not 0.5 * length <= hi - lo <= 1.5 * length + 2:
                continue
            if any(lo < te and ts < hi for ts, te in taken):
                continue
            out.append((lo, hi))
    return out


def _insert_name(view: View, name: str, src_name: str) -> View:
    """The view with ``name`` added before its final punctuation (and ``src_name`` in
    what it says)."""
    text, src = view.text, view.src_text

    def before_end(t: str) -> int:
        i = len(t.rstrip())
        while i > 0 and not _WORD.search(t[i - 1]) and not t[i - 1].isspace():
            i -= 1
        return len(t[:i].rstrip())

    cjk = _is_cjk(text)
    tp = before_end(text)
    sp = before_end(src)
    t_ins = name if cjk else " " + name
    s_ins = " " + src_name
    new_text = text[:tp] + t_ins + text[tp:]
    new_src = src[:sp] + s_ins + src[sp:]
    shift_t, shift_s = len(t_ins), len(s_ins)
    anchors = [
        (a if a < tp else a + shift_t, b if a < tp else b + shift_t,
         c if c < sp else c + shift_s, d if c < sp else d + shift_s, i)
        for a, b, c, d, i in view.anchors
    ]  # fmt: skip
    ts = tp + (0 if cjk else 1)
    anchors.append((ts, ts + len(name), sp + 1, sp + 1 + len(src_name), -1))
    return View(view.pair, new_text, new_src, tuple(sorted(anchors)))
