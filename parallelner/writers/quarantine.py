"""Quarantined inputs -> JSONL (``path``, ``line``, ``reason``, ``detail``, ``raw``)."""

from __future__ import annotations

import json

from parallelner.readers.base import Quarantined
from parallelner.writers.atomic import AtomicTextWriter

__all__ = ["QuarantineWriter"]


class QuarantineWriter(AtomicTextWriter):
    """Streaming quarantine file; pass ``writer.write`` as ``read_instances(quarantine=...)``.

    The file is written even when nothing was quarantined (empty file = nothing lost).
    """

    def write(self, item: Quarantined) -> None:
        """Append one quarantined input."""
        self.write_line(json.dumps(item.model_dump(mode="json"), ensure_ascii=False))
