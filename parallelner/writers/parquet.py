"""Instances -> Parquet with the explicit ``arrow_schema(Instance)``, in batches."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from parallelner.records import Instance, arrow_schema, records_to_table
from parallelner.writers.atomic import atomic_path, write_table

__all__ = ["write_parquet", "write_table"]


def write_parquet(
    instances: Iterable[Instance], path: str | Path, *, batch_size: int = 4096
) -> int:
    """Stream ``instances`` into a Parquet file (atomic: temp file, then rename); returns the count."""
    count = 0
    with atomic_path(path) as tmp, pq.ParquetWriter(tmp, arrow_schema(Instance)) as writer:
        batch: list[Instance] = []
        for inst in instances:
            batch.append(inst)
            if len(batch) >= batch_size:
                writer.write_table(records_to_table(batch, Instance))
                count += len(batch)
                batch = []
        if batch:
            writer.write_table(records_to_table(batch, Instance))
            count += len(batch)
    return count
