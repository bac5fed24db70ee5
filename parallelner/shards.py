"""Split a stream of instances into content-hashed shards, the unit of orchestration.

A shard's id is the hash of its instances' canonical JSON, so the same input always gives
the same shards, and a shard's cached result stays valid until its content changes
(never keyed on file paths). Shards are written once as span JSONL under
``<storage>/shards/<id>.jsonl`` (``parallelner.storage``: the home folder by default, or a
location every Dask worker reaches); writing is atomic.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from parallelner import storage
from parallelner.records import Instance
from parallelner.storage import Location

__all__ = ["Shard", "make_shards", "read_shard", "instance_line", "shard_origins"]


@dataclass(frozen=True)
class Shard:
    """A batch of instances in storage: ``id`` is the content hash."""

    id: str
    path: Location  # a Path, or a URL in an object store
    size: int
    index: int  # position in the run, for stable ordering of results


def instance_line(inst: Instance) -> str:
    """Canonical one-line JSON of an instance (the span JSONL form, with entity texts)."""
    return json.dumps(inst.model_dump(mode="json"), ensure_ascii=False, sort_keys=True)


def make_shards(
    instances: Iterable[Instance], directory: Location, size: int = 1000
) -> Iterator[Shard]:
    """Group ``instances`` into shards of ``size``, write each once, yield them in order."""
    batch: list[str] = []
    index = 0

    def flush() -> Shard:
        digest = hashlib.sha256("\n".join(batch).encode("utf-8")).hexdigest()[:24]
        path = storage.join(directory, f"{digest}.jsonl")
        if storage.exists(path) and not _intact(path, batch):
            # cut mid-line, lines lost or changed: its name says what it must hold
            storage.set_aside(
                path, "shard file damaged (not the instances its name hashes)",
                "written again from the sources",
            )  # fmt: skip
        if not storage.exists(path):
            storage.write_lines(path, batch)
        return Shard(id=digest, path=path, size=len(batch), index=index)

    for inst in instances:
        batch.append(instance_line(inst))
        if len(batch) >= size:
            yield flush()
            index += 1
            batch = []
    if batch:
        yield flush()


def _intact(path: Location, lines: list[str]) -> bool:
    """True when the shard file at ``path`` holds exactly ``lines`` (as ``write_lines``
    writes them): one read of a file that is compared with what is in memory anyway."""
    try:
        return storage.read_text(path) == "".join(f"{line}\n" for line in lines)
    except (OSError, UnicodeDecodeError):
        return False


def read_shard(shard: Shard | Location) -> list[Instance]:
    """The instances of a shard, in order."""
    path = shard.path if isinstance(shard, Shard) else shard
    lines = storage.read_text(path).split("\n")  # not splitlines(): a line may hold U+2028
    return [Instance.model_validate_json(line) for line in lines if line.strip()]


def shard_origins(shards: Iterable[Shard]) -> tuple[list[str], list[str]]:
    """The source languages and source datasets of ``shards``' instances, each sorted.

    Reads only the two keys of each line (plain JSON, no validation): labels for a run
    (its name, its tags) cost a fraction of reading the shards as instances.
    """
    langs: set[str] = set()
    datasets: set[str] = set()
    for shard in shards:
        for line in storage.read_text(shard.path).split("\n"):  # a line may hold U+2028
            if line.strip():
                row = json.loads(line)
                langs.add(row["lang"])
                if row.get("source_dataset"):
                    datasets.add(row["source_dataset"])
    return sorted(langs), sorted(datasets)
