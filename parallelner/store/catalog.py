"""Open the Iceberg SQL catalog that holds the dataset (SQLite by default, or Postgres).

Default: ``<home>/catalog.db`` (SQLite, one file, nothing to run) and the warehouse
``<home>/warehouse``. ``catalog_uri`` (env ``PARALLELNER_CATALOG_URI``, e.g.
``postgresql+psycopg2://user:pw@host/db``) and ``warehouse`` (env
``PARALLELNER_WAREHOUSE``, a path or any URI pyarrow reaches, e.g. ``s3://bucket/x``)
override them. The catalog URI may hold a password: it never appears in error text.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

from pyiceberg.catalog.sql import SqlCatalog

from parallelner.errors import StoreError
from parallelner.redaction import redact_url
from parallelner.settings import Settings

__all__ = [
    "CATALOG_NAME",
    "DATASET_TABLE",
    "open_catalog",
    "catalog_location",
    "warehouse_location",
    "redact_location",
    "redact_catalog_uri",
    "warehouse_table_metadata",
    "orphaned_table_message",
]

CATALOG_NAME = "parallelner"
DATASET_TABLE = ("parallelner", "records")  # namespace, name (``store.table.TABLE_NAME``)
_SQLITE_MAGIC = b"SQLite format 3\x00"


def _redact(uri: str) -> str:
    """The URI with any password replaced, safe for messages."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(uri).render_as_string(hide_password=True)
    except Exception:  # not a SQLAlchemy URL at all: don't echo it, it may hold a secret
        return "catalog URI (PARALLELNER_CATALOG_URI)"


def redact_catalog_uri(uri: str) -> str:
    """A catalog URI with its password replaced, safe to print (``config show``)."""
    return _redact(uri)


def redact_location(uri: str) -> str:
    """``uri`` with any ``user:password@`` part replaced by ``***@``, safe for messages.

    pyarrow accepts ``s3://KEY:SECRET@bucket/path`` as a warehouse: never echo that part.
    """
    return redact_url(uri, unparsable="warehouse (PARALLELNER_WAREHOUSE)")


def catalog_location(settings: Settings) -> str:
    """SQLAlchemy URI of the catalog (may contain a secret: don't print it)."""
    if settings.catalog_uri is not None:
        return settings.catalog_uri.get_secret_value()
    return f"sqlite:///{(Path(settings.home) / 'catalog.db').absolute()}"


def warehouse_location(settings: Settings) -> str:
    """Warehouse root as a URI (``file:///...`` for local paths)."""
    wh = settings.warehouse
    if wh is None:
        return (Path(settings.home) / "warehouse").absolute().as_uri()
    if "://" in wh:
        return wh
    return Path(wh).absolute().as_uri()


def _s3_properties(warehouse: str) -> dict[str, str]:
    """pyiceberg S3 properties from the standard AWS variables (MinIO in the compose set-up).

    Only for an ``s3://`` warehouse; the keys are handed to the FileIO, never printed.
    """
    if not warehouse.startswith(("s3://", "s3a://")):
        return {}
    env = os.environ
    props = {
        "s3.endpoint": env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
        "s3.access-key-id": env.get("AWS_ACCESS_KEY_ID"),
        "s3.secret-access-key": env.get("AWS_SECRET_ACCESS_KEY"),
        "s3.session-token": env.get("AWS_SESSION_TOKEN"),
        "s3.region": env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or ("us-east-1" if env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") else None),
    }
    return {k: v for k, v in props.items() if v}


def _local_path(uri: str) -> Path | None:
    parsed = urlparse(uri)
    return Path(parsed.path) if parsed.scheme == "file" else None


def check_table_location(settings: Settings, location: str) -> None:
    """Refuse a table whose files are not under this home's warehouse: a home that was
    moved or copied. Iceberg keeps absolute paths in its catalog and metadata, so the
    copy would read, and write into, the original (issue 25: a copy wrote into the
    original home; a moved one said only "the warehouse is gone")."""
    here = _local_path(warehouse_location(settings))
    there = _local_path(location)
    if here is None or there is None:  # an object store: no home to move
        return
    if there.resolve() == here.resolve() or here.resolve() in there.resolve().parents:
        return
    raise StoreError(
        f"{settings.home}: this home's dataset table lives at {there}, not under this "
        f"home's warehouse {here}: the home was moved or copied (Iceberg keeps absolute "
        "paths, so it is not relocatable). Use it where it was made (move it back, or "
        "point --home / PARALLELNER_HOME at the original); nothing was read or written"
    )


def check_not_relocated(settings: Settings) -> None:
    """Before any work: refuse a home that was moved or copied (its catalog points at
    the table where it was made). Nothing committed yet: nothing to check."""
    recorded = catalog_table_location(settings, *DATASET_TABLE)
    if recorded is not None:
        check_table_location(settings, recorded)


def catalog_table_location(settings: Settings, namespace: str, name: str) -> str | None:
    """Where a SQLite catalog says the table's metadata is (None: not SQLite, no such
    table, or no catalog file): what a moved home's catalog still points at."""
    import sqlite3

    uri = catalog_location(settings)
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            row = conn.execute(
                "SELECT metadata_location FROM iceberg_tables "
                "WHERE table_namespace = ? AND table_name = ?",
                (namespace, name),
            ).fetchone()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def warehouse_table_metadata(settings: Settings, namespace: str, name: str) -> str | None:
    """The newest metadata file of table ``namespace.name`` in the warehouse (None: none).

    pyiceberg's SQL catalog keeps a table at ``<warehouse>/<namespace>/<name>`` (before
    0.10: ``<namespace>.db/<name>``, both are looked at), its metadata files
    ``NNNNN-<uuid>.metadata.json`` numbered in commit order; the newest holds every
    snapshot and tag. A warehouse that cannot be listed (S3 down) counts as holding none:
    this only guards against starting a table over one that is there.
    """
    from pyarrow import fs as pafs

    root = warehouse_location(settings).rstrip("/")

    def version(file_name: str) -> int:
        head = file_name.rsplit("/", 1)[-1].split("-", 1)[0]
        return int(head) if head.isdigit() else -1

    found: list[str] = []
    for folder in (f"{root}/{namespace}/{name}/metadata", f"{root}/{namespace}.db/{name}/metadata"):
        try:
            filesystem, path = pafs.FileSystem.from_uri(folder)
            infos = filesystem.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        except Exception:  # noqa: BLE001 - unreachable or unsupported: nothing known to guard
            continue
        found += [
            f"{folder}/{i.base_name}" for i in infos if i.base_name.endswith(".metadata.json")
        ]
    return max(found, key=version) if found else None


def orphaned_table_message(where: str, settings: Settings, metadata: str) -> str:
    """The one line that refuses to start a new table over one the warehouse holds."""
    return (
        f"{where}: the dataset catalog has no table, but the warehouse "
        f"{redact_location(warehouse_location(settings))} holds one (its latest metadata: "
        f"{redact_location(metadata)}); was the catalog file deleted or replaced? Restore it "
        "from a backup, or run `parallelner snapshot recover-catalog` to register the table "
        "again from that metadata (its snapshots and tags come back with it); nothing was "
        "written"
    )


def open_catalog(
    settings: Settings, *, create: bool = False, recovering: bool = False
) -> SqlCatalog:
    """Open the catalog; ``create=True`` makes a missing SQLite catalog and warehouse.

    Raises StoreError when there is no catalog yet (and ``create`` is false), when the
    catalog file is not a catalog, or when the database cannot be reached; and when the
    SQLite catalog file is missing while the warehouse holds the dataset table (a new
    catalog would start an empty table and hide every snapshot and tag), unless
    ``recovering`` (``store.table.recover_catalog``).
    """
    uri = catalog_location(settings)
    warehouse = warehouse_location(settings)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if db.exists():
            _check_sqlite_file(db)
        elif not recovering and (metadata := warehouse_table_metadata(settings, *DATASET_TABLE)):
            raise StoreError(orphaned_table_message(str(db), settings, metadata))
        elif not create:
            raise StoreError(
                f"{db}: no dataset catalog here yet (nothing committed under this home; "
                "set --home or PARALLELNER_HOME)"
            )
        else:
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"{db.parent}: cannot create the data directory ({exc.strerror})"
                ) from None
    local_wh = _local_path(warehouse)
    if create and local_wh is not None:
        try:
            local_wh.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"{local_wh}: cannot create the warehouse directory ({exc.strerror})"
            ) from None
    try:
        return SqlCatalog(CATALOG_NAME, uri=uri, warehouse=warehouse, **_s3_properties(warehouse))
    except Exception as exc:  # sqlalchemy errors: DatabaseError, OperationalError...
        raise StoreError(
            f"{_redact(uri)}: cannot open the dataset catalog ({type(exc).__name__}: "
            f"{_first_line(exc, uri)})"
        ) from None


def _check_sqlite_file(db: Path) -> None:
    try:
        with db.open("rb") as fh:
            head = fh.read(16)
    except OSError as exc:
        raise StoreError(f"{db}: cannot read the catalog file ({exc.strerror})") from None
    if head and head != _SQLITE_MAGIC:
        raise StoreError(f"{db}: not a catalog (the file is not an SQLite database)")
    if head:
        tables = _sqlite_tables(db)
        if tables and "iceberg_tables" not in tables:
            raise StoreError(
                f"{db}: not a catalog (an SQLite database with other tables: "
                f"{', '.join(sorted(tables)[:5])})"
            )


def _sqlite_tables(db: Path) -> set[str]:
    import sqlite3

    try:
        with sqlite3.connect(f"{db.absolute().as_uri()}?mode=ro", uri=True) as conn:
            rows = conn.execute("select name from sqlite_master where type = 'table'").fetchall()
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: not a catalog (unreadable SQLite database: {exc})") from None
    return {r[0] for r in rows}


def _first_line(exc: Exception, secret: str) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text.replace(secret, _redact(secret))
