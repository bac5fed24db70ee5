"""Records built from the projection-dev pairs (``data/projection-dev/*.jsonl``): fixtures
for tests, benchmarks, demos and the training smoke run, with no LLM and no store.

One reader of those files (``read_projection_pairs``, ``file:line`` errors) and one rule
that ties a gold target span to its source entity (``match_gold``: a name written alike
first, then by label, in order).
Two views of a pair:

- ``draft_from_projection_pair``: a stage-3 *draft* (``review``): the human target sentence
  stands in for the translation and its matched gold spans for the projection; a source
  entity left without a gold span becomes an ``UnprojectedEntity`` (``not_found``), as
  stage 2 would report it;
- ``records_from_projection_gold``: *accepted* records for training, keeping every gold
  span (the target annotation is what is learned).
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parallelner.errors import InputError
from parallelner.reasons import Reason, Status
from parallelner.records import (
    Entity,
    ParallelRecord,
    ProjectedEntity,
    UnprojectedEntity,
    sort_entities,
)
from parallelner.version import PIPELINE_VERSION

__all__ = [
    "DEV_SETS",
    "read_projection_pairs",
    "match_gold",
    "draft_from_projection_pair",
    "records_from_projection_gold",
    "read_projection_drafts",
    "cluener_texts",
    "projection_texts",
    "target_only_record",
]


# The projection-dev files as the quality benchmarks run them: direction -> (file, the
# target language asked; the PUD Chinese side is Traditional, so zh-Hant).
DEV_SETS: dict[str, tuple[str, str]] = {
    "en-de": ("europarl-en-de.jsonl", "de"),
    "en-es": ("europarl-en-es.jsonl", "es"),
    "en-it": ("europarl-en-it.jsonl", "it"),
    "en-zh": ("pud-en-zh.jsonl", "zh-Hant"),
}


def read_projection_pairs(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, pair)`` for each line of a projection-dev file; InputError on bad JSON."""
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), number, Reason.INVALID_JSON, exc.msg) from None


def _same_name(a: str, b: str) -> bool:
    """The same name written alike: case, spaces and NFKC aside ("Mohammed al - Jadaan" and
    "Mohammedal-Jadaan", "Cox" and "Cox")."""
    fold = lambda t: "".join(unicodedata.normalize("NFKC", t).casefold().split())  # noqa: E731
    return fold(a) == fold(b) != ""


# between a name and the gold span of its gloss: the bracket opened right after the name
# (``薩勒曼（KingSalaman）``: "（King")
GLOSS_GAP = re.compile(r"\s*[（(][^（()）]*")


def match_gold(
    src_entities: tuple[Entity, ...], gold: list[dict[str, Any]], tgt_text: str = ""
) -> list[tuple[dict[str, Any], int | None]]:
    """Each gold span (sorted by start) with the index of its source entity, or None.

    1. A gold span that writes a source mention of the same label alike is that entity's
       (``Texas`` is Texas even when the translation names "Vereinigten Staaten" first,
       and ``Cox`` is Cox when it comes second). When that span is a bracketed gloss
       right after another gold span of the label (``大京都大廈（MahaNakhon）``), the span
       before the brackets is the entity's: the name of the sentence; the gloss is
       nobody's.
    2. The rest by label, in order: the first source entity of the same label not
       matched yet.

    ``tgt_text`` (the target sentence) is needed to see glosses; without it none is seen.
    """

    def gloss_of(k: int) -> int | None:
        """The gold span ``k`` is a bracketed gloss of (the one before it), if any."""
        j = k - 1
        if not tgt_text or j < 0 or gold[j]["label"] != gold[k]["label"]:
            return None
        gap = tgt_text[gold[j]["end"] : gold[k]["start"]]
        return j if GLOSS_GAP.fullmatch(gap) else None

    index: dict[int, int] = {}
    glosses: set[int] = set()
    for k, g in enumerate(gold):
        i = next(
            (
                i
                for i, e in enumerate(src_entities)
                if i not in index.values()
                and e.label == g["label"]
                and _same_name(e.text, g["text"])
            ),
            None,
        )
        if i is None:
            continue
        host = gloss_of(k)
        if host is not None and host not in index:
            index[host] = i
            glosses.add(k)
        else:
            index[k] = i
    for k, g in enumerate(gold):
        if k in index or k in glosses:
            continue
        i = next(
            (
                i
                for i, e in enumerate(src_entities)
                if i not in index.values() and e.label == g["label"]
            ),
            None,
        )
        if i is not None:
            index[k] = i
    return [(g, index.get(k)) for k, g in enumerate(gold)]


def draft_from_projection_pair(
    pair: dict[str, Any], run_id: str = "dev", back_translation: str | None = None
) -> ParallelRecord:
    """A ``review``-status draft (as stage 2 hands it over) from one projection-dev pair."""
    src, tgt = pair["source"], pair["target"]
    src_entities = tuple(Entity(**e) for e in src.get("entities", ()))
    projected = []
    gold = sorted(pair.get("gold", ()), key=lambda g: (g["start"], g["end"]))
    for g, index in match_gold(src_entities, gold, tgt["text"]):
        if index is None:
            continue
        projected.append(
            ProjectedEntity(
                start=g["start"],
                end=g["end"],
                label=g["label"],
                text=g["text"],
                source_index=index,
                method="gold",
                score=1.0,
            )
        )
    unprojected = tuple(
        UnprojectedEntity(source_index=i, label=e.label, text=e.text, reason=Reason.NOT_FOUND)
        for i, e in enumerate(src_entities)
        if i not in {p.source_index for p in projected}
    )
    return ParallelRecord(
        record_id=pair["id"],
        instance_id=src["id"],
        run_id=run_id,
        source_dataset="projection-dev",
        src_lang=src["lang"],
        tgt_lang=tgt["lang"],
        src_text=src["text"],
        src_entities=src_entities,
        tgt_text=tgt["text"],
        tgt_entities=tuple(sorted(projected, key=lambda e: (e.start, e.end))),
        unprojected=unprojected,
        back_translation=back_translation,
        status=Status.REVIEW,
        pipeline_version=PIPELINE_VERSION,
        prompt_version="none",
        model="human",
        config_hash="dev",
    )


def read_projection_drafts(path: Path, run_id: str = "dev") -> Iterator[ParallelRecord]:
    """Drafts from a projection-dev JSONL file (``file:line`` errors for bad lines)."""
    for number, pair in read_projection_pairs(path):
        try:
            yield draft_from_projection_pair(pair, run_id)
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(str(path), number, Reason.MALFORMED_LINE, str(exc)) from None


def records_from_projection_gold(
    path: Path, dataset: str = "wikineural", limit: int | None = None, run_id: str = "gold"
) -> list[ParallelRecord]:
    """A projection file with ``gold`` target spans as *accepted* records (for training).

    Every gold span is kept; its ``source_index`` is the matched source entity
    (``match_gold``), or, for a span whose label no free source entity has, its position
    among the gold spans.
    """
    out: list[ParallelRecord] = []
    for n, row in read_projection_pairs(path):
        if limit is not None and len(out) >= limit:
            break
        try:
            src, tgt = row["source"], row["target"]
            src_entities = sort_entities(Entity(**e) for e in src.get("entities", []))
            gold = sorted(row.get("gold", []), key=lambda e: (e["start"], e["end"]))
            matched = match_gold(tuple(src_entities), gold, tgt["text"])
            out.append(
                ParallelRecord(
                    record_id=f"{run_id}-{row['id']}",
                    instance_id=src["id"],
                    run_id=run_id,
                    source_dataset=dataset,
                    src_lang=src["lang"],
                    tgt_lang=tgt["lang"],
                    src_text=src["text"],
                    src_entities=src_entities,
                    tgt_text=tgt["text"],
                    tgt_entities=tuple(
                        ProjectedEntity(
                            **e,
                            source_index=i if index is None else index,
                            method="gold",
                            score=1.0,
                        )  # fmt: skip
                        for i, (e, index) in enumerate(matched)
                    ),
                    status=Status.ACCEPTED,
                    pipeline_version=PIPELINE_VERSION,
                    prompt_version="gold",
                    model="human",
                    config_hash="gold",
                )
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(
                str(path),
                n,
                Reason.MALFORMED_LINE,
                f"not a projection line with gold spans ({exc})",
            ) from None
    return out


def cluener_texts(data_dir: Path) -> list[str]:
    """Every CLUENER train+dev sentence (real Chinese text) under ``data_dir/sources``."""
    out: list[str] = []
    for name in ("cluener-train.json", "cluener-dev.json"):
        with open(data_dir / "sources" / name, encoding="utf-8") as fh:
            out += [json.loads(line)["text"] for line in fh if line.strip()]
    return out


def projection_texts(data_dir: Path, name: str, side: str = "target") -> list[str]:
    """The ``side`` ("source" or "target") sentences of ``projection-dev/<name>.jsonl``."""
    with open(data_dir / "projection-dev" / f"{name}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line)[side]["text"] for line in fh]


def target_only_record(src_lang: str, tgt_lang: str, tgt_text: str) -> ParallelRecord:
    """A minimal record whose only content is a target text (for the language checks)."""
    return ParallelRecord(
        record_id="r", instance_id="i", run_id="t", src_lang=src_lang, tgt_lang=tgt_lang,
        src_text="-", tgt_text=tgt_text, status=Status.REVIEW, pipeline_version="0",
        prompt_version="0", model="m", config_hash="c",
    )  # fmt: skip
