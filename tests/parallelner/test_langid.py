"""Script-based language checks on real sentences from data/."""

from __future__ import annotations

import pytest

from parallelner.langid import looks_like, script_share

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
