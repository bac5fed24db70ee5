"""Real sentences for the schema tests, read from the repository's data/ directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data"


def cluener_pairs(limit: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """Return ``(sentence, [(cluener label, mention), ...])`` for the first CLUENER dev lines."""
    rows = []
    with (DATA / "sources" / "cluener-dev.json").open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            spans = [
                (start, label, mention)
                for label, mentions in record["label"].items()
                for mention, offsets in mentions.items()
                for start, _end in offsets
            ]
            rows.append((record["text"], [(label, mention) for _, label, mention in sorted(spans)]))
            if len(rows) == limit:
                break
    return rows


def wikineural_pairs(limit: int) -> list[tuple[str, list[tuple[str, str]]]]:
    """Return ``(sentence, [(tag type, mention), ...])`` for the first WikiNEuRal sentences.

    Tokens are joined with single spaces; an I- tag that follows O or another type starts
    a new entity, as conlleval reads it.
    """
    rows: list[tuple[str, list[tuple[str, str]]]] = []
    tokens: list[tuple[str, str]] = []
    with (DATA / "sources" / "wikineural-en-val.conllu").open(encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                tokens.append((parts[1], parts[2]))
                continue
            if not tokens:
                continue
            entities: list[tuple[str, list[str]]] = []
            previous = "O"
            for token, tag in tokens:
                if tag.startswith("I-") and previous[2:] == tag[2:]:
                    entities[-1][1].append(token)
                elif tag != "O":  # B-, or an I- that follows O or another type
                    entities.append((tag[2:], [token]))
                previous = tag
            rows.append((" ".join(t for t, _ in tokens), [(k, " ".join(w)) for k, w in entities]))
            tokens = []
            if len(rows) == limit:
                break
    return rows


@pytest.fixture(scope="session")
def pud_en_zh() -> list[dict]:
    """Return the English-Chinese PUD projection examples (source entities and gold target)."""
    path = DATA / "projection-dev" / "pud-en-zh.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
