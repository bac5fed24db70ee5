"""False-rejection rate of the language check on real target-language text (goal < 1%),
and its detection rate on real text in the wrong language.

A quality assertion over whole files, not a timing: CLUENER (zh, 12,091 sentences),
the PUD Chinese targets (Traditional script), the Europarl de/es/it targets, and
WikiNEuRal English (as the target of zh->en).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from parallelner.quality.checks import check_language
from parallelner.reasons import Reason
from parallelner.settings import QualitySettings
from parallelner.testing.samples import cluener_texts, projection_texts, target_only_record

DATA = Path(__file__).resolve().parents[2] / "data"
Q = QualitySettings()


def record(src_lang: str, tgt_lang: str, tgt_text: str):
    return target_only_record(src_lang, tgt_lang, tgt_text)


def cluener() -> list[str]:
    return cluener_texts(DATA)


def projection_targets(name: str) -> list[str]:
    return projection_texts(DATA, name, "target")


def projection_sources(name: str) -> list[str]:
    return projection_texts(DATA, name, "source")


def wikineural(limit: int) -> list[str]:
    sentences, tokens = [], []
    with open(DATA / "sources" / "wikineural-en-val.conllu", encoding="utf-8") as fh:
        for line in fh:
            if not line.strip():
                if tokens:
                    sentences.append(" ".join(tokens))
                    tokens = []
                    if len(sentences) == limit:
                        break
            elif not line.startswith("#"):
                tokens.append(line.split("\t")[1])
    return sentences


def rejected(src_lang: str, tgt_lang: str, texts: list[str]) -> list[tuple[str, tuple]]:
    out = []
    for text in texts:
        f = check_language(record(src_lang, tgt_lang, text), Q)
        if f is not None and f.reasons:
            out.append((text, f.reasons))
    return out


@pytest.mark.parametrize(
    "src_lang,tgt_lang,texts,expected_n",
    [
        ("en", "zh", cluener, 12_091),
        ("en", "zh", lambda: projection_targets("pud-en-zh"), 196),
        ("en", "de", lambda: projection_targets("europarl-en-de"), 166),
        ("en", "es", lambda: projection_targets("europarl-en-es"), 166),
        ("en", "it", lambda: projection_targets("europarl-en-it"), 166),
        ("zh", "en", lambda: wikineural(3000), 3000),
    ],
    ids=["cluener-zh", "pud-zh-traditional", "europarl-de", "europarl-es", "europarl-it",
         "wikineural-en"],
)  # fmt: skip
def test_false_rejection_rate_on_real_target_language_text_is_under_1_percent(
    src_lang, tgt_lang, texts, expected_n
):
    texts = texts()
    assert len(texts) == expected_n
    bad = rejected(src_lang, tgt_lang, texts)
    assert len(bad) / len(texts) < 0.01, bad[:10]


@pytest.mark.parametrize(
    "src_lang,tgt_lang,texts,expected",
    [
        ("en", "zh", lambda: wikineural(2000), Reason.SOURCE_LANGUAGE_COPY),
        ("zh", "en", lambda: cluener()[:2000], Reason.SOURCE_LANGUAGE_COPY),
        ("en", "de", lambda: projection_sources("europarl-en-de"), Reason.SOURCE_LANGUAGE_COPY),
        ("en", "es", lambda: projection_targets("europarl-en-it"), Reason.WRONG_LANGUAGE),
        ("en", "it", lambda: projection_targets("europarl-en-de"), Reason.WRONG_LANGUAGE),
    ],
    ids=["english-as-zh", "chinese-as-en", "english-as-de", "italian-as-es", "german-as-it"],
)
def test_text_in_the_wrong_language_is_caught(src_lang, tgt_lang, texts, expected):
    texts = texts()
    bad = rejected(src_lang, tgt_lang, texts)
    assert len(bad) / len(texts) > 0.95
    assert sum(r == (expected,) for _, r in bad) / len(texts) > 0.9
