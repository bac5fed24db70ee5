"""Readers: one module per input format, streaming validated Instances (see ``base``)."""

from parallelner.readers.base import (
    FORMATS,
    Quarantined,
    ReadEvent,
    ReadReport,
    Repaired,
    detect_format,
    read_events,
    read_instances,
)

__all__ = [
    "FORMATS",
    "Quarantined",
    "ReadEvent",
    "ReadReport",
    "Repaired",
    "detect_format",
    "read_events",
    "read_instances",
]
