"""Researchers' entry point: ``parallelner.load_snapshot(NAME, status=...)``.

>>> import parallelner
>>> table = parallelner.load_snapshot("v1", status=["accepted", "reviewed_accepted"])
>>> df = table.to_pandas()                       # pandas DataFrame
>>> ds = parallelner.store.to_hf_dataset("v1")   # Hugging Face datasets.Dataset

A tag always gives the same rows (sorted by ``record_id``), whatever was committed
after it. ``table_to_records(table)`` turns the rows back into ``ParallelRecord``s.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyiceberg.expressions import AlwaysTrue, In
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from parallelner.errors import ConfigError, StoreError
from parallelner.reasons import Status
from parallelner.settings import Settings, load_settings
from parallelner.store.table import reading, resolve_snapshot, to_records_table

__all__ = ["load_snapshot", "to_hf_dataset", "parse_statuses", "scan_snapshot", "diff_snapshots"]


def parse_statuses(status: str | Iterable[str] | None) -> list[str] | None:
    """Validate a status filter (``"accepted,reviewed_accepted"`` or a list); None = all."""
    if status is None:
        return None
    items = status.split(",") if isinstance(status, str) else list(status)
    items = [str(s).strip() for s in items if str(s).strip()]
    known = {s.value for s in Status}
    bad = [s for s in items if s not in known]
    if bad:
        raise StoreError(
            f"unknown status {', '.join(bad)} (known: {', '.join(s.value for s in Status)})"
        )
    if not items:
        raise StoreError("empty status filter (give at least one status, or none for all)")
    return items


def scan_snapshot(table: Table, snapshot: Snapshot, statuses: list[str] | None = None) -> pa.Table:
    """Rows of one snapshot (optionally only some statuses), sorted by record_id."""
    row_filter = In("status", statuses) if statuses else None
    scan = (
        table.scan(snapshot_id=snapshot.snapshot_id, row_filter=row_filter)
        if row_filter is not None
        else table.scan(snapshot_id=snapshot.snapshot_id)
    )
    try:
        rows = scan.to_arrow()
    except (FileNotFoundError, OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"snapshot {snapshot.snapshot_id}: a data file is missing or damaged "
            f"({str(exc).splitlines()[0][:300]})"
        ) from None
    return to_records_table(rows).sort_by("record_id")


def _settings_for(home: str | Path | None, settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    return load_settings(home=Path(home)) if home is not None else load_settings()


def load_snapshot(
    name_or_id: str | int,
    status: str | Iterable[str] | None = None,
    home: str | Path | None = None,
    *,
    settings: Settings | None = None,
) -> pa.Table:
    """Rows of a tagged snapshot (or a snapshot id, or ``main``) as a pyarrow Table.

    ``status`` keeps only those statuses (e.g. ``["accepted", "reviewed_accepted"]``);
    ``home`` is the data directory (default: settings, ``PARALLELNER_HOME``).
    """
    statuses = parse_statuses(status)
    with reading(_settings_for(home, settings)) as table:
        return scan_snapshot(table, resolve_snapshot(table, name_or_id), statuses)


def to_hf_dataset(
    name_or_id: str | int,
    status: str | Iterable[str] | None = None,
    home: str | Path | None = None,
    *,
    settings: Settings | None = None,
) -> Any:
    """The snapshot as a Hugging Face ``datasets.Dataset`` (needs the ``datasets`` package).

    The ``scores`` map becomes a list of ``{key, value}`` pairs (datasets has no map type).
    """
    try:
        import datasets
    except ImportError:
        raise ConfigError(
            "Hugging Face `datasets` is not installed: pip install 'parallelner[train]' "
            "(or use load_snapshot(...).to_pandas())"
        ) from None
    table = load_snapshot(name_or_id, status, home, settings=settings)
    i = table.schema.get_field_index("scores")
    field = table.schema.field(i)
    pairs = pa.list_(pa.struct([pa.field("key", pa.string()), pa.field("value", pa.float64())]))
    table = table.set_column(
        i, pa.field("scores", pairs, nullable=field.nullable), table.column(i).cast(pairs)
    )
    return datasets.Dataset(table)


def _ids(table: Table, snapshot: Snapshot) -> pa.Table:
    return _read(
        lambda: table.scan(
            snapshot_id=snapshot.snapshot_id, selected_fields=("record_id", "status")
        ).to_arrow(),
        snapshot,
    )


def _read(fn: Any, snapshot: Snapshot) -> pa.Table:
    try:
        return fn()
    except (FileNotFoundError, OSError, pa.ArrowInvalid) as exc:
        raise StoreError(
            f"snapshot {snapshot.snapshot_id}: a data file is missing or damaged "
            f"({str(exc).splitlines()[0][:300]})"
        ) from None


def _rows_outside(table: Table, snapshot: Snapshot, shared: set[str]) -> dict[str, dict]:
    """Full rows of ``snapshot`` that live in data files not in ``shared``, by record_id."""
    from pyiceberg.io.pyarrow import ArrowScan

    scan = table.scan(snapshot_id=snapshot.snapshot_id)
    tasks = [t for t in scan.plan_files() if t.file.file_path not in shared]
    if not tasks:
        return {}
    rows = _read(
        lambda: ArrowScan(table.metadata, table.io, scan.projection(), AlwaysTrue()).to_table(
            tasks
        ),
        snapshot,
    )
    return {r["record_id"]: r for r in to_records_table(rows).to_pylist()}


def _files(table: Table, snapshot: Snapshot) -> set[str]:
    return {t.file.file_path for t in table.scan(snapshot_id=snapshot.snapshot_id).plan_files()}


def diff_snapshots(
    a: str | int, b: str | int, *, settings: Settings | None = None, examples: int = 5
) -> dict[str, Any]:
    """What changed from snapshot ``a`` to ``b``: rows added, removed, changed, by status.

    Data files are immutable, so rows in a file both snapshots share are unchanged; only
    rows from the other files are read in full and compared.
    """
    with reading(settings) as table:
        snap_a, snap_b = resolve_snapshot(table, a), resolve_snapshot(table, b)
        ids_a = _ids(table, snap_a).column("record_id").to_pylist()
        ids_b = _ids(table, snap_b).column("record_id").to_pylist()
        shared = _files(table, snap_a) & _files(table, snap_b)
        rows_a = _rows_outside(table, snap_a, shared)
        rows_b = _rows_outside(table, snap_b, shared)
    set_a, set_b = set(ids_a), set(ids_b)
    added = sorted(set_b - set_a)
    removed = sorted(set_a - set_b)
    # a record present in both whose row changed has its old row outside the shared files
    # in a and its new row outside them in b (record ids are unique in a snapshot)
    changed = sorted(k for k in rows_a.keys() & rows_b.keys() if rows_a[k] != rows_b[k])
    transitions: dict[str, int] = {}
    for k in changed:
        sa, sb = rows_a[k]["status"], rows_b[k]["status"]
        if sa != sb:
            key = f"{sa} -> {sb}"
            transitions[key] = transitions.get(key, 0) + 1
    for k in added:
        key = f"(new) -> {rows_b[k]['status']}"
        transitions[key] = transitions.get(key, 0) + 1
    for k in removed:
        key = f"{rows_a[k]['status']} -> (removed)"
        transitions[key] = transitions.get(key, 0) + 1
    return {
        "a": {"name": str(a), "snapshot_id": snap_a.snapshot_id, "records": len(set_a)},
        "b": {"name": str(b), "snapshot_id": snap_b.snapshot_id, "records": len(set_b)},
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "unchanged": len(set_a & set_b) - len(changed),
        "status_changes": dict(sorted(transitions.items())),
        "examples": {
            "added": added[:examples],
            "removed": removed[:examples],
            "changed": changed[:examples],
        },
    }
