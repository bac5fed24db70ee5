"""Stage-3 checks, each on real sentences that should pass and real ones that should fail.

Pairs come from data/projection-dev (Europarl en-de/es/it, PUD en-zh with human
translations and gold spans) and data/sources (CLUENER, WikiNEuRal).
"""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from parallelner.quality.checks import (
    check_backtranslation,
    check_control_characters,
    check_duplicate,
    check_empty,
    check_entities,
    check_language,
    check_length_ratio,
    check_markup,
    check_untranslated,
    clear_caches,
)
from parallelner.reasons import Reason
from parallelner.records import Entity, ParallelRecord, ProjectedEntity
from parallelner.settings import QualitySettings
from parallelner.testing.samples import draft_from_projection_pair

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"
Q = QualitySettings()


@cache
def _pairs(name: str) -> dict[str, dict]:
    with open(DATA / "projection-dev" / f"{name}.jsonl", encoding="utf-8") as fh:
        return {d["id"]: d for d in map(json.loads, fh)}


def pair(pair_id: str, **update) -> ParallelRecord:
    """The real projection-dev pair as a stage-3 draft, with fields replaced."""
    name = {"de": "europarl-en-de", "es": "europarl-en-es", "it": "europarl-en-it",
            "zh": "pud-en-zh"}[pair_id.rsplit("-", 1)[1]]  # fmt: skip
    return draft_from_projection_pair(_pairs(name)[pair_id]).model_copy(update=update)


@cache
def cluener(n: int) -> str:
    with open(DATA / "sources" / "cluener-dev.json", encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh][n]


def zh_to_en(zh_text: str, en_text: str) -> ParallelRecord:
    """A zh->en record: a real CLUENER sentence and a (real) English target."""
    return pair("pud-00001-zh").model_copy(update={
        "src_lang": "zh", "tgt_lang": "en", "src_text": zh_text, "src_entities": (),
        "tgt_text": en_text, "tgt_entities": (), "unprojected": ()})  # fmt: skip


def reasons(finding) -> tuple[Reason, ...]:
    return () if finding is None else finding.reasons


# --- language -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "pair_id", ["europarl-00001-de", "europarl-00002-es", "europarl-00006-it", "pud-00000-zh",
                "pud-00003-zh"],
)  # fmt: skip
def test_language_accepts_real_translations(pair_id):
    f = check_language(pair(pair_id), Q)
    assert reasons(f) == ()
    assert f.scores["tgt_script_share"] > 0.5


@pytest.mark.parametrize("n", [0, 2, 101])  # mixed-script CLUENER sentences (Riddick, DOTA2)
def test_language_accepts_cluener_chinese_with_latin_names(n):
    rec = pair("pud-00001-zh", tgt_text=cluener(n), tgt_entities=(), unprojected=())
    assert reasons(check_language(rec, Q)) == ()


def test_language_flags_english_copy_for_a_chinese_target():
    rec = pair("pud-00001-zh")
    rec = rec.model_copy(update={"tgt_text": rec.src_text, "tgt_entities": ()})
    assert reasons(check_language(rec, Q)) == (Reason.SOURCE_LANGUAGE_COPY,)


def test_language_flags_chinese_left_in_a_zh_to_en_target():
    text = cluener(1)
    assert reasons(check_language(zh_to_en(text, text), Q)) == (Reason.SOURCE_LANGUAGE_COPY,)


def test_language_flags_english_copy_for_a_german_target():
    rec = pair("europarl-00001-de")
    rec = rec.model_copy(update={"tgt_text": rec.src_text, "tgt_entities": ()})
    assert reasons(check_language(rec, Q)) == (Reason.SOURCE_LANGUAGE_COPY,)


def test_language_flags_italian_text_for_a_spanish_target():
    italian = pair("europarl-00001-it").tgt_text
    rec = pair("europarl-00001-es", tgt_text=italian, tgt_entities=())
    assert reasons(check_language(rec, Q)) == (Reason.WRONG_LANGUAGE,)


def test_language_gives_short_sentences_the_benefit_of_the_doubt():
    # langdetect calls the words around the name Danish (0.97) when the name is removed
    rec = pair("europarl-00001-de", tgt_text="Vielen Dank , Herr Poettering .", tgt_entities=(
        ProjectedEntity(start=19, end=29, label="PER", text="Poettering", source_index=0,
                        method="exact", score=1.0),))  # fmt: skip
    assert reasons(check_language(rec, Q)) == ()


# --- empty ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [None, "", "   ", " \n\t "])
def test_empty_translation_is_flagged_and_other_checks_stay_silent(text):
    rec = pair("europarl-00001-de", tgt_text=text, tgt_entities=())
    assert reasons(check_empty(rec, Q)) == (Reason.EMPTY_TRANSLATION,)
    for check in (check_language, check_untranslated, check_length_ratio, check_markup,
                  check_control_characters, check_backtranslation):  # fmt: skip
        assert check(rec, Q) is None
    assert reasons(check_entities(rec, Q)) == (Reason.INCOMPLETE_ENTITIES,)


def test_real_translation_is_not_empty():
    assert check_empty(pair("pud-00000-zh"), Q) is None


# --- untranslated -------------------------------------------------------------------------


def test_untranslated_flags_the_source_copied_into_the_target():
    rec = pair("europarl-00002-de")
    rec = rec.model_copy(update={"tgt_text": rec.src_text, "tgt_entities": ()})
    f = check_untranslated(rec, Q)
    assert reasons(f) == (Reason.UNTRANSLATED,)
    assert f.scores["copy_similarity"] > 0.95  # the mention is removed on one side only


def test_untranslated_flags_a_copy_with_changed_spacing_and_case():
    rec = pair("europarl-00004-de")
    rec = rec.model_copy(update={"tgt_text": "  " + rec.src_text.upper().replace(" ", "  "),
                                 "tgt_entities": ()})  # fmt: skip
    assert reasons(check_untranslated(rec, Q)) == (Reason.UNTRANSLATED,)


@pytest.mark.parametrize("pair_id", ["europarl-00001-de", "europarl-00001-es", "europarl-00001-it"])
def test_untranslated_passes_real_translations_between_latin_languages(pair_id):
    f = check_untranslated(pair(pair_id), Q)
    assert reasons(f) == ()
    assert f.scores["copy_similarity"] < 0.7


def test_untranslated_leaves_a_sentence_of_names_alone():
    # A sentence that is only a name (and punctuation) may rightly stay the same.
    src = "Kori Schulman ."
    name = Entity(start=0, end=13, label="PER", text="Kori Schulman")
    projected = ProjectedEntity(**name.model_dump(), source_index=0, method="exact", score=1.0)
    rec = pair("europarl-00001-de").model_copy(update={
        "src_text": src, "tgt_text": src, "src_entities": (name,), "tgt_entities": (projected,)})  # fmt: skip
    assert check_untranslated(rec, Q) is None
    with_words = rec.model_copy(update={"src_text": src + " wrote", "tgt_text": src + " wrote"})
    assert reasons(check_untranslated(with_words, Q)) == (Reason.UNTRANSLATED,)


# --- length ratio -------------------------------------------------------------------------


@pytest.mark.parametrize("pair_id", ["europarl-00001-de", "europarl-00006-it", "pud-00000-zh",
                                     "pud-00002-zh"])  # fmt: skip
def test_length_ratio_passes_real_translations_across_scripts(pair_id):
    f = check_length_ratio(pair(pair_id), Q)
    assert reasons(f) == ()
    assert 0.5 < f.scores["length_ratio"] < 2.0


def _misaligned_pud_pair() -> ParallelRecord:
    # A long real PUD sentence paired with the Chinese of a short one (an earlier copy of
    # pud-en-zh.jsonl paired by line order had exactly this fault: 289 vs 34 chars).
    pairs = _pairs("pud-en-zh")
    long_id = next(
        pid
        for pid, d in pairs.items()
        if d["source"]["text"].startswith("The law delineates a number of conditions")
    )
    short = min(pairs.values(), key=lambda d: abs(len(d["target"]["text"]) - 34))
    return pair(long_id, tgt_text=short["target"]["text"], tgt_entities=())


def test_length_ratio_flags_a_misaligned_real_pair():
    f = check_length_ratio(_misaligned_pud_pair(), Q)
    assert reasons(f) == (Reason.LENGTH_RATIO,)
    assert f.scores["length_ratio"] < Q.length_ratio_min


def test_length_ratio_flags_a_target_cut_in_half_twice():
    rec = pair("europarl-00001-de")
    rec = rec.model_copy(update={"tgt_text": rec.tgt_text[: len(rec.tgt_text) // 4]})
    assert reasons(check_length_ratio(rec, Q)) == (Reason.LENGTH_RATIO,)


def test_length_ratio_bounds_are_configurable():
    loose = Q.model_copy(update={"length_ratio_min": 0.1})
    assert reasons(check_length_ratio(_misaligned_pud_pair(), loose)) == ()


# --- control characters and markup --------------------------------------------------------


@pytest.mark.parametrize(
    "junk", ["\x00", "\u200b", "\ufeff", "\ufffd", "\n\nNote: literal.", "\x1b[0m"]
)
def test_control_characters_are_flagged(junk):
    rec = pair("europarl-00002-it")
    rec = rec.model_copy(update={"tgt_text": rec.tgt_text + junk})
    assert reasons(check_control_characters(rec, Q)) == (Reason.CONTROL_CHARACTERS,)


def test_control_characters_pass_real_targets_and_characters_the_source_has():
    assert check_control_characters(pair("pud-00000-zh"), Q) is None
    rec = pair("europarl-00002-it")
    rec = rec.model_copy(
        update={"src_text": rec.src_text + "\u200b", "tgt_text": rec.tgt_text + "\u200b"}
    )
    assert check_control_characters(rec, Q) is None


@pytest.mark.parametrize(
    "wrap",
    ["<b>{}</b>", "```\n{}\n```", "Translation: {}", "译文：{}", '{{"translation": "{}"}}',
     "[PER]{}[/PER]", "**{}**"],
)  # fmt: skip
def test_markup_left_by_the_llm_is_flagged(wrap):
    rec = pair("pud-00001-zh")
    rec = rec.model_copy(update={"tgt_text": wrap.format(rec.tgt_text), "tgt_entities": ()})
    assert reasons(check_markup(rec, Q)) == (Reason.LEFTOVER_MARKUP,)


@pytest.mark.parametrize("n", [3, 99])  # CLUENER sentences with 《》 titles and brackets
def test_markup_passes_real_chinese_punctuation(n):
    rec = pair("pud-00001-zh", tgt_text=cluener(n), tgt_entities=())
    assert check_markup(rec, Q) is None


def test_markup_already_in_the_source_is_not_blamed_on_the_llm():
    rec = pair("europarl-00001-de")
    rec = rec.model_copy(
        update={"src_text": "<b>" + rec.src_text, "tgt_text": "<b>" + rec.tgt_text}
    )
    assert check_markup(rec, Q) is None


# --- back-translation --------------------------------------------------------------------


def test_backtranslation_equal_to_the_source_scores_100():
    rec = pair("europarl-00001-de")
    f = check_backtranslation(rec.model_copy(update={"back_translation": rec.src_text}), Q)
    assert reasons(f) == ()
    assert f.scores["chrf"] == pytest.approx(100.0)
    assert f.scores["bleu"] == pytest.approx(100.0)


def test_backtranslation_of_another_sentence_is_rejected():
    other = pair("europarl-00006-de").src_text  # "( The House rose and observed ... )"
    f = check_backtranslation(pair("europarl-00002-de", back_translation=other), Q)
    assert reasons(f) == (Reason.LOW_BACKTRANSLATION,)
    assert f.scores["chrf"] < Q.min_chrf


def test_backtranslation_missing_every_other_word_is_borderline():
    rec = pair("europarl-00001-de")
    bt = " ".join(rec.src_text.split()[::2])
    f = check_backtranslation(rec.model_copy(update={"back_translation": bt}), Q)
    assert reasons(f) == (Reason.BORDERLINE_BACKTRANSLATION,)
    assert Q.min_chrf <= f.scores["chrf"] < Q.review_chrf


def test_backtranslation_bleu_uses_the_zh_tokenizer_for_a_chinese_source():
    # One character changed in an unspaced Chinese sentence: with the 13a tokenizer the
    # whole sentence is one token and BLEU would be 0.
    src = cluener(1)
    rec = zh_to_en(src, "Wenger's team played another classic match.")
    bt = src.replace("经典", "精彩")
    f = check_backtranslation(rec.model_copy(update={"back_translation": bt}), Q)
    assert f.scores["bleu"] > 50
    assert f.scores["chrf"] > Q.review_chrf


def test_no_backtranslation_means_no_finding():
    assert check_backtranslation(pair("europarl-00001-de"), Q) is None


def test_scored_sentences_are_forgotten_when_the_caches_are_cleared_and_scores_stay():
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    en = pair("europarl-00001-de")
    en = en.model_copy(update={"back_translation": " ".join(en.src_text.split()[::2])})
    src = cluener(1)
    zh = zh_to_en(src, "Wenger's team played another classic match.")
    zh = zh.model_copy(update={"back_translation": src.replace("经典", "精彩")})
    first = [check_backtranslation(r, Q).scores for r in (en, zh)]
    assert Tokenizer13a.__call__.cache_info().currsize > 0
    assert TokenizerZh.__call__.cache_info().currsize > 0

    clear_caches()  # what every shard does at its end (``pipeline.process_shard``)

    assert Tokenizer13a.__call__.cache_info().currsize == 0
    assert TokenizerZh.__call__.cache_info().currsize == 0
    assert [check_backtranslation(r, Q).scores for r in (en, zh)] == first


def test_scoring_leaves_redis_unimported_and_importable():
    # sacrebleu -> portalocker -> redis, opentelemetry, cryptography: 11 MB a process
    code = (
        "import sys\n"
        "from parallelner.quality import checks\n"
        "assert checks.CHRF().sentence_score('a b c', ['a b d']).score > 0\n"
        "print(sorted(m for m in ('redis', 'cryptography', 'opentelemetry') if m in sys.modules))\n"
        "import redis, portalocker\n"
        "print(redis.__name__, portalocker.Lock.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.split("\n")
    assert out[:2] == ["[]", "redis Lock"]


# --- entities -------------------------------------------------------------------------------


def test_entities_complete_real_pair_passes():
    f = check_entities(pair("pud-00146-zh"), Q)
    assert reasons(f) == ()
    assert f.scores == {"entity_coverage": 1.0, "projection_min": 1.0}


def test_entities_missing_one_is_incomplete():
    rec = pair("pud-00146-zh")
    rec = rec.model_copy(update={"tgt_entities": rec.tgt_entities[:2]})
    f = check_entities(rec, Q)
    assert reasons(f) == (Reason.INCOMPLETE_ENTITIES,)
    assert f.scores["entity_coverage"] == pytest.approx(2 / 3)


def test_entities_missing_after_the_repair_ladder_is_unfinished():
    rec = pair("pud-00146-zh")
    rec = rec.model_copy(update={"tgt_entities": rec.tgt_entities[:2],
                                 "repair_steps": ("repair_mention", "rewrite_sentence")})  # fmt: skip
    assert reasons(check_entities(rec, Q)) == (Reason.INCOMPLETE_ENTITIES, Reason.REPAIR_UNFINISHED)


def test_entities_label_changed_low_score_overlap_and_mismatch():
    rec = pair("pud-00146-zh")
    a, b, c = rec.tgt_entities  # 唐納德·特朗普 (PER), JohnDiDomenico (PER), Slate (ORG)
    changed = rec.model_copy(update={"tgt_entities": (a.model_copy(update={"label": "LOC"}), b, c)})
    assert Reason.LABEL_CHANGED in reasons(check_entities(changed, Q))
    low = rec.model_copy(update={"tgt_entities": (a, b.model_copy(update={"score": 0.5}), c)})
    f = check_entities(low, Q)
    assert reasons(f) == (Reason.LOW_PROJECTION_SCORE,) and f.scores["projection_min"] == 0.5
    overlap = b.model_copy(update={"start": b.start - 1, "text": rec.tgt_text[b.start - 1 : b.end]})
    over = rec.model_copy(
        update={"tgt_entities": (a, overlap, b.model_copy(update={"source_index": 2}))}
    )
    assert Reason.OVERLAPPING_SPANS in reasons(check_entities(over, Q))
    wrong = rec.model_copy(update={"tgt_entities": (a, b, c.model_copy(update={"text": "Slat€"}))})
    assert Reason.MENTION_MISMATCH in reasons(check_entities(wrong, Q))


def test_pair_without_entities_is_kept_with_an_informational_reason():
    rec = pair("pud-00001-zh", src_entities=(), tgt_entities=(), unprojected=())
    assert reasons(check_entities(rec, Q)) == (Reason.NO_ENTITIES,)


# --- duplicates --------------------------------------------------------------------------


def test_duplicate_pair_is_flagged_the_second_time_only():
    seen: set[str] = set()
    first = pair("pud-00002-zh")
    again = first.model_copy(update={"record_id": "other", "tgt_text": " " + first.tgt_text + " "})
    assert check_duplicate(first, seen) is None
    assert check_duplicate(pair("pud-00003-zh"), seen) is None
    assert reasons(check_duplicate(again, seen)) == (Reason.DUPLICATE,)
    assert len(seen) == 2


def test_same_source_with_a_different_translation_is_not_a_duplicate():
    seen: set[str] = set()
    de = pair("europarl-00001-de")
    assert check_duplicate(de, seen) is None
    assert (
        check_duplicate(pair("europarl-00001-es").model_copy(update={"tgt_lang": "de"}), seen)
        is None
    )
