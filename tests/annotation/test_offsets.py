"""Code points <-> UTF-16 code units, with emoji and CJK Extension B."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from annotation.offsets import from_utf16, resolve_span, to_label_studio, to_utf16, utf16_len

# (text, code-point index, UTF-16 index)
CASES = [
    ("Obama visited Paris", 14, 14),
    ("奧巴馬的特別助理", 4, 4),  # BMP CJK: one unit each
    ("🎉 Obama", 2, 3),  # emoji = surrogate pair
    ("𠮷野家在東京", 1, 2),  # CJK Extension B (U+20BB7)
    ("𠮷野家在東京", 3, 4),
    ("a👍🏽b", 3, 5),  # emoji + skin-tone modifier: two astral code points
    ("", 0, 0),
]


@pytest.mark.parametrize(("text", "cp", "u16"), CASES)
def test_to_and_from_utf16_agree(text: str, cp: int, u16: int) -> None:
    assert to_utf16(text, cp) == u16
    assert from_utf16(text, u16) == cp


@pytest.mark.parametrize("text", [c[0] for c in CASES])
def test_utf16_len_matches_the_encoder(text: str) -> None:
    assert utf16_len(text) == len(text.encode("utf-16-le")) // 2


def test_offset_inside_a_surrogate_pair_is_refused() -> None:
    with pytest.raises(ValueError, match="splits"):
        from_utf16("a🎉b", 2)


@pytest.mark.parametrize(("text", "unit"), [("abc", 4), ("🎉", 3), ("abc", -1)])
def test_offset_outside_the_text_is_refused(text: str, unit: int) -> None:
    with pytest.raises(ValueError):
        from_utf16(text, unit)


@given(st.text(max_size=40), st.data())
def test_round_trip_for_any_text(text: str, data: st.DataObject) -> None:
    cp = data.draw(st.integers(0, len(text)))
    unit = to_utf16(text, cp)
    assert from_utf16(text, unit) == cp
    # the JavaScript view of the prefix has exactly `unit` code units
    assert len(text[:cp].encode("utf-16-le")) // 2 == unit


TGT = '🎉𠮷 "雖然美國的許多'  # 美國 = code points 6-8, UTF-16 units 8-10


def test_label_studio_text_offsets_are_code_points() -> None:
    assert to_label_studio(TGT, 6) == 6
    assert resolve_span(TGT, 6, 8, "美國") == (6, 8)


def test_span_sent_in_utf16_units_is_read_by_its_text() -> None:
    assert resolve_span(TGT, 8, 10, "美國") == (6, 8)


@pytest.mark.parametrize(
    ("start", "end", "surface", "message"),
    [(6, 8, "美国", "reads"), (6, 99, None, "outside"), (8, 6, None, "outside")],
)
def test_span_that_fits_no_reading_is_refused(start, end, surface, message) -> None:
    with pytest.raises(ValueError, match=message):
        resolve_span(TGT, start, end, surface)
