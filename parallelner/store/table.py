"""The dataset table ``parallelner.records``: create it, commit to it, find its snapshots.

The table's schema is ``parallelner.records.arrow_schema()`` (pyiceberg assigns the
Iceberg field ids when it creates the table from that Arrow schema). Every commit makes
a new Iceberg snapshot and writes new Parquet files; no file is ever rewritten in place.
Two writers committing at once both land, and a record id lands once: each attempt
reads the ids the table holds, and its commit requires the branch to be where that read
was (pyiceberg's ``AssertRefSnapshotId``). pyiceberg's own retry of a lost race
(``commit.retry.num-retries``) would re-base the same rows onto the winner's snapshot
without that check (two commits of one run gave two snapshots and every row twice), so
it is off for these commits: a lost race raises, and ``commit`` reloads the table, reads
the ids again and does the whole operation again. Data files written by an attempt that
never landed stay unreferenced (no snapshot sees them).

Arrow types round-trip exactly through Iceberg (map<string,double>, list<struct>,
timestamp[us, UTC]); ``to_records_table`` is the one place the read side is cast back to
the project's schema (Iceberg names list items ``element``, the project ``item``).
"""

from __future__ import annotations

import itertools
import logging
import random
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import AlwaysTrue, In
from pyiceberg.table import Table, TableProperties
from pyiceberg.table.snapshots import Snapshot

from parallelner.errors import NoSpaceError, StoreError, is_no_space
from parallelner.records import ParallelRecord, arrow_schema, records_to_table
from parallelner.settings import Settings, load_settings
from parallelner.store.catalog import (
    DATASET_TABLE,
    catalog_table_location,
    check_table_location,
    open_catalog,
    orphaned_table_message,
    redact_location,
    warehouse_location,
    warehouse_table_metadata,
)

__all__ = [
    "NAMESPACE",
    "TABLE_NAME",
    "PROP_PREFIX",
    "open_table",
    "load_table",
    "close_catalog",
    "reading",
    "commit",
    "append_new",
    "append_new_files",
    "Appended",
    "resolve_snapshot",
    "list_snapshots",
    "run_snapshot",
    "row_changes",
    "to_records_table",
    "recover_catalog",
]

NAMESPACE = DATASET_TABLE[0]
TABLE_NAME = ".".join(DATASET_TABLE)
PROP_PREFIX = "parallelner."
MAX_ATTEMPTS = 30
log = logging.getLogger(__name__)


def _settings(settings: Settings | None) -> Settings:
    return settings if settings is not None else load_settings()


def open_table(settings: Settings | None = None, *, create: bool = False) -> Table:
    """Load the dataset table; ``create=True`` creates catalog, namespace and table if missing.

    Raises StoreError when there is no table yet or its metadata files are gone.
    """
    settings = _settings(settings)
    return load_table(open_catalog(settings, create=create), settings, create=create)


def load_table(catalog: SqlCatalog, settings: Settings, *, create: bool = False) -> Table:
    """Load (or with ``create`` make) the dataset table from an open catalog."""
    try:
        table = catalog.load_table(TABLE_NAME)
        check_table_location(settings, table.metadata_location)  # a moved or copied home
        # writers add fields a newer ParallelRecord has; readers leave the table as it is
        # (an older snapshot's rows are cast to the record schema, new fields null)
        return _evolve(table) if create else table
    except NoSuchTableError:
        # an empty catalog over a warehouse that holds the table (the catalog file was
        # deleted, or a new Postgres database named): never start a second table there
        metadata = warehouse_table_metadata(settings, *DATASET_TABLE)
        if metadata is not None:
            raise StoreError(orphaned_table_message(TABLE_NAME, settings, metadata)) from None
        if not create:
            raise StoreError(
                f"{TABLE_NAME}: no such table in the catalog (nothing committed yet)"
            ) from None
    except (FileNotFoundError, OSError) as exc:
        recorded = catalog_table_location(settings, *DATASET_TABLE)
        if recorded is not None:
            check_table_location(settings, recorded)  # moved: it points at the old place
        raise StoreError(
            f"{redact_location(warehouse_location(settings))}: the warehouse is gone or "
            f"unreadable: table metadata cannot be read ({_short(exc)})"
        ) from None
    with suppress(NamespaceAlreadyExistsError):
        catalog.create_namespace(NAMESPACE)
    try:
        return catalog.create_table(TABLE_NAME, schema=arrow_schema())
    except TableAlreadyExistsError:  # another writer created it meanwhile
        return catalog.load_table(TABLE_NAME)


def recover_catalog(settings: Settings | None = None) -> dict[str, Any]:
    """Register the dataset table again from the warehouse's latest metadata file.

    For a catalog that lost the table (its SQLite file deleted, a new Postgres database)
    while the warehouse still holds it: pyiceberg's ``register_table`` points a new
    catalog entry at that metadata, which holds every snapshot and tag. Returns the
    metadata file, the snapshots and the tags. Raises StoreError when the catalog holds
    the table already or the warehouse holds none.
    """
    settings = _settings(settings)
    catalog = open_catalog(settings, create=True, recovering=True)
    try:
        with suppress(NoSuchTableError):
            catalog.load_table(TABLE_NAME)
            raise StoreError(f"{TABLE_NAME}: the catalog holds the table already; nothing to do")
        metadata = warehouse_table_metadata(settings, *DATASET_TABLE)
        if metadata is None:
            raise StoreError(
                f"{redact_location(warehouse_location(settings))}: no metadata of "
                f"{TABLE_NAME} in the warehouse; nothing to recover"
            )
        with suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(NAMESPACE)
        table = catalog.register_table(TABLE_NAME, metadata)
        tags = sorted(n for n, r in table.refs().items() if r.snapshot_ref_type == "tag")
        return {"metadata": metadata, "snapshots": len(table.snapshots()), "tags": tags}
    finally:
        close_catalog(catalog)


def _catalog_for_messages(settings: Settings) -> str:
    """The catalog for a message: the SQLite file's path, or the URI without password."""
    from parallelner.store.catalog import catalog_location, redact_catalog_uri

    uri = catalog_location(settings)
    return (
        uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else redact_catalog_uri(uri)
    )


def _names(fields: Iterable[pa.Field], prefix: str = "") -> set[str]:
    """Dotted names of every field, nested struct fields (in lists too) included."""
    out = set()
    for f in fields:
        out.add(prefix + f.name)
        typ = f.type
        while pa.types.is_list(typ) or pa.types.is_large_list(typ):
            typ = typ.value_type
        if pa.types.is_struct(typ):
            out |= _names(typ, prefix + f.name + ".")
    return out


def _evolve(table: Table) -> Table:
    """Add the fields a newer ParallelRecord has to a table created by an older version
    (e.g. the entity verification fields); older rows read them as null / empty."""
    want = arrow_schema()
    if _names(want) <= _names(table.schema().as_arrow()):
        return table
    try:
        with table.update_schema() as update:
            update.union_by_name(want)
    except CommitFailedException:  # another writer evolved it meanwhile
        pass
    return table.refresh()


def close_catalog(catalog: SqlCatalog) -> None:
    """Release the catalog's database connections (a Postgres server counts them)."""
    catalog.engine.dispose()


@contextmanager
def reading(settings: Settings | None = None) -> Iterator[Table]:
    """The dataset table, with the catalog's connections released afterwards."""
    settings = _settings(settings)
    catalog = open_catalog(settings)
    try:
        yield load_table(catalog, settings)
    finally:
        close_catalog(catalog)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def to_records_table(table: pa.Table) -> pa.Table:
    """Cast a scanned Arrow table to the project's exact record schema."""
    schema = arrow_schema()
    extra = [n for n in table.column_names if n not in schema.names]
    if extra:  # never drop data silently
        raise StoreError(f"columns not in the ParallelRecord schema: {', '.join(extra)}")
    for f in schema:  # a field newer than the table (e.g. ``signature``): null on old rows
        if f.name not in table.column_names and f.nullable:
            table = table.append_column(f, pa.nulls(table.num_rows, f.type))
    try:
        return table.select(schema.names).cast(schema)
    except (KeyError, pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
        raise StoreError(f"rows do not match the ParallelRecord schema ({_short(exc)})") from None


def _as_table(data: pa.Table | Iterable[ParallelRecord]) -> pa.Table:
    if isinstance(data, pa.Table):
        return to_records_table(data)
    return records_to_table(data)


class _Rows:
    """What a commit adds: a table in memory, or Parquet files of rows read one at a
    time (a run's shards: never all of them in memory at once)."""

    def __init__(self, table: pa.Table | None = None, files: Sequence[Any] = ()):
        self.table, self.files = table, list(files)
        if table is not None:
            self.ids = table.column("record_id").combine_chunks()
        else:
            parts = [pq.read_table(f, columns=["record_id"]).column(0) for f in self.files]
            self.ids = pa.chunked_array(parts, pa.string()).combine_chunks()
        self.num_rows = len(self.ids)

    def without(self, leave_out: set[str]) -> pa.Table | pa.RecordBatchReader:
        """The rows whose ids are not in ``leave_out``: a table, or a reader over the
        files (made anew for each commit attempt: a reader is consumed once)."""
        gone = pa.array(sorted(leave_out), pa.string())

        def keep(t: pa.Table) -> pa.Table:
            if not leave_out:
                return t
            return t.filter(pc.invert(pc.is_in(t.column("record_id"), value_set=gone)))

        if self.table is not None:
            return keep(self.table)

        def batches() -> Iterator[pa.RecordBatch]:
            for f in self.files:
                yield from keep(to_records_table(pq.read_table(f))).to_batches()

        return pa.RecordBatchReader.from_batches(arrow_schema(), batches())


def commit(
    data: pa.Table | Iterable[ParallelRecord],
    run_id: str,
    *,
    settings: Settings | None = None,
    replace: bool = False,
    properties: Mapping[str, Any] | None = None,
) -> int:
    """Commit rows as one new snapshot of the dataset; return its snapshot id.

    ``replace=False`` appends (a synthesize run) and refuses records whose
    ``record_id`` is already in the table (StoreError: a row would be duplicated, or a
    reviewed row silently superseded), whatever another writer commits meanwhile.
    ``replace=True`` (a review pull) replaces the rows
    whose ``record_id`` appears in ``data`` and appends the rest; Iceberg writes new
    files for that, never edits old ones. ``properties`` go into the
    snapshot summary as ``parallelner.<key>`` (provenance: config hash, prompt...).
    On a concurrent commit the table is reloaded and the commit retried.
    """
    done = _commit(data, run_id, settings, "replace" if replace else "refuse", properties)
    assert done.snapshot_id is not None
    return done.snapshot_id


@dataclass(frozen=True)
class Appended:
    """What ``append_new`` did: the snapshot it committed (None: nothing was new), the
    rows it added and the rows it left out because the table already held their ids."""

    snapshot_id: int | None
    added: int
    skipped: int


def append_new(
    data: pa.Table | Iterable[ParallelRecord],
    run_id: str,
    *,
    settings: Settings | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Appended:
    """Append the rows whose ``record_id`` the table does not hold yet, as one snapshot.

    A run over inputs that overlap an earlier run's (``--limit 100``, then the whole
    file) adds what is new; the rows already there (same instance, direction and
    configuration: the same record id) stay as they are, reviewed or not. The check
    runs inside each commit attempt, so two writers of the same rows add them once.
    Nothing new: no snapshot (``snapshot_id`` None).
    """
    return _commit(data, run_id, settings, "skip", properties)


def append_new_files(
    files: Sequence[Any],
    run_id: str,
    *,
    settings: Settings | None = None,
    properties: Mapping[str, Any] | None = None,
) -> Appended:
    """``append_new`` for rows held in Parquet files (a run's shards): one snapshot,
    its data files written while the files are read one by one, so a run of any size
    commits in the memory of one file (and of its ids)."""
    return _commit(_Rows(files=files), run_id, settings, "skip", properties)


def _commit(
    data: pa.Table | Iterable[ParallelRecord] | _Rows,
    run_id: str,
    settings: Settings | None,
    existing: str,
    properties: Mapping[str, Any] | None,
) -> Appended:
    settings = _settings(settings)
    rows = data if isinstance(data, _Rows) else _Rows(_as_table(data))
    counts = pc.value_counts(rows.ids)
    twice = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(twice):
        dup = twice.field("values")[0].as_py()
        raise StoreError(f"run {run_id}: record_id {dup!r} appears twice in one commit")
    props = {f"{PROP_PREFIX}{k}": str(v) for k, v in (properties or {}).items()}
    props[f"{PROP_PREFIX}run-id"] = run_id
    props[f"{PROP_PREFIX}operation"] = "replace" if existing == "replace" else "append"
    props[f"{PROP_PREFIX}committed-at"] = datetime.now(UTC).isoformat(timespec="seconds")
    rng = random.Random()
    catalog = open_catalog(settings, create=True)
    try:
        return _commit_with_retry(catalog, settings, rows, run_id, existing, props, rng)
    finally:
        close_catalog(catalog)


# Arrow bytes pyiceberg gathers before it writes a data file (its default, 512 MB, held
# a whole 257k-pair run in memory: peak 1.4 GB against 0.7 GB at 25k pairs)
WRITE_TARGET_BYTES = 16 * 2**20


def _no_pyiceberg_retry(table: Table) -> Table:
    """``table`` whose commit raises on a lost race instead of re-basing onto the winner,
    and whose streamed appends write a data file every ``WRITE_TARGET_BYTES``.

    pyiceberg reads ``commit.retry.num-retries`` and ``write.target-file-size-bytes`` from
    the loaded metadata when it commits; the catalog applies the updates to its own
    current metadata, so these settings stay in this process (the table's stored
    properties are not changed).
    """
    props = {
        **table.metadata.properties,
        TableProperties.COMMIT_NUM_RETRIES: "0",
        TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(WRITE_TARGET_BYTES),
    }
    table.metadata = table.metadata.model_copy(update={"properties": props})
    return table


def _commit_with_retry(
    catalog: SqlCatalog,
    settings: Settings,
    rows: _Rows,
    run_id: str,
    mode: str,
    props: dict[str, str],
    rng: random.Random,
) -> Appended:
    """One attempt per loop: read the ids the table holds, commit on exactly that snapshot.

    ``mode``: ``refuse`` (ids already there: StoreError), ``skip`` (leave those rows out)
    or ``replace`` (supersede them).
    """
    total = rows.num_rows
    for attempt in range(MAX_ATTEMPTS):
        table = _no_pyiceberg_retry(load_table(catalog, settings, create=True))
        existing = _existing_ids(table, rows.ids)
        if existing and mode == "refuse":
            raise StoreError(
                f"run {run_id}: {len(existing)} of {total} records are already in the "
                f"table (e.g. {sorted(existing)[0]!r}); nothing was committed. Commit them "
                "with replace=True to supersede those rows (a review pull does)"
            )
        skipped = set()
        if existing and mode == "skip":
            skipped, existing = existing, set()
            if len(skipped) == total:
                return Appended(None, 0, total)
        todo = rows.without(skipped)
        added = total - len(skipped)
        # what the commit does to the dataset's rows (Iceberg's own added-records counts
        # the rows of every rewritten file: 196 for a pull that replaced 2 rows)
        counted = {
            **props,
            f"{PROP_PREFIX}rows-added": str(added - len(existing)),
            f"{PROP_PREFIX}rows-changed": str(len(existing)),
            f"{PROP_PREFIX}rows-removed": "0",
        }
        if skipped:
            counted[f"{PROP_PREFIX}rows-skipped"] = str(len(skipped))
        try:
            if existing:
                _replace_rows(table, todo, existing, counted)
            else:
                _append_rows(table, todo, counted)
        except (CommitFailedException, ValidationException):
            # another writer committed after our read: read the ids again and redo it on
            # a fresh table (pyiceberg's own re-basing would skip that check)
            log.info(
                "run %s: another writer committed first; retrying (attempt %d)", run_id, attempt + 2
            )
            time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + rng.random()))
            continue
        except OSError as exc:  # the warehouse refused the write (gone, read-only, S3 down)
            if is_no_space(exc):
                raise NoSpaceError(redact_location(warehouse_location(settings))) from None
            raise StoreError(
                f"{redact_location(warehouse_location(settings))}: cannot write to the warehouse "
                f"({_short(exc)}); nothing was committed"
            ) from None
        except Exception as exc:
            if is_no_space(exc):  # the SQLite catalog's disk
                raise NoSpaceError(_catalog_for_messages(settings)) from None
            if "database is locked" in str(exc):  # SQLite busy: same as a lost race
                log.info("run %s: catalog database busy; retrying", run_id)
                time.sleep(0.05 + rng.random() * 0.2)
                continue
            raise
        snap = table.current_snapshot()
        assert snap is not None
        return Appended(snap.snapshot_id, added - len(existing), len(skipped))
    raise StoreError(
        f"run {run_id}: commit failed {MAX_ATTEMPTS} times (too many concurrent writers)"
    )


def _bins(rows: pa.Table | pa.RecordBatchReader) -> Iterator[pa.Table]:
    """``rows`` in tables of about ``WRITE_TARGET_BYTES`` (Arrow bytes) each, read lazily."""
    if isinstance(rows, pa.Table):
        yield rows
        return
    buffer: list[pa.RecordBatch] = []
    size = 0
    for batch in rows:
        buffer.append(batch)
        size += batch.nbytes
        if size >= WRITE_TARGET_BYTES:
            yield pa.Table.from_batches(buffer, rows.schema)
            buffer, size = [], 0
    if buffer:
        yield pa.Table.from_batches(buffer, rows.schema)


def _append_rows(
    table: Table, rows: pa.Table | pa.RecordBatchReader, props: dict[str, str]
) -> None:
    """One APPEND snapshot of ``rows``, its data files written one bin at a time.

    ``Table.append`` with a ``RecordBatchReader`` is meant to stream, but pyiceberg (0.12)
    hands its bins to ``Executor.map``, which takes them all before it writes one: the
    whole run was in memory at the commit (+140 MB at 40,000 rows). Here each bin is
    written before the next is read, so the commit holds one bin (``WRITE_TARGET_BYTES``)
    and the data files' metadata.
    """
    from pyiceberg.io.pyarrow import _check_pyarrow_schema_compatible, _dataframe_to_data_files

    _check_pyarrow_schema_compatible(
        table.schema(), provided_schema=rows.schema, format_version=table.format_version
    )
    commit_uuid, counter = uuid.uuid4(), itertools.count(0)
    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties=props).fast_append() as snapshot:
        for part in _bins(rows):
            for data_file in _dataframe_to_data_files(
                table.metadata, part, table.io, commit_uuid, counter
            ):
                snapshot.append_data_file(data_file)
    tx.commit_transaction()


def _replace_rows(table: Table, rows: pa.Table, existing: set[str], props: dict[str, str]) -> None:
    """One OVERWRITE snapshot: rewrite the files holding ``existing`` ids without them, add ``rows``.

    pyiceberg's ``Table.overwrite`` would commit a delete snapshot and an append snapshot;
    the first is a table state missing the replaced rows that someone could tag. This
    builds the same copy-on-write rewrite as a single snapshot (new files only).
    """
    from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files

    gone = pa.array(sorted(existing), pa.string())
    tasks = table.scan(row_filter=In("record_id", sorted(existing))).plan_files()
    commit_uuid, counter = uuid.uuid4(), itertools.count(0)

    def write(df: pa.Table) -> list:
        if df.num_rows == 0:  # a file whose every row is replaced is only deleted
            return []
        return list(_dataframe_to_data_files(table.metadata, df, table.io, commit_uuid, counter))

    tx = table.transaction()
    with tx.update_snapshot(snapshot_properties=props).overwrite(commit_uuid) as snapshot:
        for task in tasks:
            old = ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table([task])
            keep = old.filter(pc.invert(pc.is_in(old.column("record_id"), value_set=gone)))
            if keep.num_rows == old.num_rows:
                continue  # the file's statistics matched, none of its rows is replaced
            snapshot.delete_data_file(task.file)
            for data_file in write(keep):
                snapshot.append_data_file(data_file)
        for data_file in write(rows):
            snapshot.append_data_file(data_file)
    tx.commit_transaction()


def _existing_ids(table: Table, ids: pa.Array) -> set[str]:
    """The ids among ``ids`` that the table's current snapshot already holds (the table's
    id column read batch by batch: memory bounded by a batch, not by the table)."""
    if table.current_snapshot() is None or len(ids) == 0:
        return set()
    found: set[str] = set()
    try:
        reader = table.scan(selected_fields=("record_id",)).to_arrow_batch_reader()
        for batch in reader:
            present = batch.column(0).cast(pa.string())
            found.update(present.filter(pc.is_in(present, value_set=ids)).to_pylist())
    except (FileNotFoundError, OSError) as exc:
        raise StoreError(
            f"a data file of the current snapshot is missing or damaged "
            f"({_short(exc)}); nothing was committed"
        ) from None
    return found


def resolve_snapshot(table: Table, name_or_id: str | int) -> Snapshot:
    """The snapshot a tag name, a snapshot id, or ``main`` (the latest) refers to."""
    key = str(name_or_id).strip()
    if key in table.refs():
        snap = table.snapshot_by_name(key)
    elif key.lstrip("-").isdigit():
        snap = table.snapshot_by_id(int(key))
        if snap is None:
            raise StoreError(f"{key}: no snapshot with this id (see `parallelner snapshot list`)")
    else:
        tags = sorted(n for n, r in table.refs().items() if r.snapshot_ref_type == "tag")
        known = ", ".join(tags) if tags else "none yet"
        raise StoreError(f"{key}: no such tag or snapshot (tags: {known})")
    if snap is None:
        raise StoreError(f"{key}: the table has no snapshot yet")
    return snap


def list_snapshots(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Every snapshot of the table, oldest first, with its run, counts and tags."""
    with reading(settings) as table:
        return _describe_snapshots(table)


def run_snapshot(run_id: str, settings: Settings | None = None) -> int | None:
    """The snapshot of the latest commit of ``run_id``, or None (never committed, no table).

    What lets a re-run of the same job commit nothing new and say which snapshot has its rows.
    """
    try:
        snapshots = list_snapshots(settings)
    except StoreError:  # no table yet: nothing committed
        return None
    found = None
    for snap in snapshots:  # oldest first: the latest commit of the run wins
        if snap.get("run_id") == run_id:
            found = snap["snapshot_id"]
    return found


def _describe_snapshots(table: Table) -> list[dict[str, Any]]:
    tags: dict[int, list[str]] = {}
    for name, ref in table.refs().items():
        if ref.snapshot_ref_type == "tag":
            tags.setdefault(ref.snapshot_id, []).append(name)
    current = table.current_snapshot()
    totals: dict[int, int] = {}
    out = []
    for snap in table.snapshots():
        summary = snap.summary.additional_properties if snap.summary else {}
        total = int(summary.get("total-records", 0))
        totals[snap.snapshot_id] = total
        parent = totals.get(snap.parent_snapshot_id) if snap.parent_snapshot_id else 0
        operation = str(snap.summary.operation.value) if snap.summary else None
        out.append(
            {
                "snapshot_id": snap.snapshot_id,
                "parent_id": snap.parent_snapshot_id,
                "committed_at": datetime.fromtimestamp(snap.timestamp_ms / 1000, UTC).isoformat(
                    timespec="seconds"
                ),
                "operation": operation,
                "run_id": summary.get(f"{PROP_PREFIX}run-id"),
                **row_changes(summary, operation, total, parent),
                "total_records": total,
                "tags": sorted(tags.get(snap.snapshot_id, [])),
                "current": current is not None and current.snapshot_id == snap.snapshot_id,
            }
        )
    return out


def row_changes(
    summary: Mapping[str, str], operation: str | None, total: int, parent_total: int | None
) -> dict[str, int | None]:
    """Rows a snapshot added, changed (replaced by a new version) and removed.

    Read from the counts ``commit`` records; for snapshots committed before those
    existed: an append added its rows, a replace changed ``parallelner.changed`` rows
    (review pulls record it) and the rest is the change in the total (None: not known).
    """
    keys = ("added_records", "changed_records", "removed_records")
    recorded = [summary.get(f"{PROP_PREFIX}rows-{k}") for k in ("added", "changed", "removed")]
    if all(v is not None for v in recorded):
        return {k: int(v) for k, v in zip(keys, recorded, strict=True)}
    if operation == "append":
        return dict(zip(keys, (int(summary.get("added-records", 0)), 0, 0), strict=True))
    net = None if parent_total is None else total - parent_total
    changed = summary.get(f"{PROP_PREFIX}changed")
    return {
        "added_records": None if net is None else max(net, 0),
        "changed_records": int(changed) if changed is not None else None,
        "removed_records": None if net is None else max(-net, 0),
    }
