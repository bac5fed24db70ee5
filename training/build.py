"""Build the instruction data set of a snapshot: train.jsonl, dev.jsonl and manifest.json.

``build_from_snapshot`` is the edge (reads the store, writes files). It streams: the
snapshot is read in Arrow batches and every example is written as it is made, so a
snapshot of the paper's size (257k pairs, about a million examples) never sits in memory
as Python objects. A first pass checks the data (accepted pairs exist, every label has an
ontology class) before anything is rendered. Files are written to a temporary directory
and renamed, so a failed build leaves nothing half-written. ``build_examples`` is the
same over an in-memory list (for tests and small inputs).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parallelner.records import ParallelRecord
from parallelner.version import PIPELINE_VERSION
from parallelner.writers.atomic import atomic_path
from training.config import BuildConfig
from training.errors import TrainingDataError
from training.instructions import Example, LabelResolver, check_records, iter_examples

__all__ = [
    "BuildCounts",
    "build_examples",
    "build_from_records",
    "build_from_snapshot",
    "iter_example_file",
    "read_examples",
]

SPLITS = ("train", "dev")


class BuildCounts:
    """What a build read, used and wrote (the counts of manifest.json)."""

    def __init__(self) -> None:
        self.read = 0
        self.by_status: Counter[str] = Counter()
        self.used = 0
        self.without_target = 0
        self.instances: dict[str, set[str]] = {s: set() for s in SPLITS}
        self.examples: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.by_lang: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
        self.empty_answers = 0

    def usable(
        self, records: Iterable[ParallelRecord], cfg: BuildConfig
    ) -> Iterator[ParallelRecord]:
        """Count every record by status and pass on those with a usable status."""
        for r in records:
            self.read += 1
            self.by_status[str(r.status)] += 1
            if str(r.status) in cfg.statuses:
                self.used += 1
                self.without_target += r.tgt_text is None
                yield r

    def add(self, e: Example) -> None:
        """Count one example written."""
        self.instances[e.split].add(e.instance_id)
        self.examples[e.split][e.task] += 1
        self.by_lang[e.split][f"{e.task}:{e.lang}"] += 1
        self.empty_answers += not e.gold

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": {
                "read": self.read,
                "by_status": dict(sorted(self.by_status.items())),
                "used": self.used,
                "without_target": self.without_target,
            },
            "instances": {s: len(self.instances[s]) for s in SPLITS},
            "examples": {s: dict(sorted(self.examples[s].items())) for s in SPLITS},
            "by_lang": {s: dict(sorted(self.by_lang[s].items())) for s in SPLITS},
            "empty_answers": self.empty_answers,
        }


def build_examples(
    records: Sequence[ParallelRecord], cfg: BuildConfig, source: str = "records"
) -> tuple[list[Example], dict[str, Any]]:
    """Examples and counts for the usable records (status in ``cfg.statuses``), in memory."""
    counts = BuildCounts()
    usable = list(counts.usable(records, cfg))
    resolver = LabelResolver()
    check_records(usable, resolver, source)
    examples = list(iter_examples(usable, resolver, cfg))
    for e in examples:
        counts.add(e)
    return examples, counts.as_dict()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_from_records(
    records: Sequence[ParallelRecord] | Callable[[], Iterable[ParallelRecord]],
    out_dir: Path,
    cfg: BuildConfig,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """Build and write the instruction data; returns the manifest (also written).

    ``records`` is a sequence, or a function returning a fresh iterator (read twice:
    once to check, once to write).
    """
    source = f"snapshot {snapshot}" if snapshot else "records"
    fresh = records if callable(records) else (lambda: iter(records))
    check_records(BuildCounts().usable(fresh(), cfg), LabelResolver(), source)

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingDataError(f"{out_dir}: output directory is not empty")
    counts = BuildCounts()
    resolver = LabelResolver()
    with atomic_path(out_dir, directory=True) as tmp:
        files = {s: (tmp / f"{s}.jsonl").open("w", encoding="utf-8") for s in SPLITS}
        try:
            for e in iter_examples(counts.usable(fresh(), cfg), resolver, cfg):
                files[e.split].write(e.model_dump_json() + "\n")
                counts.add(e)
        finally:
            for f in files.values():
                f.close()
        manifest = {
            "snapshot": snapshot,
            "created_at": datetime.now(UTC).isoformat(),
            "pipeline_version": PIPELINE_VERSION,
            "build": cfg.model_dump(mode="json"),
            **counts.as_dict(),
            "files": {f"{s}.jsonl": _sha256(tmp / f"{s}.jsonl") for s in SPLITS},
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
    return manifest


def _snapshot_records(table: Any, batch_rows: int = 4096) -> Callable[[], Iterator[ParallelRecord]]:
    """A re-iterable stream of the records of an Arrow table, one batch at a time."""
    import pyarrow as pa

    from parallelner.records import table_to_records

    def stream() -> Iterator[ParallelRecord]:
        for batch in table.to_batches(max_chunksize=batch_rows):
            yield from table_to_records(pa.Table.from_batches([batch], schema=table.schema))

    return stream


def build_from_snapshot(
    name: str, out_dir: Path, cfg: BuildConfig, home: Path | None = None
) -> dict[str, Any]:
    """Load snapshot ``name`` (tag or id) from the store and build its instruction data.

    Only rows with a usable status are read from the store; the manifest's
    ``records.by_status`` therefore lists those statuses.
    """
    import parallelner

    table = parallelner.load_snapshot(name, status=list(cfg.statuses), home=home)
    return build_from_records(_snapshot_records(table), out_dir, cfg, snapshot=name)


def iter_example_file(path: Path) -> Iterator[Example]:
    """Stream the examples of a train.jsonl / dev.jsonl written by a build.

    Raises InputError ``file:line: ...`` for a line that is not an Example, and
    TrainingDataError when the file is missing.
    """
    from pydantic import ValidationError

    from parallelner.errors import InputError
    from parallelner.reasons import Reason

    if not Path(path).is_file():
        raise TrainingDataError(
            f"{path}: instruction file not found (run `parallelner train build` first)"
        )
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                example = Example.model_validate_json(line)
            except ValidationError as exc:
                err = exc.errors()[0]
                reason = (
                    Reason.INVALID_JSON if err["type"] == "json_invalid" else Reason.MALFORMED_LINE
                )
                loc = ".".join(str(p) for p in err["loc"])
                raise InputError(
                    str(path), n, reason, f"not an instruction example ({loc}: {err['msg']})"
                ) from None
            yield example


def read_examples(path: Path) -> list[Example]:
    """Read a whole train.jsonl / dev.jsonl written by a build (``file:line`` errors)."""
    return list(iter_example_file(path))
