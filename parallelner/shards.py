"""Split a stream of instances into content-hashed shards, the unit of orchestration.

A shard's id is the hash of its instances' canonical JSON, so the same input always gives
the same shards, and a shard's cached result stays valid until its content changes
(never keyed on file paths). Shards are written once as span JSONL under
``<home>/shards/<id>.jsonl``; writing is atomic (temp file + rename).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from parallelner.records import Instance
from parallelner.writers.base import AtomicTextWriter

__all__ = ["Shard", "make_shards", "read_shard", "instance_line", "shard_origins"]


@dataclass(frozen=True)
class Shard:
    """A batch of instances stored on disk: ``id`` is the content hash."""

    id: str
    path: Path
    size: int
    index: int  # position in the run, for stable ordering of results


def instance_line(inst: Instance) -> str:
    """Canonical one-line JSON of an instance (the span JSONL form, with entity texts)."""
    return json.dumps(inst.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def make_shards(
    instances: Iterable[Instance], directory: Path, size: int = 1000
) -> Iterator[Shard]:
    """Group ``instances`` into shards of ``size``, write each once, yield them in order."""
    directory.mkdir(parents=True, exist_ok=True)
    batch: list[str] = []
    index = 0

    def flush() -> Shard:
        digest = hashlib.sha256("\n".join(batch).encode("utf-8")).hexdigest()[:24]
        path = directory / f"{digest}.jsonl"
        if not path.exists():
            with AtomicTextWriter(path) as writer:
                for line in batch:
                    writer.write_line(line)
        return Shard(id=digest, path=path, size=len(batch), index=index)

    for inst in instances:
        batch.append(instance_line(inst))
        if len(batch) >= size:
            yield flush()
            index += 1
            batch = []
    if batch:
        yield flush()


def read_shard(shard: Shard | Path) -> list[Instance]:
    """The instances of a shard, in order."""
    path = shard.path if isinstance(shard, Shard) else shard
    with open(path, encoding="utf-8") as fh:
        return [Instance.model_validate_json(line) for line in fh if line.strip()]


def shard_origins(shards: Iterable[Shard]) -> tuple[list[str], list[str]]:
    """The source languages and source datasets of ``shards``' instances, each sorted.

    Reads only the two keys of each line (plain JSON, no validation): labels for a run
    (its name, its tags) cost a fraction of reading the shards as instances.
    """
    langs: set[str] = set()
    datasets: set[str] = set()
    for shard in shards:
        with open(shard.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    row = json.loads(line)
                    langs.add(row["lang"])
                    if row.get("source_dataset"):
                        datasets.add(row["source_dataset"])
    return sorted(langs), sorted(datasets)
