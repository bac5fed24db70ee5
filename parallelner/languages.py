"""The languages the pipeline knows, and script statistics over them.

The one list of supported languages (``LANG_NAMES`` / ``LANGUAGES``, with
``unknown_language`` for the message), their names for prompts, Chinese variants, and
how much of a text is written in the script of a language. Guessing *which* language a
text is in (function words, langdetect) is ``parallelner.quality.language_guess``.

The one place for the character -> script table and for counting by script; the
checks built on it are thin thresholds: ``looks_like`` (stage 1: did the LLM translate
at all?), ``parallelner.align.cascade.script_ok`` (projection: is the human target in
the right script?) and ``parallelner.quality.checks.check_language``.

Not a language identifier: it only tells Chinese from Latin-script languages from Cyrillic
and so on, which is what catches an LLM that copied the source sentence untranslated.

Two counting units over the same table (``script_counts(text, unit=...)``):

- ``"letter"``: every letter (``str.isalpha``) counts once; digits, punctuation and
  spaces never decide. Stage 1 and projection count this way.
- ``"token"``: every Han or kana character is one token (those scripts write no
  spaces), every run of letters of another script is one token, and URLs and e-mail
  addresses are removed first (they are neither language). Chinese text routinely
  embeds Latin names glued together without spaces (CLUENER has
  ``透纳（josephmallordwilliamturner）``): counted per letter such a sentence looks mostly
  Latin, counted per token it is plainly Chinese. The quality language check counts
  this way.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from typing import Literal

__all__ = [
    "LANG_NAMES",
    "LANGUAGES",
    "unknown_language",
    "lang_name",
    "prompt_names",
    "SCRIPT_OF",
    "script_of",
    "char_script",
    "strip_urls",
    "script_counts",
    "expected_scripts",
    "script_share",
    "script_token_share",
    "looks_like",
    "zh_variant",
    "variant_counts",
    "convert_variant",
]

Unit = Literal["letter", "token"]

# BCP-47 primary language subtag -> script name (the prefix of the Unicode character name,
# or the name given in ``_RANGES``).
SCRIPT_OF: dict[str, str] = {
    "zh": "CJK",
    "ja": "CJK",  # and KANA: see ``expected_scripts``
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

# Character ranges whose script the Unicode name does not say plainly (kana are named
# HIRAGANA/KATAKANA, ``ª`` FEMININE ORDINAL INDICATOR...). Every other character's
# script is the first word of its Unicode name (HANGUL, CYRILLIC, ARABIC, GREEK...).
_RANGES: tuple[tuple[int, int, str], ...] = (
    (0x3400, 0x4DBF, "CJK"),  # Han, extension A
    (0x4E00, 0x9FFF, "CJK"),  # Han, unified ideographs
    (0xF900, 0xFAFF, "CJK"),  # Han, compatibility ideographs
    (0x20000, 0x3134F, "CJK"),  # Han, extensions B-G
    (0x3040, 0x30FF, "KANA"),  # hiragana, katakana
    (0x31F0, 0x31FF, "KANA"),  # katakana phonetic extensions
    (0x0000, 0x024F, "LATIN"),  # Basic Latin to Latin Extended-B
    (0x1E00, 0x1EFF, "LATIN"),  # Latin Extended Additional
)


def _char_class(script: str) -> str:
    """The ``_RANGES`` of ``script`` as the inside of a regex character class."""
    return "".join(f"{chr(lo)}-{chr(hi)}" for lo, hi, s in _RANGES if s == script)


_HAN = _char_class("CJK")
_KANA = _char_class("KANA")
_TOKEN = re.compile(rf"([{_HAN}])|([{_KANA}])|([^\W\d_{_HAN}{_KANA}]+)")
# ASCII only, so that a URL glued to Chinese text (``.../vote.htm)也已全面启动``) stops
# at the first non-ASCII character.
_URL = re.compile(
    r"(?:https?://|www\.)[!-~]*"
    r"|[\w.+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+"
    r"|\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|cn|net|org|edu|gov|php|html?)\b[!-~]*",
    re.ASCII,
)

# Share of letters that must be in the language's script for ``looks_like``. Chinese text
# routinely carries Latin names and acronyms (NBA, iPhone), so its bar is lower.
_MIN_SHARE: dict[str, float] = {"CJK": 0.3, "HANGUL": 0.3}
_DEFAULT_MIN_SHARE = 0.6


def script_of(lang: str) -> str:
    """The script expected for a BCP-47 tag (``zh-Hans`` -> CJK; unknown -> LATIN)."""
    return SCRIPT_OF.get(lang.split("-")[0].lower(), "LATIN")


@functools.lru_cache(maxsize=1 << 16)  # one entry per distinct character seen
def char_script(ch: str) -> str:
    """The script of one character: ``CJK`` (Han), ``KANA``, ``LATIN``, ``CYRILLIC``..."""
    code = ord(ch)
    for lo, hi, script in _RANGES:
        if lo <= code <= hi:
            return script
    try:
        return unicodedata.name(ch).split(" ")[0]
    except ValueError:
        return "UNKNOWN"


def strip_urls(text: str) -> str:
    """``text`` with URLs, bare domains and e-mail addresses replaced by a space."""
    return _URL.sub(" ", text)


def script_counts(text: str, unit: Unit = "letter") -> Counter[str]:
    """Letters (``unit="letter"``) or word tokens (``unit="token"``) of ``text`` per script.

    See the module docstring for what a token is; tokens are counted after
    ``strip_urls``.
    """
    if unit == "letter":
        return Counter(map(char_script, filter(str.isalpha, text)))
    counts: Counter[str] = Counter()
    for han, kana, run in _TOKEN.findall(strip_urls(text)):
        # a run of letters takes the script of its first letter
        counts["CJK" if han else "KANA" if kana else char_script(run[0])] += 1
    return counts


def expected_scripts(lang: str, unit: Unit = "token") -> frozenset[str]:
    """The scripts a text in ``lang`` is written in (Japanese: Han and kana).

    Counting letters, kana also count for Chinese (stage 1 asks "translated into a
    CJK script at all?", not "Chinese rather than Japanese?").
    """
    script = script_of(lang)
    if script == "CJK" and (unit == "letter" or lang.split("-")[0].lower() == "ja"):
        return frozenset({"CJK", "KANA"})
    return frozenset({script})


def script_share(
    text: str, lang: str, unit: Unit = "letter", counts: Counter[str] | None = None
) -> float:
    """Share (0..1) of the letters (or tokens) of ``text`` written in ``lang``'s script.

    ``counts`` (from ``script_counts(text, unit)``) saves counting twice. Text without
    any letters (numbers, punctuation, only a URL) returns 1.0: there is nothing to
    contradict the language.
    """
    counts = script_counts(text, unit) if counts is None else counts
    total = sum(counts.values())
    if total == 0:
        return 1.0
    return sum(counts[s] for s in expected_scripts(lang, unit)) / total


def script_token_share(text: str, lang: str, counts: Counter[str] | None = None) -> float:
    """Share (0..1) of the word tokens of ``text`` written in ``lang``'s script."""
    return script_share(text, lang, "token", counts)


def looks_like(text: str, lang: str) -> bool:
    """True when ``text`` is plausibly written in ``lang`` (by the share of its letters)."""
    want = script_of(lang)
    return script_share(text, lang) >= _MIN_SHARE.get(want, _DEFAULT_MIN_SHARE)


# BCP-47 primary subtag -> English name (for prompts): the languages the pipeline knows.
LANG_NAMES: dict[str, str] = {
    "en": "English",
    "zh": "Chinese",
    "de": "German",
    "es": "Spanish",
    "it": "Italian",
    "fr": "French",
    "pt": "Portuguese",
    "nl": "Dutch",
    "ru": "Russian",
    "ja": "Japanese",
    "ko": "Korean",
    "ar": "Arabic",
}


# The languages the pipeline supports (``--to`` / ``--from``, reader tags): the one list,
# derived from the names above.
LANGUAGES = frozenset(LANG_NAMES)


# a BCP-47 tag: a known language, then subtags of 1-8 letters or digits (zh-Hant, pt-BR)
_SUBTAGS = re.compile(r"(?:-[A-Za-z0-9]{1,8})*")


def unknown_language(lang: str) -> str | None:
    """The message for a language code the pipeline does not support; None when known.

    A tag with subtags (``zh-Hant``, ``zh-TW``, ``pt-BR``) is known when its language is:
    the checks read the language, and Chinese variants from the rest (``zh_variant``).
    """
    base, dash, rest = lang.partition("-")
    if base in LANGUAGES and _SUBTAGS.fullmatch(dash + rest):
        return None
    return (
        f"unknown language {lang!r}: use a BCP-47 code among {', '.join(sorted(LANGUAGES))}"
        " (with subtags if you like: zh-Hant, pt-BR)"
    )


def lang_name(lang: str) -> str:
    """English name of a BCP-47 language tag, for prompts (``pt-BR`` -> Portuguese); a
    Chinese variant is named, since the checks hold the reply to it (``zh-Hant`` ->
    Traditional Chinese, ``zh-CN`` -> Simplified Chinese)."""
    name = LANG_NAMES.get(lang.split("-")[0].lower(), lang)
    variant = zh_variant(lang)
    if variant is not None:
        return f"{'Traditional' if variant == 'hant' else 'Simplified'} {name}"
    return name


def prompt_names(src_lang: str, tgt_lang: str) -> dict[str, str]:
    """The ``$src_name`` / ``$tgt_name`` values of every prompt file."""
    return {"src_name": lang_name(src_lang), "tgt_name": lang_name(tgt_lang)}


def zh_variant(lang: str) -> str | None:
    """``"hant"`` / ``"hans"`` when a Chinese tag names a variant (``zh-Hant``, ``zh-TW``,
    ``zh-Hans``, ``zh-CN``...), else None (plain ``zh`` and other languages)."""
    tag = lang.lower()
    if tag.split("-")[0] != "zh":
        return None
    if "hant" in tag or tag in ("zh-tw", "zh-hk", "zh-mo"):
        return "hant"
    if "hans" in tag or tag in ("zh-cn", "zh-sg"):
        return "hans"
    return None


@functools.cache
def _opencc(config: str):  # noqa: ANN202 - opencc has no type stubs
    import opencc

    return opencc.OpenCC(config)


def convert_variant(text: str, to: str) -> str:
    """``text`` in Simplified (``to="hans"``) or Traditional (``"hant"``) characters (OpenCC)."""
    return _opencc("t2s" if to == "hans" else "s2t").convert(text)


def variant_counts(text: str) -> tuple[int, int]:
    """(Traditional-only, Simplified-only) characters of ``text``: the characters that
    OpenCC's ``t2s`` (``s2t``) conversion of the whole text changes."""

    def changed(config: str) -> int:
        out = _opencc(config).convert(text)
        if len(out) != len(text):  # phrase conversions changed the length: count per char
            return sum(_opencc(config).convert(c) != c for c in text)
        return sum(a != b for a, b in zip(text, out, strict=True))

    return changed("t2s"), changed("s2t")
