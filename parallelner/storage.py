"""Where a run's shards, rows and unfinished markers live: a folder, or an fsspec URL.

Default: the run's home (``<home>/shards``, ``<home>/rows``), as local paths.
``storage_url`` (env ``PARALLELNER_STORAGE_URL``) puts them in one location that every
Dask worker can reach: a path on a shared file system, or an object store URL such as
``s3://bucket/prefix`` (read through fsspec; S3 credentials and endpoint come from the
same AWS variables as an ``s3://`` warehouse, see ``store.catalog``).

A location is a ``Path`` (local) or a ``str`` URL. Writes are atomic either way: a local
file is written under a temporary name and renamed (``writers.atomic``); an object store
put is atomic per object. Credentials never appear in a message (``redact``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parallelner.redaction import redact_url
from parallelner.settings import Settings
from parallelner.writers.atomic import AtomicTextWriter
from parallelner.writers.atomic import write_table as write_local_table

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "Location",
    "storage_root",
    "join",
    "is_remote",
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


def is_remote(loc: Location) -> bool:
    """True for a URL that fsspec opens (``s3://...``), False for a local path."""
    return isinstance(loc, str) and "://" in loc


def join(root: Location, *parts: str) -> Location:
    """``root`` / ``parts``: a Path under a local root, a URL under a remote one."""
    if is_remote(root):
        return "/".join([str(root).rstrip("/"), *parts])
    return Path(root, *parts)


def with_suffix(loc: Location, suffix: str) -> Location:
    """``loc`` with its file suffix replaced (as ``Path.with_suffix``)."""
    if not is_remote(loc):
        return Path(loc).with_suffix(suffix)
    head, _, name = str(loc).rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}{suffix}"


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


def _fs(url: str):
    """The fsspec file system of ``url`` and the path inside it."""
    from fsspec.core import url_to_fs

    options = s3_options() if url.startswith(("s3://", "s3a://")) else {}
    return url_to_fs(url, **options)


def redact(loc: Location) -> str:
    """``loc`` safe for a message: a ``user:password@`` part becomes ``***@``."""
    return redact_url(str(loc)) if is_remote(loc) else str(loc)


def exists(loc: Location) -> bool:
    """True when a file is at ``loc``."""
    if not is_remote(loc):
        return Path(loc).exists()
    fs, path = _fs(str(loc))
    return fs.exists(path)


def read_text(loc: Location) -> str:
    """The UTF-8 text at ``loc``; FileNotFoundError when there is none."""
    if not is_remote(loc):
        return Path(loc).read_text(encoding="utf-8")
    fs, path = _fs(str(loc))
    return fs.cat_file(path).decode("utf-8")


def write_lines(loc: Location, lines: Iterable[str]) -> None:
    """Write ``lines`` (a newline after each) to ``loc`` atomically."""
    if not is_remote(loc):
        with AtomicTextWriter(loc) as writer:
            for line in lines:
                writer.write_line(line)
        return
    fs, path = _fs(str(loc))
    fs.pipe_file(path, "".join(f"{line}\n" for line in lines).encode("utf-8"))


def read_table(loc: Location) -> pa.Table:
    """The Parquet file at ``loc`` as an Arrow table."""
    import pyarrow.parquet as pq

    if not is_remote(loc):
        return pq.read_table(loc)
    fs, path = _fs(str(loc))
    with fs.open(path, "rb") as fh:
        return pq.read_table(fh)


def write_table(table: pa.Table, loc: Location) -> Location:
    """Write ``table`` as one Parquet file at ``loc`` atomically; returns ``loc``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not is_remote(loc):
        return write_local_table(table, loc)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    fs, path = _fs(str(loc))
    fs.pipe_file(path, sink.getvalue().to_pybytes())  # one put: the object appears whole
    return loc


def remove(loc: Location) -> None:
    """Remove the file at ``loc``, if any."""
    if not is_remote(loc):
        Path(loc).unlink(missing_ok=True)
        return
    fs, path = _fs(str(loc))
    if fs.exists(path):
        fs.rm_file(path)


def set_aside(loc: Location, problem: str, redo: str) -> Location:
    """Rename a damaged file to ``<name>.damaged-<UTC time>`` and say so in one warning.

    ``problem``: what is wrong with it; ``redo``: what is done instead (the work it held
    is redone). The file is kept for a look, never deleted; a later run finds the name
    free and writes a whole file there. Returns where the file went.
    """
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target: Location
    if is_remote(loc):
        target = f"{loc}.damaged-{stamp}"
        fs, path = _fs(str(loc))
        _, new_path = _fs(target)
        fs.mv(path, new_path)
    else:
        target = Path(f"{loc}.damaged-{stamp}")
        n = 1
        while target.exists():  # set aside twice in one second: keep both
            n += 1
            target = Path(f"{loc}.damaged-{stamp}-{n}")
        os.replace(loc, target)
    shown = target.name if isinstance(target, Path) else redact(target)
    log.warning("%s: %s; set aside as %s, %s", redact(loc), problem, shown, redo)
    return target
