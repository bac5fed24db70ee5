"""Guessing the language of a text for the quality checks: cheap rules first, langdetect
last (the table of languages and scripts is ``parallelner.languages``).

langdetect is pure Python (about 500 sentences/s on one core), too slow to call on every
pair of a 257k-pair run. Two cheap signals decide most pairs without it:

- script statistics (``parallelner.languages``, counted per token) settle Chinese, Japanese, Korean,
  Greek, Hebrew and Thai, whose scripts no other language of ours uses;
- function words (``the``, ``der``, ``el``, ``il``...) settle Latin-script sentences
  with a clear majority for one language.

Only what neither settles goes to langdetect, seeded (``DetectorFactory.seed``) so that
reruns agree, with its codes mapped to ours (``zh-cn``/``zh-tw`` -> ``zh``).
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache

from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException

__all__ = ["primary", "function_word_guess", "langdetect_guess", "FUNCTION_WORDS"]

# Frequent, short words per language. Words listed for several languages (``de``, ``la``,
# ``in``) are ignored: only words of exactly one language count (``function_word_guess``).
FUNCTION_WORDS: dict[str, frozenset[str]] = {
    lang: frozenset(words.split())
    for lang, words in {
        "en": "the of and to is that for it with as was on are be this by have from which "
        "not but at has were will would an they their we you he she his her been there or "
        "who its what can should these those i our also in a thank you mr very there",
        "de": "der die das und ist nicht ein eine zu den dem des mit sich auf für von auch "
        "es im sie wir ich wird werden sind dass daß hat haben noch nach bei aus wie aber "
        "oder einer einen über uns diese dieser zum zur was an in vielen dank herr frau "
        "sehr ihnen können muss",
        "es": "el la los las de del que y en un una es por con para se no lo al como más "
        "pero sus su este esta ha son ser también muy sobre fue hay nos esto entre señor "
        "señora señoría gracias qué está todo todos puede nuestro desde porque cuando",
        "it": "il lo la gli le di del della che e è un una per non con sono da dei delle "
        "nel nella si ha anche come più questo questa alla al ma essere stato ci degli "
        "onorevole signor signora ringrazio sarà dell mia cui ed dal dalla tale molto tutti",
        "fr": "le la les de des du et est un une que qui pour dans en pas sur au aux avec "
        "ce cette sont nous vous il elle mais ont été être ne",
        "pt": "o a os as de do da dos das que e é um uma para com não em no na por mais "
        "se foi são também mas ao pelo pela",
        "nl": "de het een en van is dat niet in op te zijn met voor die er ook aan wordt "
        "worden naar bij om maar heeft hebben dit deze",
    }.items()
}
_ALL_WORDS = [w for words in FUNCTION_WORDS.values() for w in words]
_WORD_LANG: dict[str, str] = {
    w: lang for lang, words in FUNCTION_WORDS.items() for w in words if _ALL_WORDS.count(w) == 1
}
_WORD = re.compile(r"[^\W\d_]+")


def primary(lang: str) -> str:
    """Our language code for a BCP-47 tag or a langdetect code (``zh-tw`` -> ``zh``)."""
    return lang.split("-")[0].lower()


def function_word_guess(text: str, min_hits: int = 1) -> str | None:
    """The language whose function words clearly dominate ``text``, or None.

    Counts the words that belong to one language only; clear means at least
    ``min_hits`` of them and more than twice as many as the runner-up.
    """
    hits: dict[str, int] = {}
    for word in _WORD.findall(text.lower()):
        lang = _WORD_LANG.get(word)
        if lang is not None:
            hits[lang] = hits.get(lang, 0) + 1
    if not hits:
        return None
    ranked = sorted(hits.items(), key=lambda kv: -kv[1])
    best, h1 = ranked[0]
    h2 = ranked[1][1] if len(ranked) > 1 else 0
    if h1 >= min_hits and h1 > 2 * h2:
        return best
    return None


# langdetect keeps its profiles and seed in module globals: one caller at a time, so that
# shards assessed in threads neither load the profiles twice nor mix seeds.
_LANGDETECT_LOCK = threading.Lock()


@lru_cache(maxsize=4096)
def _langdetect(text: str, seed: int) -> tuple[tuple[str, float], ...]:
    with _LANGDETECT_LOCK:
        DetectorFactory.seed = seed
        try:
            found = detect_langs(text)
        except LangDetectException:  # no letters at all
            return ()
    return tuple((primary(x.lang), x.prob) for x in found)


def langdetect_guess(text: str, seed: int = 0) -> tuple[tuple[str, float], ...]:
    """langdetect's candidates as ``((lang, prob), ...)``, best first, codes mapped to ours.

    Seeded, so the same text gives the same answer on every run; ``()`` for text with
    nothing to detect.
    """
    return _langdetect(text, seed)
