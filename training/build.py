"""Build the instruction data set of a snapshot: train.jsonl, dev.jsonl and manifest.json.

``build_from_snapshot`` is the edge (reads the store, writes files); ``build_examples``
is the pure part over a list of ParallelRecords. Files are written to a temporary
directory and renamed, so a failed build leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from parallelner.records import ParallelRecord
from parallelner.version import PIPELINE_VERSION
from training.config import BuildConfig
from training.errors import TrainingDataError
from training.instructions import Example, LabelResolver, check_records, iter_examples

__all__ = [
    "build_examples",
    "write_build",
    "build_from_records",
    "build_from_snapshot",
    "read_examples",
]

USABLE_STATUSES = ("accepted", "reviewed_accepted")


def build_examples(
    records: Sequence[ParallelRecord], cfg: BuildConfig, source: str = "records"
) -> tuple[list[Example], dict[str, Any]]:
    """Examples and counts for the usable records (status in ``cfg.statuses``)."""
    by_status = Counter(str(r.status) for r in records)
    usable = [r for r in records if str(r.status) in cfg.statuses]
    resolver = LabelResolver()
    checked = check_records(usable, resolver, source)
    examples = list(iter_examples(usable, resolver, cfg))
    counts: dict[str, Any] = {
        "records": {
            "read": len(records),
            "by_status": dict(sorted(by_status.items())),
            "used": len(usable),
            "without_target": checked["without_target"],
        },
        "instances": {
            split: len({e.instance_id for e in examples if e.split == split})
            for split in ("train", "dev")
        },
        "examples": {
            split: dict(sorted(Counter(e.task for e in examples if e.split == split).items()))
            for split in ("train", "dev")
        },
        "by_lang": {
            split: dict(
                sorted(Counter(f"{e.task}:{e.lang}" for e in examples if e.split == split).items())
            )
            for split in ("train", "dev")
        },
        "empty_answers": sum(1 for e in examples if not e.gold),
    }
    return examples, counts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_build(
    examples: Sequence[Example],
    counts: dict[str, Any],
    out_dir: Path,
    cfg: BuildConfig,
    snapshot: str | None,
) -> dict[str, Any]:
    """Write train.jsonl, dev.jsonl and manifest.json atomically; return the manifest."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise TrainingDataError(f"{out_dir}: output directory is not empty")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=out_dir.parent))
    try:
        for split in ("train", "dev"):
            with (tmp / f"{split}.jsonl").open("w", encoding="utf-8") as f:
                for e in examples:
                    if e.split == split:
                        f.write(e.model_dump_json() + "\n")
        manifest = {
            "snapshot": snapshot,
            "created_at": datetime.now(UTC).isoformat(),
            "pipeline_version": PIPELINE_VERSION,
            "build": cfg.model_dump(mode="json"),
            **counts,
            "files": {name: _sha256(tmp / name) for name in ("train.jsonl", "dev.jsonl")},
        }
        (tmp / "manifest.json").write_text(
            json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
        )
        if out_dir.exists():
            out_dir.rmdir()
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def build_from_records(
    records: Sequence[ParallelRecord],
    out_dir: Path,
    cfg: BuildConfig,
    snapshot: str | None = None,
) -> dict[str, Any]:
    """Build and write the instruction data of ``records``; returns the manifest."""
    examples, counts = build_examples(
        records, cfg, source=f"snapshot {snapshot}" if snapshot else "records"
    )
    return write_build(examples, counts, out_dir, cfg, snapshot)


def build_from_snapshot(
    name: str, out_dir: Path, cfg: BuildConfig, home: Path | None = None
) -> dict[str, Any]:
    """Load snapshot ``name`` (tag or id) from the store and build its instruction data."""
    import parallelner
    from parallelner.records import table_to_records

    table = parallelner.load_snapshot(name, status=list(cfg.statuses), home=home)
    records = table_to_records(table)
    return build_from_records(records, out_dir, cfg, snapshot=name)


def read_examples(path: Path) -> list[Example]:
    """Read a train.jsonl / dev.jsonl written by ``write_build`` (``file:line`` errors)."""
    from pydantic import ValidationError

    from parallelner.errors import InputError
    from parallelner.reasons import Reason

    out = []
    if not Path(path).is_file():
        raise TrainingDataError(
            f"{path}: instruction file not found (run `parallelner train build` first)"
        )
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                out.append(Example.model_validate_json(line))
            except ValidationError as exc:
                err = exc.errors()[0]
                reason = (
                    Reason.INVALID_JSON if err["type"] == "json_invalid" else Reason.MALFORMED_LINE
                )
                loc = ".".join(str(p) for p in err["loc"])
                raise InputError(
                    str(path), n, reason, f"not an instruction example ({loc}: {err['msg']})"
                ) from None
    return out
