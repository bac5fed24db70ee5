"""Writers: span JSONL, quarantine JSONL and Parquet of Instances (all atomic, streaming)."""

from parallelner.writers.parquet import write_parquet
from parallelner.writers.quarantine import QuarantineWriter
from parallelner.writers.spanjsonl import SpanJsonlWriter, instance_to_json, write_span_jsonl

__all__ = [
    "QuarantineWriter",
    "SpanJsonlWriter",
    "instance_to_json",
    "write_parquet",
    "write_span_jsonl",
]
