"""The noisy translator errs as real models do: the same question gets the same mistake,
a fresh attempt or a stronger model draws anew, correct read-backs are worded as real
models word them, and every repair question is answered truthfully."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from parallelner.records import Entity
from parallelner.settings import TranslateSettings
from parallelner.stages.translate import translate_question
from parallelner.testing.noisy import (
    MISTAKES,
    PARAPHRASES,
    GoldPair,
    NoisyTranslator,
    load_gold_pairs,
    paraphrases,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "projection-dev"
FILES = {"de": ("europarl-en-de.jsonl", "de"), "zh": ("pud-en-zh.jsonl", "zh-Hant")}


def _pairs(lang: str, one_to_one: bool = True) -> tuple[list[GoldPair], str]:
    fname, tgt = FILES[lang]
    pairs = load_gold_pairs([DATA / fname])
    return [p for p in pairs if p.one_to_one or not one_to_one], tgt


def _ask(tr: NoisyTranslator, schema: str, payload: dict, model: str = "test-model") -> dict:
    body = {"model": model, "response_format": {"json_schema": {"name": schema}}}
    content, _ = tr(body, True, "Payload:\n" + json.dumps(payload, ensure_ascii=False))
    return json.loads(content)


def _forward(tr: NoisyTranslator, p: GoldPair, tgt: str, model="test-model", **extra) -> dict:
    # the request stage 1 sends (its typed payload), plus what a test adds to it
    request = translate_question(p.instance(), tgt, TranslateSettings()).data
    payload = {**request.model_dump(exclude_none=True), **extra}
    return _ask(tr, "TranslationReply", payload, model)


def _read_back(tr: NoisyTranslator, text: str, mentions: list[str]) -> list[str]:
    payload = {"sentence": text, "mentions": [{"id": j, "text": m} for j, m in enumerate(mentions)]}
    reply = _ask(tr, "EntityBackTranslationReply", payload)
    return [m["translation"] for m in reply["mentions"]]


# --- the same question, the same mistake; another question, a fresh draw -------------------


def test_default_replies_are_byte_identical_to_before():
    """attempt 1, no attempt key, default model, paraphrase off: exactly the replies the
    translator gave before these options existed (digest of the old code's replies; taken
    again when ``match_gold`` learnt to pair a name written alike before label order,
    which changes the gold of reordered pairs such as Texas / America and Cox / Hänsch)."""
    h = hashlib.sha256()
    for lang in ("de", "zh"):
        pairs, tgt = _pairs(lang, one_to_one=False)
        tr = NoisyTranslator(pairs, mistake_rate=0.4, seed=7)
        for p in pairs:
            reply = _forward(tr, p, tgt)
            h.update(json.dumps(reply, ensure_ascii=False).encode())
            payload = {
                "sentence": reply["translation"],
                "mentions": [{"id": e["id"], "text": e["target"]} for e in reply["entities"]],
            }
            back = _ask(tr, "EntityBackTranslationReply", payload)
            h.update(json.dumps(back, ensure_ascii=False).encode())
    assert h.hexdigest() == "02f309184849790e892febde0bb866d5c007c397063826d75aa329322359138f"


def test_a_plain_reask_gets_the_same_mistake():
    pairs, tgt = _pairs("de")
    tr = NoisyTranslator(pairs, mistake_rate=0.4, seed=1)
    first = [_forward(tr, p, tgt) for p in pairs]
    kinds = {p.id: tr.mistakes[p.id].kind for p in pairs}
    assert sum(k != "none" for k in kinds.values()) > 0.25 * len(pairs)
    assert [_forward(tr, p, tgt) for p in pairs] == first
    assert {p.id: tr.mistakes[p.id].kind for p in pairs} == kinds
    # attempt 1 is the first question, and an attempt without the rejected translation
    # is no new question either
    assert [_forward(tr, p, tgt, attempt=1, rejected_translation="x") for p in pairs] == first
    assert [_forward(tr, p, tgt, attempt=2) for p in pairs] == first


def test_a_fresh_attempt_draws_anew():
    pairs, tgt = _pairs("de")
    tr = NoisyTranslator(pairs, mistake_rate=0.4, seed=1)
    first = {p.id: _forward(tr, p, tgt) for p in pairs}
    wrong = [p for p in pairs if tr.mistakes[p.id].kind != "none"]
    again = {
        p.id: _forward(tr, p, tgt, attempt=2, rejected_translation=first[p.id]["translation"])
        for p in wrong
    }
    fixed = [p for p in wrong if tr.draws[(p.id, "default", 2)].kind == "none"]
    # a fresh draw at 40%: most wrong replies come back right, some wrong again
    assert 0.45 * len(wrong) <= len(fixed) < len(wrong)
    assert all(again[p.id] != first[p.id] for p in fixed)
    assert tr.mistakes == {p.id: tr.draws[(p.id, "default", 1)] for p in pairs}  # unmoved
    # the same fresh question twice: the same reply; the next attempt: another draw
    assert all(
        _forward(tr, p, tgt, attempt=2, rejected_translation="?") == again[p.id] for p in wrong
    )
    for p in wrong:
        _forward(tr, p, tgt, attempt=3, rejected_translation="?")
    third = [tr.draws[(p.id, "default", 3)].kind for p in wrong]
    second = [tr.draws[(p.id, "default", 2)].kind for p in wrong]
    assert third != second


def test_the_strong_model_errs_far_less_often():
    pairs = [p for lang in FILES for p in _pairs(lang, one_to_one=False)[0]]
    tr = NoisyTranslator(pairs, mistake_rate=0.4, seed=2)
    for p in pairs:
        tgt = FILES["zh"][1] if p.tgt_lang.startswith("zh") else p.tgt_lang
        _forward(tr, p, tgt)
        _forward(tr, p, tgt, model="strong-model")
    weak = sum(tr.draws[(p.id, "default", 1)].kind != "none" for p in pairs) / len(pairs)
    strong = sum(tr.draws[(p.id, "strong", 1)].kind != "none" for p in pairs) / len(pairs)
    assert 0.3 < weak < 0.5 and 0.01 < strong < 0.1, (weak, strong)
    kinds = {tr.draws[(p.id, "strong", 1)].kind for p in pairs} - {"none"}
    assert len(kinds) >= 2  # the same mix of kinds, only rarer


# --- correct read-backs, worded as real models word them ------------------------------------


@pytest.mark.parametrize(
    "mention,label,kind,worded",
    [
        ("Community of Madrid", "LOC", "word_order", "Madrid Community"),
        ("Conference of Presidents", "ORG", "word_order", "Presidents Conference"),
        ("Hillary Clinton", "PER", "transliteration", "Hilary Clinton"),
        ("Kori Schulman", "PER", "transliteration", "Kori Shulman"),
        ("Barroso", "PER", "title", "President Barroso"),
        ("Rack", "PER", "title", "Mr Rack"),
        ("Mr Barroso", "PER", "title", "Barroso"),
        ("EU", "ORG", "acronym", "European Union"),
        ("European Parliament", "ORG", "acronym", "EP"),
        ("Commission", "ORG", "article", "the Commission"),
    ],
)
def test_paraphrases_of_real_mentions(mention, label, kind, worded):
    assert paraphrases(mention, label)[kind] == worded


def test_paraphrased_read_backs_are_recorded_and_deterministic():
    pairs, tgt = _pairs("zh")
    runs = []
    for _ in range(2):
        tr = NoisyTranslator(pairs, mistake_rate=0.0, paraphrase_rate=0.5, seed=4)
        forms = []
        for p in pairs:
            view = tr.gold_view(p, tgt)
            forms.append(_read_back(tr, view.text, [view.text[a:b] for a, b, *_ in view.anchors]))
        runs.append((forms, dict(tr.paraphrased)))
    assert runs[0] == runs[1]
    forms, paraphrased = runs[0]
    n = sum(len(p.mapping) for p in pairs)
    assert 0.3 * n < len(paraphrased) < 0.6 * n
    assert set(paraphrased.values()) <= set(PARAPHRASES) and len(set(paraphrased.values())) >= 3
    by_id = {p.id: p for p in pairs}
    for (pid, i), kind in paraphrased.items():
        p = by_id[pid]
        # anchors are in text order, one per entity
        k = [a[4] for a in tr.gold_view(p, tgt).anchors].index(i)
        assert forms[pairs.index(p)][k] == paraphrases(p.src_mention(i), p.src_spans[i][2])[kind]
    # off by default: every correct read-back is the exact source mention
    tr = NoisyTranslator(pairs, mistake_rate=0.0)
    view = tr.gold_view(pairs[0], tgt)
    assert _read_back(tr, view.text, [view.text[a:b] for a, b, *_ in view.anchors]) == [
        pairs[0].src_mention(i) for *_, i in view.anchors
    ]
    assert not tr.paraphrased


# --- the relocation question, answered truthfully -----------------------------------------


@pytest.mark.parametrize("model", ["test-model", "strong-model"])
@pytest.mark.parametrize("kind", ["extended", "truncated", "swapped", "other_span"])
@pytest.mark.parametrize("lang", ["de", "zh"])
def test_relocate_names_the_words_that_are_the_entity(lang, kind, model):
    pairs, tgt = _pairs(lang)
    tr = NoisyTranslator(pairs, rates={kind: 1.0}, seed=5)
    checked = 0
    for p in pairs[:40]:
        reply = _forward(tr, p, tgt)
        m = tr.mistakes[p.id]
        if m.kind != kind:
            continue
        given = {e["id"]: e["target"] for e in reply["entities"]}
        doubts = [
            {
                "id": i,
                "source_mention": p.src_mention(i),
                "given": given[i],
                "reads_back_as": None,
                "problem": "entity_roundtrip",
            }  # fmt: skip
            for i in range(len(p.src_spans))
        ]
        payload = {
            "source_language": "en",
            "target_language": tgt,
            "source_sentence": p.src_text,
            "translation": reply["translation"],
            "doubts": doubts,
        }
        got = _ask(tr, "RelocateReply", payload, model)["mentions"]
        gold = tr.gold_view(p, tgt)
        want = {i: gold.text[a:b] for a, b, _, _, i in gold.anchors}
        assert {x["id"]: x["target"] for x in got} == want
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("kind", ["dropped_entity", "other_sentence"])
def test_relocate_says_nothing_for_an_entity_the_translation_does_not_hold(kind):
    pairs, tgt = _pairs("de")
    tr = NoisyTranslator(pairs, rates={kind: 1.0}, seed=5)
    checked = 0
    for p in pairs[:30]:
        reply = _forward(tr, p, tgt)
        m = tr.mistakes[p.id]
        if m.kind != kind:
            continue
        missing = [m.entity] if kind == "dropped_entity" else list(range(len(p.src_spans)))
        payload = {
            "source_language": "en",
            "target_language": tgt,
            "source_sentence": p.src_text,
            "translation": reply["translation"],
            "doubts": [
                {
                    "id": i,
                    "source_mention": p.src_mention(i),
                    "given": "",
                    "reads_back_as": None,
                    "problem": "incomplete_entities",
                }  # fmt: skip
                for i in missing
            ],
        }
        got = _ask(tr, "RelocateReply", payload)["mentions"]
        assert got == [{"id": i, "target": "", "context": ""} for i in missing]
        checked += 1
    assert checked >= 10


def test_every_mistake_kind_is_still_made():
    pairs, tgt = _pairs("zh")
    for kind in MISTAKES:
        tr = NoisyTranslator(pairs, rates={kind: 1.0}, seed=3, paraphrase_rate=0.3)
        for p in pairs[:20]:
            _forward(tr, p, tgt)
        assert any(tr.mistakes[p.id].kind == kind for p in pairs[:20]), kind


def test_gold_spans_match_a_name_written_alike_before_label_order():
    from parallelner.testing.samples import match_gold

    src = (
        Entity(start=0, end=5, label="LOC", text="Texas"),
        Entity(start=9, end=16, label="LOC", text="America"),
    )
    text = "in den Vereinigten Staaten , in Texas"
    gold = [
        {"start": 7, "end": 26, "label": "LOC", "text": "Vereinigten Staaten"},
        {"start": 32, "end": 37, "label": "LOC", "text": "Texas"},
    ]
    assert [i for _, i in match_gold(src, gold, text)] == [1, 0]


def test_a_gloss_written_like_the_source_name_gives_the_name_before_the_brackets():
    from parallelner.testing.samples import match_gold

    src = (
        Entity(start=0, end=10, label="LOC", text="MahaNakhon"),
        Entity(start=13, end=20, label="LOC", text="Bangkok"),
    )
    text = "比如夢幻般的曼谷最高的建築大京都大廈（MahaNakhon）。"
    gold = [
        {"start": 6, "end": 8, "label": "LOC", "text": "曼谷"},
        {"start": 13, "end": 18, "label": "LOC", "text": "大京都大廈"},
        {"start": 19, "end": 29, "label": "LOC", "text": "MahaNakhon"},
    ]
    assert [text[g["start"] : g["end"]] for g in gold] == ["曼谷", "大京都大廈", "MahaNakhon"]
    # MahaNakhon is the name before its gloss; Bangkok the other LOC; the gloss nobody's
    assert [i for _, i in match_gold(src, gold, text)] == [1, 0, None]
