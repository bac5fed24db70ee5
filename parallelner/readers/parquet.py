"""Parquet files of Instances (``arrow_schema(Instance)``) -> Instances, in batches.

Rows are read batch by batch (constant memory) and validated exactly like span JSONL
rows (``spanjsonl.instance_from_dict``); the *line* of a row is its 1-based row number.
A file that is not Parquet, or lacks the ``text`` / ``entities`` columns, cannot be
read at all: that is an ``InputError`` even when not strict.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

from parallelner.errors import InputError
from parallelner.readers.base import ReadEvent, Source
from parallelner.readers.spanjsonl import BadRecord, instance_from_dict
from parallelner.reasons import Reason

__all__ = ["read_parquet"]

_REQUIRED = ("text", "entities")
_OPTIONAL = ("id", "lang", "source_dataset")


def read_parquet(source: Source, *, batch_size: int = 2048) -> Iterator[ReadEvent]:
    """Stream the events of a Parquet file of Instances."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(source.path)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise InputError(
            source.name, None, Reason.UNREADABLE_FILE, f"not a readable Parquet file: {exc}"
        ) from None
    names = set(pf.schema_arrow.names)
    missing = [c for c in _REQUIRED if c not in names]
    if missing:
        raise InputError(
            source.name,
            None,
            Reason.UNREADABLE_FILE,
            f"Parquet file has no column(s) {', '.join(missing)}; expected the Instance schema",
        )
    columns = [c for c in (*_OPTIONAL, *_REQUIRED) if c in names]
    seen: set[str] = set()
    row = 0
    for batch in pf.iter_batches(batch_size=batch_size, columns=columns):
        for obj in batch.to_pylist():
            row += 1
            try:
                inst = instance_from_dict(obj, source, row)
            except BadRecord as bad:
                yield source.quarantine(
                    row, bad.reason, bad.detail, json.dumps(obj, ensure_ascii=False, default=str)
                )
                continue
            if inst.id in seen:
                yield source.quarantine(
                    row,
                    Reason.DUPLICATE_ID,
                    f"instance id {inst.id!r} appears in an earlier row",
                    json.dumps(obj, ensure_ascii=False, default=str),
                )
                continue
            seen.add(inst.id)
            yield inst
