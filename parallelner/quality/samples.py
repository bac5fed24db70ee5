"""Stage-3 drafts built from projection-dev pairs (``data/projection-dev/*.jsonl``).

For tests, benchmarks and demos of the quality stage without an LLM: the human target
sentence stands in for the translation and its gold spans for the projection. Gold
spans are matched to source entities by label, in order; a source entity left without
a gold span becomes an ``UnprojectedEntity`` (``not_found``), as stage 2 would report it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parallelner.errors import InputError
from parallelner.reasons import Reason, Status
from parallelner.records import Entity, ParallelRecord, ProjectedEntity, UnprojectedEntity
from parallelner.version import PIPELINE_VERSION

__all__ = [
    "draft_from_projection_pair",
    "read_projection_drafts",
    "cluener_texts",
    "projection_texts",
    "target_only_record",
]


def draft_from_projection_pair(
    pair: dict[str, Any], run_id: str = "dev", back_translation: str | None = None
) -> ParallelRecord:
    """A ``review``-status draft (as stage 2 hands it over) from one projection-dev pair."""
    src, tgt = pair["source"], pair["target"]
    src_entities = tuple(Entity(**e) for e in src.get("entities", ()))
    used: set[int] = set()
    projected = []
    for g in pair.get("gold", ()):
        index = next(
            (i for i, e in enumerate(src_entities) if i not in used and e.label == g["label"]),
            None,
        )
        if index is None:
            continue
        used.add(index)
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
        if i not in used
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
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield draft_from_projection_pair(json.loads(line), run_id)
            except json.JSONDecodeError as exc:
                raise InputError(str(path), number, Reason.INVALID_JSON, exc.msg) from None
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(str(path), number, Reason.MALFORMED_LINE, str(exc)) from None


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
