"""Accepted ParallelRecords from a gold projection file (``data/projection-dev/*.jsonl``).

The projection dev sets hold human-aligned pairs (source instance, target text, gold
target spans). Read as ``accepted`` records they give a small real data set for the
CPU tests and the GPU smoke run without a pipeline run or a store.
"""

from __future__ import annotations

import json
from pathlib import Path

from parallelner.errors import InputError
from parallelner.reasons import Reason, Status
from parallelner.records import Entity, ParallelRecord, ProjectedEntity, sort_entities
from parallelner.version import PIPELINE_VERSION

__all__ = ["records_from_projection_gold"]


def records_from_projection_gold(
    path: Path, dataset: str = "wikineural", limit: int | None = None, run_id: str = "gold"
) -> list[ParallelRecord]:
    """Read a projection JSONL file with ``gold`` target spans as accepted ParallelRecords."""
    out: list[ParallelRecord] = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if limit is not None and len(out) >= limit:
                break
            try:
                row = json.loads(line)
                src, tgt = row["source"], row["target"]
                src_entities = sort_entities(Entity(**e) for e in src.get("entities", []))
                gold = sorted(row.get("gold", []), key=lambda e: (e["start"], e["end"]))
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
                            ProjectedEntity(**e, source_index=i, method="gold", score=1.0)
                            for i, e in enumerate(gold)
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
