"""Cheap script-based language checks: is this text written in the script of that language?

Not a language identifier: it only tells Chinese from Latin-script languages from Cyrillic
and so on, which is what catches an LLM that copied the source sentence untranslated.
Counts letters only (``str.isalpha``), so digits, punctuation and spaces never decide.
"""

from __future__ import annotations

import unicodedata

__all__ = ["script_share", "looks_like", "SCRIPT_OF", "script_of"]

# BCP-47 primary language subtag -> script name (the prefix of the Unicode character name).
SCRIPT_OF: dict[str, str] = {
    "zh": "CJK",
    "ja": "CJK",  # kana are counted as CJK below
    "ko": "HANGUL",
    "ru": "CYRILLIC",
    "uk": "CYRILLIC",
    "bg": "CYRILLIC",
    "sr": "CYRILLIC",
    "el": "GREEK",
    "ar": "ARABIC",
    "fa": "ARABIC",
    "he": "HEBREW",
    "hi": "DEVANAGARI",
    "th": "THAI",
}
# Share of letters that must be in the language's script for ``looks_like``. Chinese text
# routinely carries Latin names and acronyms (NBA, iPhone), so its bar is lower.
_MIN_SHARE: dict[str, float] = {"CJK": 0.3, "HANGUL": 0.3}
_DEFAULT_MIN_SHARE = 0.6


def script_of(lang: str) -> str:
    """The script expected for a BCP-47 tag (``zh-Hans`` -> CJK; unknown -> LATIN)."""
    return SCRIPT_OF.get(lang.split("-")[0].lower(), "LATIN")


def _char_script(ch: str) -> str:
    code = ord(ch)
    if (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x20000 <= code <= 0x3134F
        or 0xF900 <= code <= 0xFAFF
        or 0x3040 <= code <= 0x30FF  # hiragana, katakana
    ):
        return "CJK"
    try:
        return unicodedata.name(ch).split(" ")[0]
    except ValueError:
        return "UNKNOWN"


def script_share(text: str, lang: str) -> float:
    """Share (0..1) of the letters in ``text`` written in ``lang``'s script.

    Text without any letters (numbers, punctuation) returns 1.0: there is nothing to
    contradict the language.
    """
    want = script_of(lang)
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 1.0
    hits = sum(1 for ch in letters if _char_script(ch) == want)
    return hits / len(letters)


def looks_like(text: str, lang: str) -> bool:
    """True when ``text`` is plausibly written in ``lang`` (by script share alone)."""
    want = script_of(lang)
    return script_share(text, lang) >= _MIN_SHARE.get(want, _DEFAULT_MIN_SHARE)
