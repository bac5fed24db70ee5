"""Releases: immutable Iceberg tags with a release note, and snapshot statistics.

A tag is an Iceberg ref of type ``tag``. It is created once and never moved or removed
by this project: creating an existing name is an error. The release note is committed
in the same Iceberg transaction as the tag (table property ``parallelner.release.NAME``)
and copied to ``<home>/releases/NAME.json`` for people browsing the data directory.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update.snapshot import ManageSnapshots

from parallelner.errors import ConfigError, StoreError
from parallelner.reasons import Reason, Status
from parallelner.settings import Settings, load_settings
from parallelner.store.catalog import open_catalog
from parallelner.store.read import scan_snapshot
from parallelner.store.table import (
    PROP_PREFIX,
    close_catalog,
    load_table,
    reading,
    resolve_snapshot,
)
from parallelner.version import PIPELINE_VERSION
from parallelner.writers.atomic import AtomicTextWriter

__all__ = ["create_tag", "validate_tag_name", "snapshot_stats", "release_note", "list_tags"]

log = logging.getLogger(__name__)
_TAG_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_NOTE_PROP = f"{PROP_PREFIX}release."
_ACCEPTED = (Status.ACCEPTED.value, Status.REVIEWED_ACCEPTED.value)


def validate_tag_name(name: str) -> str:
    """Return ``name`` if it is a usable tag name, else raise StoreError saying why."""
    if not _TAG_RE.fullmatch(name or ""):
        why = (
            "contains a path separator"
            if "/" in name or "\\" in name
            else "contains whitespace"
            if any(c.isspace() for c in name)
            else "is empty"
            if not name
            else f"is {len(name)} characters long (100 at most)"
            if len(name) > 100
            else "has characters other than letters, digits, . _ -"
            if name[0].isalnum()
            else "must start with a letter or digit"
        )
        raise StoreError(
            f"{name!r}: not a valid tag name: it {why} "
            "(use letters, digits, '.', '_' and '-', e.g. v1.0)"
        )
    if name == "main" or name.isdigit():
        raise StoreError(
            f"{name!r}: not a valid tag name: it would be confused with "
            f"{'the main branch' if name == 'main' else 'a snapshot id'}"
        )
    return name


def _direction(rows: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(rows.column("src_lang"), rows.column("tgt_lang"), "->")


def _label_counts(rows: pa.Table, column: str, direction: pa.Array) -> dict[str, dict[str, int]]:
    lists = rows.column(column).combine_chunks()
    labels = pc.struct_field(pc.list_flatten(lists), "label").to_pylist()
    dirs = pc.take(direction, pc.list_parent_indices(lists)).to_pylist()
    out: dict[str, Counter] = {}
    for d, lab in zip(dirs, labels, strict=True):
        out.setdefault(d, Counter())[lab] += 1
    return {d: dict(sorted(c.items())) for d, c in sorted(out.items())}


def snapshot_stats(rows: pa.Table) -> dict[str, Any]:
    """Counts by direction, status and label, acceptance rate and audited precision."""
    direction = _direction(rows)
    status = rows.column("status").to_pylist()
    by_status = Counter(status)
    total = rows.num_rows
    accepted = sum(by_status[s] for s in _ACCEPTED)
    by_dir: dict[str, Counter] = {}
    for d, s in zip(direction.to_pylist(), status, strict=True):
        by_dir.setdefault(d, Counter())[s] += 1
    # the automatic reasons: a reviewed row keeps them in auto_reasons (older rows, and
    # tables written before that column existed, in reasons)
    auto = (
        rows.column("auto_reasons").to_pylist()
        if "auto_reasons" in rows.column_names
        else [None] * total
    )
    audit = [
        s
        for s, reasons, before in zip(status, rows.column("reasons").to_pylist(), auto, strict=True)
        if Reason.AUDIT_SAMPLE.value in (before if before is not None else reasons)
    ]
    audited = Counter(audit)
    judged = audited[Status.REVIEWED_ACCEPTED.value] + audited[Status.REVIEWED_REJECTED.value]
    return {
        "records": total,
        "by_direction": {
            d: {"records": sum(c.values()), **dict(sorted(c.items()))}
            for d, c in sorted(by_dir.items())
        },
        "by_status": dict(sorted(by_status.items())),
        "source_labels": _label_counts(rows, "src_entities", direction),
        "target_labels": _label_counts(rows, "tgt_entities", direction),
        "acceptance_rate": round(accepted / total, 4) if total else None,
        "audited_precision": (
            round(audited[Status.REVIEWED_ACCEPTED.value] / judged, 4) if judged else None
        ),
        "audited_pairs": judged,
    }


def _distinct(rows: pa.Table, column: str) -> list[str]:
    return sorted(v for v in pc.unique(rows.column(column)).to_pylist() if v is not None)


def release_note(table: Table, snapshot: Snapshot, name: str) -> dict[str, Any]:
    """The release note of ``snapshot`` under tag ``name`` (statistics and provenance)."""
    rows = scan_snapshot(table, snapshot)
    summary = snapshot.summary.additional_properties if snapshot.summary else {}
    return {
        "tag": name,
        "snapshot_id": snapshot.snapshot_id,
        "snapshot_committed_at": datetime.fromtimestamp(
            snapshot.timestamp_ms / 1000, UTC
        ).isoformat(timespec="seconds"),
        "tagged_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "statistics": snapshot_stats(rows),
        "provenance": {
            "runs": _distinct(rows, "run_id"),
            "config_hashes": _distinct(rows, "config_hash"),
            "signatures": _distinct(rows, "signature"),
            "prompt_versions": _distinct(rows, "prompt_version"),
            "pipeline_versions": _distinct(rows, "pipeline_version"),
            "models": _distinct(rows, "model"),
            "source_datasets": _distinct(rows, "source_dataset"),
            "snapshot_properties": {
                k.removeprefix(PROP_PREFIX): v
                for k, v in summary.items()
                if k.startswith(PROP_PREFIX)
            },
            "tagged_with": f"parallelner {PIPELINE_VERSION}",
        },
    }


def list_tags(table: Table) -> dict[str, int]:
    """Tag name -> snapshot id."""
    return {
        n: r.snapshot_id for n, r in sorted(table.refs().items()) if r.snapshot_ref_type == "tag"
    }


def read_release_note(table: Table, name: str) -> dict[str, Any] | None:
    """The stored release note of tag ``name`` (None for a tag made outside ParallelNER)."""
    raw = table.properties.get(f"{_NOTE_PROP}{name}")
    return json.loads(raw) if raw else None


def create_tag(
    name: str, snapshot: str | int | None = None, *, settings: Settings | None = None
) -> dict[str, Any]:
    """Tag a snapshot (default: the latest) as ``name`` and return its release note.

    Raises StoreError for a bad name, an unknown snapshot, or a tag that already exists
    (tags are never moved).
    """
    validate_tag_name(name)
    settings = settings if settings is not None else load_settings()
    catalog = open_catalog(settings)
    try:
        for _ in range(20):
            table = load_table(catalog, settings)
            if name in table.refs():
                _exists(table, name)
            snap = resolve_snapshot(table, "main" if snapshot is None else snapshot)
            note = release_note(table, snap, name)
            tx = table.transaction()
            ManageSnapshots(tx).create_tag(snap.snapshot_id, name).commit()
            tx.set_properties({f"{_NOTE_PROP}{name}": json.dumps(note, sort_keys=True)})
            try:
                tx.commit_transaction()
            except CommitFailedException:
                continue  # a concurrent commit or tag: reload, re-check, retry
            except Exception as exc:
                if "database is locked" in str(exc):  # SQLite busy: same as a lost race
                    time.sleep(0.1)
                    continue
                raise
            break
        else:
            raise StoreError(f"{name}: could not create the tag (too many concurrent commits)")
    finally:
        close_catalog(catalog)
    try:
        _write_note_file(Path(settings.home) / "releases" / f"{name}.json", note)
    except (OSError, ConfigError) as exc:  # the table property is the record; this is a copy
        log.warning("release note of %s not copied to %s: %s", name, settings.home, exc)
    return note


def _exists(table: Table, name: str) -> None:
    ref = table.refs()[name]
    kind = "branch" if ref.snapshot_ref_type == "branch" else "tag"
    raise StoreError(
        f"{name}: a {kind} with this name already exists (snapshot "
        f"{ref.snapshot_id}); tags are immutable, choose a new name"
    )


def _write_note_file(path: Path, note: dict[str, Any]) -> None:
    with AtomicTextWriter(path) as out:
        out.write_line(json.dumps(note, indent=2, sort_keys=True, ensure_ascii=False))


def show(name_or_id: str | int, *, settings: Settings | None = None) -> dict[str, Any]:
    """Describe a tag or snapshot: its release note when tagged, else fresh statistics."""
    with reading(settings) as table:
        snap = resolve_snapshot(table, name_or_id)
        note = (
            read_release_note(table, str(name_or_id)) if str(name_or_id) in table.refs() else None
        )
        if note is None:
            note = release_note(table, snap, str(name_or_id))
            note.pop("tagged_at")
            note["tag"] = None
        note["tags"] = sorted(n for n, sid in list_tags(table).items() if sid == snap.snapshot_id)
        return note
