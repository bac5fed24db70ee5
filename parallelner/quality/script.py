"""Script statistics over word tokens: how much of a text is written in a language's script.

Counts *tokens*, not letters: every Han or kana character is one token (those scripts
write no spaces), and every run of letters of another script is one token. Chinese
text routinely embeds Latin names glued together without spaces (CLUENER has
``透纳（josephmallordwilliamturner）``): counted per letter, such a sentence looks mostly
Latin; counted per token it is plainly Chinese. URLs and e-mail addresses are removed
first: they are neither language.

The language -> script map is ``parallelner.langid.script_of`` (one place for it).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from parallelner.langid import script_of

__all__ = ["strip_urls", "script_counts", "expected_scripts", "script_token_share"]

_HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_KANA = "\u3040-\u30ff\u31f0-\u31ff"
_TOKEN = re.compile(rf"([{_HAN}])|([{_KANA}])|([^\W\d_{_HAN}{_KANA}]+)")
# ASCII only, so that a URL glued to Chinese text (``.../vote.htm)也已全面启动``) stops
# at the first non-ASCII character.
_URL = re.compile(
    r"(?:https?://|www\.)[!-~]*"
    r"|[\w.+-]+@[A-Za-z0-9-]+\.[A-Za-z0-9.-]+"
    r"|\b[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.(?:com|cn|net|org|edu|gov|php|html?)\b[!-~]*",
    re.ASCII,
)


def strip_urls(text: str) -> str:
    """``text`` with URLs, bare domains and e-mail addresses replaced by a space."""
    return _URL.sub(" ", text)


def _run_script(run: str) -> str:
    code = ord(run[0])
    if code < 0x250 or 0x1E00 <= code <= 0x1EFF:
        return "LATIN"
    try:
        return unicodedata.name(run[0]).split(" ")[0]
    except ValueError:
        return "UNKNOWN"


def script_counts(text: str) -> Counter[str]:
    """Tokens per script (``CJK`` for Han, ``KANA``, ``LATIN``, ``CYRILLIC``...)."""
    counts: Counter[str] = Counter()
    for han, kana, run in _TOKEN.findall(strip_urls(text)):
        if han:
            counts["CJK"] += 1
        elif kana:
            counts["KANA"] += 1
        else:
            counts[_run_script(run)] += 1
    return counts


def expected_scripts(lang: str) -> frozenset[str]:
    """The scripts a text in ``lang`` is written in (Japanese: Han and kana)."""
    script = script_of(lang)
    if lang.split("-")[0].lower() == "ja":
        return frozenset({"CJK", "KANA"})
    return frozenset({script})


def script_token_share(text: str, lang: str, counts: Counter[str] | None = None) -> float:
    """Share (0..1) of the word tokens of ``text`` written in ``lang``'s script.

    Text without letters (numbers, punctuation, only a URL) returns 1.0: nothing in it
    contradicts the language.
    """
    counts = script_counts(text) if counts is None else counts
    total = sum(counts.values())
    if total == 0:
        return 1.0
    return sum(counts[s] for s in expected_scripts(lang)) / total
