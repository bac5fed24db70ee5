"""Offsets at the Label Studio boundary: code points, and JavaScript UTF-16 units.

Inside the project a span is ``text[start:end]`` over Python ``str`` (code points).
JavaScript strings count every character outside the Basic Multilingual Plane (emoji,
CJK Extension B...) as two UTF-16 code units, and older Label Studio frontends stored
such offsets. Label Studio 1.23's ``<Text>`` tag stores and renders CODE-POINT offsets:
checked in headless Chromium (tests/annotation/test_ui.py): selecting 美國 after
"🎉𠮷 \"雖然" gives start 6, end 8, and a prediction at 8-10 is drawn two characters
late. So ``TEXT_UNITS`` is "codepoint"; ``resolve_span`` still accepts a span whose
offsets only make sense as UTF-16 units (an API client that used JavaScript lengths),
deciding by the region's own ``text``.
"""

from __future__ import annotations

__all__ = [
    "TEXT_UNITS",
    "to_utf16",
    "from_utf16",
    "utf16_len",
    "to_label_studio",
    "resolve_span",
]

TEXT_UNITS = "codepoint"  # what Label Studio 1.23's <Text> tag uses for start/end


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


def to_label_studio(text: str, index: int) -> int:
    """Code-point index -> the offset Label Studio's ``<Text>`` tag expects."""
    if TEXT_UNITS == "utf16":
        return to_utf16(text, index)
    if not 0 <= index <= len(text):
        raise ValueError(f"code-point index {index} is outside the text (length {len(text)})")
    return index


def resolve_span(text: str, start: int, end: int, surface: str | None) -> tuple[int, int]:
    """A Label Studio span -> (start, end) in code points, checked against the text.

    Tries ``TEXT_UNITS`` first, then the other unit; a reading is taken only when the
    span lies inside the text and (when ``surface`` is given) reads ``surface`` there.
    Raises ValueError saying what does not fit.
    """
    units = [TEXT_UNITS, "utf16" if TEXT_UNITS == "codepoint" else "codepoint"]
    problem = ""
    for unit in units:
        try:
            s, e = (
                (start, end)
                if unit == "codepoint"
                else (from_utf16(text, start), from_utf16(text, end))
            )
        except ValueError as exc:
            problem = problem or str(exc)
            continue
        if not 0 <= s < e <= len(text):
            problem = (
                problem or f"span {start}-{end} is outside the text (length {len(text)}) or empty"
            )
            continue
        if surface is None or text[s:e] == surface:
            return s, e
        problem = (
            problem or f"span {start}-{end} reads {text[s:e]!r} in the target, not {surface!r}"
        )
    raise ValueError(problem)
