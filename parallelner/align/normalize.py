"""Text normalisation for matching, with a map back to the original offsets.

``normalize(text)`` returns the normalised string and, for every normalised character,
the index of the original character it came from. A match found in the normalised
string therefore maps back to an exact half-open span of the original text, which is
what the cascade needs: spans are always reported in the original sentence.

What is normalised, and why (each step is a way two spellings of one name differ in
real parallel text): Unicode NFKC (full-width / half-width forms, ligatures), case
(``casefold``), quotes (all quote marks become ``"``), dashes (all become ``-``), middle
dots in transliterated names (``·``), whitespace runs (one space), spacing around
punctuation (removed: ``Millenium - Bug`` and ``Millenium-Bug`` normalise alike) and
Traditional Chinese characters (folded to Simplified, one character at a time, with
OpenCC's ``t2s`` table: a human translation in Traditional script and an LLM mention in
Simplified then match, ``美國`` ~ ``美国``).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Normalized", "normalize", "is_cjk", "is_word_char", "is_boundary"]

_QUOTES = "\"'`´‘’‚‛“”„‟«»‹›「」『』〝〞〟＂＇"
_DASHES = "‐‑‒–—―−﹘﹣－"
_DOTS = "・‧•∙⋅･·"
_FOLD = {**{c: '"' for c in _QUOTES}, **{c: "-" for c in _DASHES}, **{c: "·" for c in _DOTS}}


def is_cjk(ch: str) -> bool:
    """True for Han, kana, Hangul and CJK symbols: scripts written without spaces."""
    o = ord(ch)
    return (
        0x2E80 <= o <= 0x9FFF  # radicals, CJK symbols, kana, CJK unified
        or 0xAC00 <= o <= 0xD7AF  # Hangul syllables
        or 0xF900 <= o <= 0xFAFF  # compatibility ideographs
        or 0x20000 <= o <= 0x3FFFF  # extensions B and later
    )


def is_word_char(ch: str) -> bool:
    """A character that belongs to a space-delimited word (letters/digits, not CJK)."""
    return ch.isalnum() and not is_cjk(ch)


def is_boundary(left: str, right: str) -> bool:
    """True if a span may start/end between ``left`` and ``right`` (either may be '').

    Words of space-delimited scripts are never cut; CJK text has a boundary between
    any two characters.
    """
    return not (left and right and is_word_char(left) and is_word_char(right))


def _t2s():
    try:
        import opencc
    except ImportError:  # optional: without it Traditional and Simplified do not match
        return None
    return opencc.OpenCC("t2s")


_T2S = _t2s()


@lru_cache(maxsize=65536)
def _fold_char(ch: str) -> str:
    if ch in _FOLD:
        return _FOLD[ch]
    out = unicodedata.normalize("NFKC", ch).casefold()
    if _T2S is not None and len(out) == 1 and is_cjk(out):
        simp = _T2S.convert(out)
        if len(simp) == 1:
            out = simp
    return "".join(_FOLD.get(c, c) for c in out)


def _is_punct(ch: str) -> bool:
    return not ch.isalnum() and not ch.isspace()


@dataclass(frozen=True, slots=True)
class Normalized:
    """A normalised string and, per normalised character, its original index."""

    text: str
    index: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """Original half-open span covering normalised characters ``[start, end)``."""
        return self.index[start], self.index[end - 1] + 1


def normalize(text: str) -> Normalized:
    """Normalise ``text`` for matching and keep the map back to original offsets."""
    chars: list[str] = []
    index: list[int] = []
    pending_space = False
    for i, ch in enumerate(text):
        if ch.isspace():
            pending_space = True
            continue
        folded = _fold_char(ch) if not ch.isascii() or ch.isupper() or ch in _FOLD else ch
        for c in folded:
            if c.isspace():
                pending_space = True
                continue
            if pending_space and chars and not _is_punct(c) and not _is_punct(chars[-1]):
                chars.append(" ")
                index.append(i)
            pending_space = False
            chars.append(c)
            index.append(i)
    return Normalized("".join(chars), tuple(index))
