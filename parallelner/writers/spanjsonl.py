"""Instances -> span JSONL, the project's interchange format (read back by ``readers.spanjsonl``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from parallelner.records import Instance
from parallelner.writers.atomic import AtomicTextWriter

__all__ = ["SpanJsonlWriter", "write_span_jsonl", "instance_to_json"]


def instance_to_json(instance: Instance) -> str:
    """One Instance as one span-JSONL line (no newline); entity text is included."""
    return json.dumps(
        {
            "id": instance.id,
            "lang": instance.lang,
            "text": instance.text,
            "entities": [
                {"start": e.start, "end": e.end, "label": e.label, "text": e.text}
                for e in instance.entities
            ],
            "source_dataset": instance.source_dataset,
        },
        ensure_ascii=False,
    )


class SpanJsonlWriter(AtomicTextWriter):
    """Streaming span-JSONL writer; the file appears (atomically) on close."""

    def write(self, instance: Instance) -> None:
        """Append one Instance."""
        self.write_line(instance_to_json(instance))


def write_span_jsonl(instances: Iterable[Instance], path: str | Path) -> int:
    """Write ``instances`` to ``path`` as span JSONL; returns how many were written."""
    with SpanJsonlWriter(path) as w:
        for inst in instances:
            w.write(inst)
    return w.count
