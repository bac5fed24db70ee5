"""The automatic quality checks: one small pure function per check.

Each check reads one ``ParallelRecord`` (and the quality settings) and returns a
``Finding`` (scores and reason codes) or ``None`` when it has nothing to say. A check
never changes the record and never decides its status: ``parallelner.quality.decide``
does that from the reasons. Checks that need a translation return ``None`` when there
is none; ``check_empty`` is the one that speaks for that case.

Score names written to ``ParallelRecord.scores`` (all floats):

=====================  ==============================================================
``tgt_script_share``   share of the target's word tokens in the target's script
``length_ratio``       (tgt chars / src chars) divided by the scripts' expected ratio
``copy_similarity``    0..1 similarity of target and source, entity mentions removed
``chrf``               sacrebleu sentence chrF of the back-translation vs the source
``bleu``               sacrebleu sentence BLEU of the same (``zh`` tokenizer for zh)
``entity_coverage``    share of source entities with a span in the target
``projection_min``     lowest projection score of the target spans
=====================  ==============================================================
"""

from __future__ import annotations

import hashlib
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from rapidfuzz import fuzz

from parallelner.languages import script_counts, script_of, script_token_share
from parallelner.quality.language_guess import function_word_guess, langdetect_guess, primary
from parallelner.reasons import Reason
from parallelner.records import ParallelRecord
from parallelner.settings import QualitySettings


def _import_sacrebleu() -> tuple[type, type]:
    """sacrebleu's metrics, without redis: sacrebleu imports portalocker, which imports
    redis (and with it opentelemetry and cryptography: 11 MB in each process) only to
    offer a Redis lock. Scoring takes no lock; redis imports normally afterwards."""
    block = "redis" not in sys.modules
    if block:
        sys.modules["redis"] = None  # type: ignore[assignment]  # `import redis` fails
    try:
        from sacrebleu.metrics import BLEU, CHRF
    finally:
        if block:
            del sys.modules["redis"]
    return BLEU, CHRF


BLEU, CHRF = _import_sacrebleu()

__all__ = [
    "Finding",
    "check_empty",
    "check_language",
    "check_untranslated",
    "check_length_ratio",
    "check_control_characters",
    "check_markup",
    "check_backtranslation",
    "check_entities",
    "check_duplicate",
    "clear_caches",
    "duplicate_key",
    "text_checks",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """What one check found: scores by name and reason codes (possibly none)."""

    scores: Mapping[str, float] = field(default_factory=dict)
    reasons: tuple[Reason, ...] = ()


def _has_text(record: ParallelRecord) -> bool:
    return record.tgt_text is not None and record.tgt_text.strip() != ""


# --- empty -----------------------------------------------------------------------------


def check_empty(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """EMPTY_TRANSLATION when there is no translation or only whitespace."""
    if _has_text(record):
        return None
    return Finding(reasons=(Reason.EMPTY_TRANSLATION,))


_SPACE = re.compile(r"\s+")


def _normalise(text: str) -> str:
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def _without_spans(text: str, spans: list[tuple[int, int]]) -> str:
    out, pos = [], 0
    for start, end in sorted(spans):
        if start >= pos:
            out.append(text[pos:start])
            pos = end
    out.append(text[pos:])
    return " ".join(out)


# --- language --------------------------------------------------------------------------

# Scripts used by one of our languages only: a clear share of them settles the language.
_OWN_SCRIPT = frozenset({"CJK", "HANGUL", "GREEK", "HEBREW", "THAI"})


_SCRIPT_LANG = {
    "CJK": "zh",
    "KANA": "ja",
    "HANGUL": "ko",
    "GREEK": "el",
    "HEBREW": "he",
    "THAI": "th",
}


def _best_guess(text: str, counts: Counter[str], q: QualitySettings) -> str | None:
    """The language ``text`` looks like: its dominant script, function words, langdetect."""
    script = counts.most_common(1)[0][0]
    if script in _SCRIPT_LANG:
        return "ja" if counts["KANA"] else _SCRIPT_LANG[script]
    words = function_word_guess(text)
    if words is not None:
        return words
    guesses = langdetect_guess(text, q.seed)
    return guesses[0][0] if guesses else None


def _language_verdict(
    text: str, lang: str, share: float, n_tokens: int, q: QualitySettings
) -> bool:
    """Whether ``text`` is in ``lang``, given the share of its tokens in ``lang``'s script.

    Below ``script_reject_share``: no. At or above ``script_accept_share`` the script
    agrees; then the language's own script (Chinese, Korean...) or its function words
    settle it, else langdetect, and rejection needs langdetect to agree with the function
    words, or be ``langdetect_reject_prob`` sure of a text of at least ``lang_min_words``
    words: short sentences ("Vielen Dank , Herr  .") get the benefit of the doubt. In
    between, only langdetect naming the language accepts.
    """
    lang = primary(lang)
    script = script_of(lang)
    if share < q.script_reject_share:
        return False
    guesses: tuple[tuple[str, float], ...]
    if share < q.script_accept_share:
        guesses = langdetect_guess(text, q.seed)
        return bool(guesses) and guesses[0][0] == lang
    if script in _OWN_SCRIPT and lang != "ja":  # Japanese shares Han: langdetect decides
        return True
    if script == "LATIN" and function_word_guess(text) == lang:
        return True
    # another language's function words count against only with two hits or more
    other = function_word_guess(text, min_hits=2) if script == "LATIN" else None
    if other is None and n_tokens < q.lang_min_words:
        return True  # langdetect is overconfident on a handful of words
    guesses = langdetect_guess(text, q.seed)
    if not guesses:
        return True  # nothing langdetect can read: nothing contradicts the language
    top, prob = guesses[0]
    if top == lang:
        return True
    return not (other is not None or prob >= q.langdetect_reject_prob)


def check_language(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """WRONG_LANGUAGE or SOURCE_LANGUAGE_COPY when the target is not in ``tgt_lang``.

    Script statistics and function words settle most texts without langdetect; langdetect
    (seeded) decides the rest (see ``_language_verdict``).
    """
    if not _has_text(record):
        return None
    # Names say little about the language ("Praetorius died in Laudenbach ."): judge the
    # text around the projected mentions.
    tgt_text = record.tgt_text or ""
    spans = [(e.start, e.end) for e in record.tgt_entities if e.end <= len(tgt_text)]
    text = _without_spans(tgt_text, spans) if spans else tgt_text
    counts = script_counts(text, unit="token")
    total = sum(counts.values())
    if total == 0:  # names, numbers and punctuation only: nothing contradicts the language
        return Finding(scores={"tgt_script_share": 1.0})
    share = script_token_share(text, record.tgt_lang, counts)
    scores = {"tgt_script_share": share}
    if primary(record.tgt_lang) == "zh" and counts["KANA"] > 0.05 * total:
        share = min(share, q.script_accept_share - 1e-9)  # kana: may be Japanese, ask
    if _language_verdict(text, record.tgt_lang, share, total, q):
        return Finding(scores=scores)
    copy = _best_guess(text, counts, q) == primary(record.src_lang)
    return Finding(scores, (Reason.SOURCE_LANGUAGE_COPY if copy else Reason.WRONG_LANGUAGE,))


# --- untranslated ----------------------------------------------------------------------

_LETTERS = re.compile(r"[^\W\d_]{2,}")


def check_untranslated(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """UNTRANSLATED when the target is (nearly) the source copied.

    Entity mentions are removed from both sides first: a sentence made only of names
    ("Barack Obama .") may rightly stay the same in a Latin-script target.
    """
    if not _has_text(record):
        return None
    tgt_text = record.tgt_text or ""
    src = _normalise(
        _without_spans(record.src_text, [(e.start, e.end) for e in record.src_entities])
    )
    tgt_spans = [(e.start, e.end) for e in record.tgt_entities if e.end <= len(tgt_text)]
    tgt = _normalise(_without_spans(tgt_text, tgt_spans))
    if not _LETTERS.search(src):  # nothing but names, numbers, punctuation
        return None
    similarity = fuzz.ratio(src, tgt) / 100.0
    scores = {"copy_similarity": similarity}
    if similarity >= q.max_copy_similarity:
        return Finding(scores, (Reason.UNTRANSLATED,))
    return Finding(scores)


# --- length ratio ------------------------------------------------------------------------


def _density(lang: str, q: QualitySettings) -> float:
    return q.script_density.get(script_of(lang), 1.0)


def check_length_ratio(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """LENGTH_RATIO when the target is implausibly short or long for the language pair.

    The character ratio is divided by the ratio the two scripts imply (Chinese needs
    about a third of the characters of English), so one pair of bounds fits every
    direction. Sources shorter than ``length_min_chars`` are skipped: too noisy.
    """
    if not _has_text(record):
        return None
    src_len = len(record.src_text.strip())
    if src_len < q.length_min_chars:
        return None
    tgt_len = len((record.tgt_text or "").strip())
    expected = _density(record.tgt_lang, q) / _density(record.src_lang, q)
    ratio = (tgt_len / src_len) / expected
    scores = {"length_ratio": ratio}
    if not q.length_ratio_min <= ratio <= q.length_ratio_max:
        return Finding(scores, (Reason.LENGTH_RATIO,))
    return Finding(scores)


# --- control characters and markup -----------------------------------------------------

# C0/C1 controls (newline and tab included: a sentence has none), soft hyphen, zero-width
# and bidi controls, BOM, private use, lone surrogates, and U+FFFD (a decoding accident).
# ZWNJ/ZWJ (U+200C/D) are left alone: scripts and emoji need them.
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u00ad\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\ufeff\ufffd"
    "\ue000-\uf8ff\ud800-\udfff]"
)


def check_control_characters(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """CONTROL_CHARACTERS when the target holds control or invisible characters.

    Characters already present in the source are not blamed on the translation.
    """
    if not _has_text(record):
        return None
    found = set(_CONTROL.findall(record.tgt_text or ""))
    if found - set(record.src_text):
        return Finding(reasons=(Reason.CONTROL_CHARACTERS,))
    return None


_MARKUP = re.compile(
    r"</?[A-Za-z][\w:-]*(?:\s[^<>]*)?/?>"  # <b>, </e1>, <span class=...>
    r"|```|\*\*|\[\[|\]\]|\{\{|\}\}"  # code fences, bold, wiki/template brackets
    r"|\[/?(?:PER|LOC|ORG|MISC|E\d+)\]"  # entity markers
    r"|\{\s*\"|\"\s*:\s*[\[{\"]"  # JSON fragments
    r"|^\s*(?:translation|translated text|target|译文|翻译)\s*[:：]",  # a label before the text
    re.IGNORECASE,
)


def check_markup(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """LEFTOVER_MARKUP when the target holds tags, code fences, JSON or entity markers
    that the source does not have."""
    if not _has_text(record):
        return None
    for match in _MARKUP.finditer(record.tgt_text or ""):
        if match.group(0) not in record.src_text:
            return Finding(reasons=(Reason.LEFTOVER_MARKUP,))
    return None


# --- back-translation ------------------------------------------------------------------

_CHRF = CHRF()
_BLEU = {
    "13a": BLEU(tokenize="13a", effective_order=True),
    "zh": BLEU(tokenize="zh", effective_order=True),
}


def clear_caches() -> None:
    """Empty sacrebleu's tokenizer caches: they keep up to 65,536 sentences each (with
    their tokens), and a sentence is scored once, so across shards they only hold
    memory (~1 KB a pair: 30 MB in a worker after 30,000 pairs). Within a shard they
    still spare the second tokenization of a string."""
    for name, module in list(sys.modules.items()):
        if not name.startswith("sacrebleu.tokenizers."):
            continue
        for obj in vars(module).values():
            call = vars(obj).get("__call__") if isinstance(obj, type) else None
            if hasattr(call, "cache_clear"):
                call.cache_clear()


def check_backtranslation(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """LOW_BACKTRANSLATION / BORDERLINE_BACKTRANSLATION from sentence chrF of the
    back-translation against the source (BLEU is recorded, not used to decide).

    No back-translation (disabled in ``translate.back_translate``): no finding.
    """
    bt = record.back_translation
    if not _has_text(record) or bt is None:
        return None
    if not bt.strip():
        return Finding({"chrf": 0.0, "bleu": 0.0}, (Reason.LOW_BACKTRANSLATION,))
    chrf = _CHRF.sentence_score(bt, [record.src_text]).score
    bleu = _BLEU["zh" if primary(record.src_lang) == "zh" else "13a"]
    scores = {"chrf": chrf, "bleu": bleu.sentence_score(bt, [record.src_text]).score}
    if chrf < q.min_chrf:
        return Finding(scores, (Reason.LOW_BACKTRANSLATION,))
    if chrf < q.review_chrf:
        return Finding(scores, (Reason.BORDERLINE_BACKTRANSLATION,))
    return Finding(scores)


# --- entities --------------------------------------------------------------------------


def check_entities(record: ParallelRecord, q: QualitySettings) -> Finding | None:
    """Entity completeness and consistency of the target spans.

    NO_ENTITIES (informational: the pair is kept, ``results = []`` is worth learning),
    INCOMPLETE_ENTITIES (+ REPAIR_UNFINISHED when the repair ladder ran), LABEL_CHANGED,
    LOW_PROJECTION_SCORE, OVERLAPPING_SPANS, and MENTION_MISMATCH for a target span that
    does not read its text or points at no source entity.
    """
    reasons: list[Reason] = []
    scores: dict[str, float] = {}
    n_src = len(record.src_entities)
    tgt_text = record.tgt_text or ""
    if n_src == 0:
        reasons.append(Reason.NO_ENTITIES)
    covered = set()
    mismatch = label_changed = False
    for e in record.tgt_entities:
        if not 0 <= e.source_index < n_src or tgt_text[e.start : e.end] != e.text:
            mismatch = True
            continue
        covered.add(e.source_index)
        if e.label != record.src_entities[e.source_index].label:
            label_changed = True
    if n_src:
        scores["entity_coverage"] = len(covered) / n_src
        if len(covered) < n_src or record.unprojected:
            reasons.append(Reason.INCOMPLETE_ENTITIES)
            if (
                record.repair_steps
                or Reason.REPAIR_EXHAUSTED in record.reasons
                or any(u.reason == Reason.REPAIR_EXHAUSTED for u in record.unprojected)
            ):
                reasons.append(Reason.REPAIR_UNFINISHED)
    if label_changed:
        reasons.append(Reason.LABEL_CHANGED)
    if record.tgt_entities:
        scores["projection_min"] = min(e.score for e in record.tgt_entities)
        if scores["projection_min"] < q.min_projection_score:
            reasons.append(Reason.LOW_PROJECTION_SCORE)
        spans = sorted((e.start, e.end) for e in record.tgt_entities)
        if any(b_start < a_end for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False)):
            reasons.append(Reason.OVERLAPPING_SPANS)
    if mismatch:
        reasons.append(Reason.MENTION_MISMATCH)
    if not reasons and not scores:
        return None
    return Finding(scores, tuple(reasons))


# --- duplicates --------------------------------------------------------------------------


def duplicate_key(record: ParallelRecord) -> str:
    """Hash of the normalised pair (direction, source text, target text)."""
    blob = "\x1f".join(
        (
            primary(record.src_lang),
            primary(record.tgt_lang),
            _normalise(record.src_text),
            _normalise(record.tgt_text or ""),
        )
    )
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def check_duplicate(record: ParallelRecord, seen: set[str]) -> Finding | None:
    """DUPLICATE when the same normalised pair was seen earlier in the run.

    Adds the record's key to ``seen`` (the one piece of state a check is allowed: the
    run's set of keys, owned by the caller).
    """
    if not _has_text(record):
        return None
    key = duplicate_key(record)
    if key in seen:
        return Finding(reasons=(Reason.DUPLICATE,))
    seen.add(key)
    return None


# The checks that take (record, settings), in the order their reasons are listed.
text_checks = (
    check_empty,
    check_language,
    check_untranslated,
    check_length_ratio,
    check_control_characters,
    check_markup,
    check_backtranslation,
    check_entities,
)
