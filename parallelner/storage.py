"""Where a run's shards, rows and unfinished markers live: a folder, or an fsspec URL.

Default: the run's home (``<home>/shards``, ``<home>/rows``), as local paths.
``storage_url`` (env ``PARALLELNER_STORAGE_URL``) puts them in one location that every
Dask worker can reach: a path on a shared file system, or an object store URL such as
``s3://bucket/prefix`` (read through fsspec; S3 credentials and endpoint come from the
same AWS variables as an ``s3://`` warehouse, see ``store.catalog``).

A location is a ``Path`` or a ``str`` (a path or a URL); every operation goes through the
fsspec file system of the location (``_files``, the one place where a local folder and an
object store differ: how a file is written atomically). A local file is written under a
temporary name and renamed (``writers.atomic``); an object store put is atomic per
object. Credentials never appear in a message (``redact``).

``ShardStore`` owns a run's rows files and unfinished markers, and says whether a shard
is done: the one check both runners (``pipeline.process_shard``, the Prefect flow's
shard tasks) use.
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parallelner.redaction import redact_url
from parallelner.settings import Settings
from parallelner.writers.atomic import AtomicTextWriter
from parallelner.writers.atomic import write_table as write_local_table

if TYPE_CHECKING:
    import pyarrow as pa
    from fsspec import AbstractFileSystem

__all__ = [
    "Location",
    "storage_root",
    "join",
    "exists",
    "read_text",
    "write_lines",
    "read_table",
    "write_table",
    "remove",
    "set_aside",
    "with_suffix",
    "s3_options",
    "redact",
    "redact_url",
    "ShardStore",
    "ShardState",
]

Location = Path | str
log = logging.getLogger(__name__)


def storage_root(settings: Settings) -> Location:
    """The root of shards and rows: ``storage_url`` if set, else the home folder."""
    url = settings.storage_url
    if url is None:
        return Path(settings.home)
    if url.startswith("file://"):
        return Path(url.removeprefix("file://"))
    return url if "://" in url else Path(url)


def join(root: Location, *parts: str) -> Location:
    """``root`` / ``parts``, of ``root``'s type (a Path, or a URL string)."""
    return type(root)(posixpath.join(str(root).rstrip("/") or "/", *parts))


def with_suffix(loc: Location, suffix: str) -> Location:
    """``loc`` with its file suffix replaced (as ``Path.with_suffix``)."""
    head, sep, name = str(loc).rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return type(loc)(f"{head}{sep}{stem}{suffix}")


def s3_options(env: dict[str, str] | None = None) -> dict[str, Any]:
    """s3fs options from the standard AWS variables (the warehouse reads the same ones)."""
    env = dict(os.environ) if env is None else env
    endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL")
    region = (
        env.get("AWS_REGION")
        or env.get("AWS_DEFAULT_REGION")
        or ("us-east-1" if endpoint else None)
    )
    opts: dict[str, Any] = {
        "key": env.get("AWS_ACCESS_KEY_ID"),
        "secret": env.get("AWS_SECRET_ACCESS_KEY"),
        "token": env.get("AWS_SESSION_TOKEN"),
    }
    opts = {k: v for k, v in opts.items() if v}
    client = {k: v for k, v in {"endpoint_url": endpoint, "region_name": region}.items() if v}
    if client:
        opts["client_kwargs"] = client
    # listings cached by one process go stale when another worker writes: never cache them
    opts["use_listings_cache"] = False
    return opts


class _Files(Protocol):
    """A file system as the store uses it: fsspec's, plus an atomic write."""

    fs: AbstractFileSystem

    def put_lines(self, path: str, lines: Iterable[str]) -> None: ...

    def put_table(self, table: pa.Table, path: str) -> None: ...


@dataclass(frozen=True)
class _LocalFiles:
    """A local or mounted folder: written under a temporary name, then renamed."""

    fs: AbstractFileSystem

    def put_lines(self, path: str, lines: Iterable[str]) -> None:
        with AtomicTextWriter(path) as writer:
            for line in lines:
                writer.write_line(line)

    def put_table(self, table: pa.Table, path: str) -> None:
        write_local_table(table, path)


@dataclass(frozen=True)
class _ObjectFiles:
    """An object store: one put per file (the object appears whole or not at all)."""

    fs: AbstractFileSystem

    def put_lines(self, path: str, lines: Iterable[str]) -> None:
        self.fs.pipe_file(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))

    def put_table(self, table: pa.Table, path: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.fs.pipe_file(path, sink.getvalue().to_pybytes())


def _files(loc: Location) -> tuple[_Files, str]:
    """The file system of ``loc`` and the path inside it (the backend factory).

    fsspec picks the file system from the URL (a plain path: the local one); S3 takes its
    options from the AWS variables. Only how a whole file is written differs: a local
    file system renames a temporary file into place, an object store puts once.
    """
    from fsspec.core import url_to_fs
    from fsspec.implementations.local import LocalFileSystem

    url = str(loc)
    options = s3_options() if url.startswith(("s3://", "s3a://")) else {}
    fs, path = url_to_fs(url, **options)
    files = _LocalFiles(fs) if isinstance(fs, LocalFileSystem) else _ObjectFiles(fs)
    return files, path


def redact(loc: Location) -> str:
    """``loc`` safe for a message: a ``user:password@`` part becomes ``***@``."""
    return redact_url(str(loc)) if "@" in str(loc) else str(loc)


def exists(loc: Location) -> bool:
    """True when a file is at ``loc``."""
    files, path = _files(loc)
    return files.fs.exists(path)


def read_text(loc: Location) -> str:
    """The UTF-8 text at ``loc``; FileNotFoundError when there is none."""
    files, path = _files(loc)
    return files.fs.cat_file(path).decode("utf-8")


def write_lines(loc: Location, lines: Iterable[str]) -> None:
    """Write ``lines`` (a newline after each) to ``loc`` atomically."""
    files, path = _files(loc)
    files.put_lines(path, lines)


def read_table(loc: Location, columns: list[str] | None = None) -> pa.Table:
    """The Parquet file at ``loc`` as an Arrow table (only ``columns``, when given)."""
    import pyarrow.parquet as pq

    files, path = _files(loc)
    with files.fs.open(path, "rb") as fh:
        return pq.read_table(fh, columns=columns)


def table_rows(loc: Location) -> int:
    """The number of rows the Parquet file at ``loc`` says it holds (its footer only)."""
    import pyarrow.parquet as pq

    files, path = _files(loc)
    with files.fs.open(path, "rb") as fh:
        return pq.read_metadata(fh).num_rows


def write_table(table: pa.Table, loc: Location) -> Location:
    """Write ``table`` as one Parquet file at ``loc`` atomically; returns ``loc``."""
    files, path = _files(loc)
    files.put_table(table, path)
    return loc


def remove(loc: Location) -> None:
    """Remove the file at ``loc``, if any."""
    files, path = _files(loc)
    if files.fs.exists(path):
        files.fs.rm_file(path)


def set_aside(loc: Location, problem: str, redo: str) -> Location:
    """Rename a damaged file to ``<name>.damaged-<UTC time>`` and say so in one warning.

    ``problem``: what is wrong with it; ``redo``: what is done instead (the work it held
    is redone). The file is kept for a look, never deleted; a later run finds the name
    free and writes a whole file there. Returns where the file went.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    files, path = _files(loc)
    target: Location = type(loc)(f"{loc}.damaged-{stamp}")
    n = 1
    while exists(target):  # set aside twice in one second: keep both
        n += 1
        target = type(loc)(f"{loc}.damaged-{stamp}-{n}")
    files.fs.mv(path, _files(target)[1])
    shown = target.name if isinstance(target, Path) else redact(target)
    log.warning("%s: %s; set aside as %s, %s", redact(loc), problem, shown, redo)
    return target


@dataclass(frozen=True)
class ShardState:
    """What the store knows of one shard's rows under one configuration."""

    done: bool  # rows whole (the shard's number of rows) and no unfinished marker
    rows: Location  # where its rows file is (or will be)
    token: str | None = None  # the unfinished marker's token (rows with transient failures)
    damaged: str | None = None  # why the rows file there is not this shard's rows


class ShardStore:
    """A run's rows files and unfinished markers under the storage root; which shards
    are done.

    Rows of shard ``S`` under configuration ``C``: ``<root>/rows/C/S.parquet``. Rows that
    hold transient LLM failures get a marker beside them (``S.unfinished``, with a token
    that changes with each attempt and the number of failed requests): such a shard is
    not done, and the next run processes it again. A shard is done when its rows file
    says it holds one row per instance and no marker is there: ``state`` is that one
    check, for both runners (and for the flow's task cache).
    """

    def __init__(self, root: Location):
        self.root = root

    @classmethod
    def of(cls, settings: Settings) -> ShardStore:
        """The store under ``settings``' storage root."""
        return cls(storage_root(settings))

    def rows_path(self, config_hash: str, shard_id: str) -> Location:
        """Where the rows of shard ``shard_id`` under ``config_hash`` are written."""
        return join(self.root, "rows", config_hash, f"{shard_id}.parquet")

    @staticmethod
    def marker_path(rows: Location) -> Location:
        """The unfinished marker beside the rows file ``rows``."""
        return with_suffix(rows, ".unfinished")

    @classmethod
    def marker(cls, rows: Location) -> dict[str, Any] | None:
        """The unfinished marker of the rows file ``rows`` (None: there is none)."""
        try:
            data = json.loads(read_text(cls.marker_path(rows)))
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def state(self, config_hash: str, shard_id: str, size: int) -> ShardState:
        """Whether the shard (``size`` instances) is done; its marker's token if any."""
        import pyarrow as pa

        rows = self.rows_path(config_hash, shard_id)
        marker = self.marker(rows)
        if marker is not None:
            return ShardState(False, rows, str(marker.get("token")))
        try:
            n = table_rows(rows)
        except FileNotFoundError:
            return ShardState(False, rows)  # new
        except (OSError, pa.ArrowException) as exc:
            why = f"rows file damaged: not a readable Parquet file ({type(exc).__name__})"
            return ShardState(False, rows, damaged=why)
        if n != size:  # a whole Parquet file, but not this shard's rows
            why = f"rows file holds {n} rows for a shard of {size} instances"
            return ShardState(False, rows, damaged=why)
        return ShardState(True, rows)

    def write_rows(self, rows: Location, table: pa.Table, transient_failures: int) -> None:
        """Write a shard's rows; with transient failures, the marker first (a crash in
        between redoes the shard), else the rows first and then the marker removed."""
        marker = self.marker_path(rows)
        if transient_failures:
            token = os.urandom(8).hex()
            write_lines(marker, [json.dumps({"token": token, "transient": transient_failures})])
            write_table(table, rows)
        else:
            write_table(table, rows)
            remove(marker)
