"""Tokens -> sentence text, keeping each token's exact character span (reversible).

Column corpora (CoNLL, WikiNEuRal) store sentences as tokens; Instances store text with
code-point offsets. ``tokens_to_text`` builds the text from the original tokens and
records where each token landed, so an entity over tokens ``[i, j)`` becomes the span
``(spans[i][0], spans[j - 1][1])`` exactly. It never detokenizes and then searches.

- Languages written without spaces (Chinese, Japanese, Thai, Lao, Khmer, Burmese):
  tokens are joined with nothing, except that a space is kept between two tokens that
  are both Latin words of two or more letters or digits (``Windows`` ``XP``; but the
  characters ``C`` ``S`` ``O`` ``L`` of a character-level corpus give ``CSOL``).
- Every other language: the Moses detokenizer (``sacremoses``) only *decides* where
  the spaces go (no space before ``,`` or ``'s``, quotes hug their content...); the text
  is then built from the original tokens, so no character is ever changed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = ["Detokenized", "tokens_to_text", "NO_SPACE_LANGS"]

NO_SPACE_LANGS = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "yue", "wuu"})


@dataclass(frozen=True, slots=True)
class Detokenized:
    """Sentence text and, per token, its half-open code-point span in that text."""

    text: str
    spans: tuple[tuple[int, int], ...]

    def char_span(self, first: int, last: int) -> tuple[int, int]:
        """Character span covering tokens ``first`` .. ``last`` (both inclusive)."""
        return self.spans[first][0], self.spans[last][1]

    def token_index(self, char: int) -> int | None:
        """Index of the token containing character ``char``, or None (a space)."""
        lo, hi = 0, len(self.spans)
        while lo < hi:
            mid = (lo + hi) // 2
            start, end = self.spans[mid]
            if char < start:
                hi = mid
            elif char >= end:
                lo = mid + 1
            else:
                return mid
        return None


def _base_lang(lang: str) -> str:
    return lang.replace("_", "-").split("-")[0].lower()


@lru_cache(maxsize=32)
def _moses(lang: str):  # noqa: ANN202 - sacremoses has no type hints
    from sacremoses import MosesDetokenizer

    return MosesDetokenizer(lang=lang)


def _spaces_from_moses(tokens: Sequence[str], lang: str) -> list[bool]:
    """For each token, whether a space precedes it, as the Moses detokenizer puts them."""
    out = _moses(lang).detokenize(list(tokens), unescape=False)
    spaces = [False] * len(tokens)
    pos = 0
    n = len(out)
    resync = False
    for i, tok in enumerate(tokens):
        gap = pos
        while gap < n and out[gap] == " ":
            gap += 1
        if out.startswith(tok, gap):
            spaces[i] = gap > pos or resync
            pos = gap + len(tok)
            resync = False
        else:
            # Moses rewrote this token (e.g. its ``@-@`` hyphen rule): fall back to a
            # plain space here and re-synchronise on the next token.
            spaces[i] = True
            nxt = out.find(tokens[i + 1], gap) if i + 1 < len(tokens) else -1
            pos = nxt if nxt >= 0 else n
            resync = True
    return spaces


def _spaces_no_space_lang(tokens: Sequence[str]) -> list[bool]:
    # A space only between two whole Latin words (``Windows`` ``XP``): character-level
    # corpora split ``CSOL`` into ``C`` ``S`` ``O`` ``L``, which must stay together.
    words = [len(t) > 1 and t.isascii() and t.isalnum() for t in tokens]
    return [False] + [words[i - 1] and words[i] for i in range(1, len(tokens))]


def tokens_to_text(tokens: Sequence[str], lang: str) -> Detokenized:
    """Join ``tokens`` into readable text for ``lang`` and record every token's span.

    Guarantees ``text[start:end] == tokens[i]`` for ``(start, end) = spans[i]``; the only
    characters added are single spaces between tokens. Empty tokens are not allowed
    (the readers report them as malformed lines before calling this).
    """
    if not tokens:
        return Detokenized("", ())
    base = _base_lang(lang)
    if base in NO_SPACE_LANGS:
        spaces = _spaces_no_space_lang(tokens)
    else:
        spaces = _spaces_from_moses(tokens, base)
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    pos = 0
    for i, tok in enumerate(tokens):
        if i and spaces[i]:
            parts.append(" ")
            pos += 1
        parts.append(tok)
        spans.append((pos, pos + len(tok)))
        pos += len(tok)
    return Detokenized("".join(parts), tuple(spans))
