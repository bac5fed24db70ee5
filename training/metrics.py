"""Strict span+type scoring of code-style NER output: P/R/F1 per language, dataset, class.

A prediction is the list of ``(class_name, mention)`` pairs read from a ``results = [...]``
reply by ``schemas.parse.parse_results`` (``ast`` only, never ``eval``). A predicted pair
is correct when a gold pair has the same class and exactly the same mention text; both
sides are multisets (a mention that occurs twice must be predicted twice).

A *malformed* reply (no results list, an item that is not valid Python or not
``Cls("...")``, a list cut off before ``]``) counts as an empty prediction, so its gold
entities are all missed, and is counted by kind. An item with a class outside the
ontology counts as a false positive under its own name.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Prediction", "read_prediction", "Tally", "score", "MALFORMED_KINDS"]

#: Problem kinds that make the whole reply malformed (scored as an empty prediction).
MALFORMED_KINDS = frozenset(
    {"no_results", "malformed", "not_an_entity", "not_a_string", "truncated"}
)


@dataclass(frozen=True)
class Prediction:
    """What one reply says: its pairs, and whether (and why) it was malformed."""

    pairs: tuple[tuple[str, str], ...]
    malformed: str | None = None  # the first malformed problem kind, if any
    unknown_classes: int = 0


def read_prediction(reply: str) -> Prediction:
    """Parse a model reply into a Prediction (malformed -> no pairs)."""
    from schemas.parse import ProblemKind, default_known, parse_results

    parsed = parse_results(reply, default_known())
    kinds = [p.kind.value for p in parsed.problems]
    bad = next((k for k in kinds if k in MALFORMED_KINDS), None)
    if bad is not None:
        return Prediction((), bad, 0)
    pairs = [(e.class_name, e.mention) for e in parsed.entities]
    unknown = [p for p in parsed.problems if p.kind is ProblemKind.UNKNOWN_CLASS]
    # unknown classes stay in the prediction, in reply order, as (wrong) pairs
    for p in unknown:
        pairs.insert(min(p.item or 0, len(pairs)), (p.class_name or "?", p.mention or ""))
    return Prediction(tuple(pairs), None, len(unknown))


@dataclass
class Tally:
    """True positives, false positives and false negatives, with P/R/F1."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, tp: int, fp: int, fn: int) -> None:
        self.tp += tp
        self.fp += fp
        self.fn += fn

    def as_dict(self) -> dict[str, float | int]:
        p = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        r = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": p, "recall": r, "f1": f}


@dataclass
class _Group:
    total: Tally = field(default_factory=Tally)
    by_class: dict[str, Tally] = field(default_factory=dict)
    examples: int = 0
    malformed: Counter[str] = field(default_factory=Counter)
    unknown_classes: int = 0

    def report(self) -> dict[str, Any]:
        return {
            "examples": self.examples,
            **self.total.as_dict(),
            "malformed": sum(self.malformed.values()),
            "malformed_by_kind": dict(sorted(self.malformed.items())),
            "unknown_class_items": self.unknown_classes,
            "by_class": {c: t.as_dict() for c, t in sorted(self.by_class.items())},
        }


def _compare(gold: Iterable[tuple[str, str]], pred: Iterable[tuple[str, str]]):
    g, p = Counter(gold), Counter(pred)
    per_class: dict[str, list[int]] = {}
    for pair in g | p:
        hit = min(g[pair], p[pair])
        row = per_class.setdefault(pair[0], [0, 0, 0])
        row[0] += hit
        row[1] += p[pair] - hit
        row[2] += g[pair] - hit
    return per_class


def score(
    items: Sequence[tuple[dict[str, str], Sequence[tuple[str, str]], Prediction]],
    groups: Sequence[str] = ("lang", "dataset", "task"),
) -> dict[str, Any]:
    """Score ``(meta, gold pairs, prediction)`` items: overall and per value of each group key.

    ``meta`` carries the group keys (``lang``, ``dataset``, ``task``...). Returns
    ``{"overall": {...}, "by_lang": {"en": {...}}, ...}``; each block has tp/fp/fn,
    precision/recall/f1, malformed counts and a per-class breakdown.
    """
    overall = _Group()
    split: dict[str, dict[str, _Group]] = {k: {} for k in groups}
    for meta, gold, pred in items:
        per_class = _compare(gold, pred.pairs)
        targets = [overall] + [split[k].setdefault(str(meta.get(k, "")), _Group()) for k in groups]
        for grp in targets:
            grp.examples += 1
            if pred.malformed:
                grp.malformed[pred.malformed] += 1
            grp.unknown_classes += pred.unknown_classes
            for cls, (tp, fp, fn) in per_class.items():
                grp.total.add(tp, fp, fn)
                grp.by_class.setdefault(cls, Tally()).add(tp, fp, fn)
    out: dict[str, Any] = {"overall": overall.report()}
    for k in groups:
        out[f"by_{k}"] = {v: g.report() for v, g in sorted(split[k].items())}
    return out
