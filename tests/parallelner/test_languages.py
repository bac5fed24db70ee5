"""Script-based language checks on real sentences from data/."""

from __future__ import annotations

import pytest

from parallelner.languages import char_script, looks_like, script_counts, script_share

CASES = [
    # text, lang, looks like it
    ("雖然美國的許多數字化轉型都是史無前例的，但權力的和平轉移卻存在先例。", "zh", True),
    ("温格的球队终于又踢了一场经典的比赛，2比1战胜曼联之后枪手仍然留在了夺冠集团之内，", "zh", True),
    ("突袭黑暗雅典娜》中Riddick发现之前抓住他的赏金猎人Johns，", "zh", True),  # Latin names inside
    ("For those who follow social media transitions on Capitol Hill , this will be a little different .", "zh", False),
    ("For those who follow social media transitions on Capitol Hill , this will be a little different .", "en", True),
    ("温格的球队终于又踢了一场经典的比赛，", "en", False),
    ("Der Eiffelturm steht in Paris, der Hauptstadt Frankreichs.", "de", True),
    ("La Torre Eiffel está en París, la capital de Francia.", "es-ES", True),
    ("2013 — 42 %", "zh", True),  # no letters: nothing contradicts the language
]  # fmt: skip


@pytest.mark.parametrize("text,lang,expected", CASES)
def test_looks_like(text, lang, expected):
    assert looks_like(text, lang) is expected


def test_script_share_counts_letters_only():
    assert script_share("北京 2008 NBA", "zh") == pytest.approx(2 / 5)
    assert script_share("北京 2008 NBA", "en") == pytest.approx(3 / 5)
    assert script_share("𠀋𠀍", "zh") == 1.0  # CJK Extension B


def test_token_counting_keeps_chinese_with_glued_latin_names_chinese():
    # CLUENER (data/sources/cluener-train.json): a Latin name written without spaces
    text = "透纳（josephmallordwilliamturner）的作品《modernrome"
    assert script_share(text, "zh", unit="letter") < 0.3  # 5 Han among 41 letters
    assert script_counts(text, unit="token") == {"CJK": 5, "LATIN": 2}
    assert script_share(text, "zh", unit="token") == pytest.approx(5 / 7)


def test_token_counting_removes_urls_first():
    text = "ezkphqn灵界警探2http://t.cn/ezkphba电视剧"  # CLUENER
    assert script_counts(text, unit="token") == {"CJK": 7, "LATIN": 1}
    assert script_counts(text, unit="letter")["LATIN"] == 21


def test_one_table_for_both_units():
    assert [char_script(ch) for ch in "北𠀋かカㇰaßº서Мα"] == [
        "CJK", "CJK", "KANA", "KANA", "KANA", "LATIN", "LATIN", "LATIN", "HANGUL", "CYRILLIC", "GREEK",
    ]  # fmt: skip
    # kana count for Japanese in both units; for Chinese only when counting letters
    # (stage 1 asks "a CJK script at all?"), not per token (quality asks "Chinese?")
    text = "東京タワーに行きました"
    assert script_share(text, "ja", unit="token") == 1.0
    assert script_share(text, "zh", unit="letter") == 1.0
    assert script_share(text, "zh", unit="token") == pytest.approx(3 / 11)  # 東京 行 among 8 kana
