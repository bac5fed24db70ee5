"""Instances -> Parquet with the explicit ``arrow_schema(Instance)``, in batches."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pyarrow.parquet as pq

from parallelner.records import Instance, arrow_schema, records_to_table
from parallelner.writers.base import open_temp_beside

__all__ = ["write_parquet"]


def write_parquet(
    instances: Iterable[Instance], path: str | Path, *, batch_size: int = 4096
) -> int:
    """Stream ``instances`` into a Parquet file (atomic: temp file, then rename); returns the count."""
    path = Path(path)
    fd, tmp = open_temp_beside(path)
    os.close(fd)
    count = 0
    try:
        with pq.ParquetWriter(tmp, arrow_schema(Instance)) as writer:
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
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count
