"""Researchers' entry point: ``parallelner.load_snapshot(NAME, status=...)``.

>>> import parallelner
>>> table = parallelner.load_snapshot("v1", status=["accepted", "reviewed_accepted"])
>>> df = table.to_pandas()                       # pandas DataFrame
>>> ds = parallelner.to_hf_dataset("v1")   # datasets.DatasetDict: train/validation/test

A tag always gives the same rows (sorted by ``record_id``), whatever was committed
after it. ``table_to_records(table)`` turns the rows back into ``ParallelRecord``s.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue, In
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from parallelner.errors import StoreError
from parallelner.reasons import Status
from parallelner.records import arrow_schema
from parallelner.settings import Settings, load_settings
from parallelner.store.table import reading, resolve_snapshot, to_records_table

__all__ = ["load_snapshot", "load_rows", "parse_statuses", "scan_snapshot", "diff_snapshots"]


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


def load_rows(record_ids: Iterable[str], *, settings: Settings | None = None) -> pa.Table:
    """The rows of the latest snapshot with these record ids (the scan is filtered: the
    table is never read whole)."""
    ids = sorted(set(record_ids))
    with reading(_settings_for(None, settings)) as table:
        snapshot = table.current_snapshot()
        if snapshot is None or not ids:
            return arrow_schema().empty_table()
        try:
            rows = table.scan(row_filter=In("record_id", ids)).to_arrow()
        except (FileNotFoundError, OSError, pa.ArrowInvalid) as exc:
            raise StoreError(
                f"snapshot {snapshot.snapshot_id}: a data file is missing or damaged "
                f"({str(exc).splitlines()[0][:300]})"
            ) from None
        return to_records_table(rows)


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


def _rows_outside(table: Table, snapshot: Snapshot, shared: set[str]) -> pa.Table:
    """Rows of ``snapshot`` in data files not in ``shared``, sorted by record_id."""
    from pyiceberg.io.pyarrow import ArrowScan

    scan = table.scan(snapshot_id=snapshot.snapshot_id)
    tasks = [t for t in scan.plan_files() if t.file.file_path not in shared]
    if not tasks:
        return arrow_schema().empty_table()
    rows = _read(
        lambda: ArrowScan(table.metadata, table.io, scan.projection(), AlwaysTrue()).to_table(
            tasks
        ),
        snapshot,
    )
    return to_records_table(rows).sort_by("record_id")


def rows_differ(a: pa.Array, b: pa.Array) -> np.ndarray:
    """Element-wise "a[i] != b[i]" for Arrow arrays of any nesting (lists, structs, maps)."""
    a = a.combine_chunks() if isinstance(a, pa.ChunkedArray) else a
    b = b.combine_chunks() if isinstance(b, pa.ChunkedArray) else b
    null_a = a.is_null().to_numpy(zero_copy_only=False)
    null_b = b.is_null().to_numpy(zero_copy_only=False)
    out = null_a != null_b
    typ = a.type
    if pa.types.is_struct(typ):
        for k in range(typ.num_fields):
            out |= rows_differ(pc.struct_field(a, [k]), pc.struct_field(b, [k]))
    elif pa.types.is_list(typ) or pa.types.is_large_list(typ) or pa.types.is_map(typ):
        if pa.types.is_map(typ):  # a map compares as its list of (key, value) entries
            entries = pa.list_(pa.struct([typ.key_field, typ.item_field]))
            a, b = a.cast(entries), b.cast(entries)
        len_a = pc.fill_null(pc.list_value_length(a), -1).to_numpy(zero_copy_only=False)
        len_b = pc.fill_null(pc.list_value_length(b), -1).to_numpy(zero_copy_only=False)
        out |= len_a != len_b
        same = np.flatnonzero(len_a == len_b)
        if len(same):
            sub_a, sub_b = a.take(pa.array(same)), b.take(pa.array(same))
            inner = rows_differ(pc.list_flatten(sub_a), pc.list_flatten(sub_b))
            per_row = np.zeros(len(same), dtype=bool)
            np.logical_or.at(per_row, pc.list_parent_indices(sub_a).to_numpy(), inner)
            out[same] |= per_row
    else:
        equal = pc.equal(a, b).to_numpy(zero_copy_only=False)
        both = ~null_a & ~null_b
        out |= both & ~equal.astype(bool, copy=False)
    return out


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
        ids_a = set(_ids(table, snap_a).column("record_id").to_pylist())
        ids_b = set(_ids(table, snap_b).column("record_id").to_pylist())
        shared = _files(table, snap_a) & _files(table, snap_b)
        rows_a = _rows_outside(table, snap_a, shared)
        rows_b = _rows_outside(table, snap_b, shared)
    added = sorted(ids_b - ids_a)
    removed = sorted(ids_a - ids_b)
    # a record present in both whose row changed has its old row outside the shared files
    # in a and its new row outside them in b (record ids are unique in a snapshot)
    both = pa.array(sorted(ids_a & ids_b), pa.string())
    old = rows_a.filter(pc.is_in(rows_a.column("record_id"), value_set=both))
    new = rows_b.filter(pc.is_in(rows_b.column("record_id"), value_set=both))
    keys = old.column("record_id").to_pylist()
    if keys != new.column("record_id").to_pylist():  # pragma: no cover - duplicate ids
        raise StoreError(f"{a} / {b}: a record id appears twice in one snapshot")
    differs = np.zeros(old.num_rows, dtype=bool)
    for name in old.column_names:
        differs |= rows_differ(old.column(name), new.column(name))
    changed = [k for k, d in zip(keys, differs, strict=True) if d]
    transitions: dict[str, int] = {}

    def count(key: str) -> None:
        transitions[key] = transitions.get(key, 0) + 1

    status_old = old.column("status").to_pylist()
    status_new = new.column("status").to_pylist()
    for sa, sb, d in zip(status_old, status_new, differs, strict=True):
        if d and sa != sb:
            count(f"{sa} -> {sb}")
    for rows, ids, fmt in ((rows_b, added, "(new) -> {}"), (rows_a, removed, "{} -> (removed)")):
        picked = rows.filter(
            pc.is_in(rows.column("record_id"), value_set=pa.array(ids, pa.string()))
        )
        for st in picked.column("status").to_pylist():
            count(fmt.format(st))
    return {
        "a": {"name": str(a), "snapshot_id": snap_a.snapshot_id, "records": len(ids_a)},
        "b": {"name": str(b), "snapshot_id": snap_b.snapshot_id, "records": len(ids_b)},
        "added": len(added),
        "removed": len(removed),
        "changed": len(changed),
        "unchanged": len(both) - len(changed),
        "status_changes": dict(sorted(transitions.items())),
        "examples": {
            "added": added[:examples],
            "removed": removed[:examples],
            "changed": changed[:examples],
        },
    }
