"""Offsets at the Label Studio boundary: Python code points <-> JavaScript UTF-16 units.

Inside the project a span is ``text[start:end]`` over Python ``str`` (code points).
Label Studio's frontend measures text with JavaScript strings, where every character
outside the Basic Multilingual Plane (emoji, CJK Extension B...) counts as two UTF-16
code units. These two functions are the only place that converts between the two.
"""

from __future__ import annotations

__all__ = ["to_utf16", "from_utf16", "utf16_len"]


def _units(ch: str) -> int:
    return 2 if ord(ch) > 0xFFFF else 1


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units (JavaScript's ``text.length``)."""
    return sum(_units(ch) for ch in text)


def to_utf16(text: str, index: int) -> int:
    """Code-point index into ``text`` -> UTF-16 code-unit index (0 <= index <= len)."""
    if not 0 <= index <= len(text):
        raise ValueError(f"code-point index {index} is outside the text (length {len(text)})")
    return utf16_len(text[:index])


def from_utf16(text: str, unit: int) -> int:
    """UTF-16 code-unit index -> code-point index into ``text``.

    Raises ValueError when ``unit`` is outside the text or falls between the two halves
    of a surrogate pair (no code-point index corresponds to it).
    """
    if unit < 0:
        raise ValueError(f"UTF-16 offset {unit} is negative")
    pos = 0
    for i, ch in enumerate(text):
        if pos == unit:
            return i
        pos += _units(ch)
        if pos > unit:
            raise ValueError(f"UTF-16 offset {unit} splits the character {ch!r} at {i}")
    if pos == unit:
        return len(text)
    raise ValueError(f"UTF-16 offset {unit} is outside the text (UTF-16 length {pos})")
