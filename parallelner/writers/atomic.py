"""The one way the project writes a file or a folder: under a temporary name beside it,
renamed into place when complete.

``atomic_path`` is the primitive (a file or, with ``directory=True``, a folder);
``AtomicTextWriter`` streams lines through it and ``write_table`` writes an Arrow table
as Parquet. A crash or an exception leaves no half-written output behind and readers
never see a partial one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Self

from parallelner.errors import ConfigError, NoSpaceError, is_no_space

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "atomic_path",
    "AtomicTextWriter",
    "write_table",
    "open_temp_beside",
    "file_in_the_way",
    "remove_temporaries",
]

# temporary files and folders of writes in progress in this process: a run stopped by a
# signal removes them before it exits (``remove_temporaries``), as an exception would
_IN_PROGRESS: set[Path] = set()
_IN_PROGRESS_LOCK = threading.Lock()


def remove_temporaries() -> int:
    """Remove the temporary files and folders of the writes in progress; returns how many.

    For a process about to exit without unwinding (``os._exit`` after SIGTERM): the
    outputs stay as they were, complete or absent.
    """
    with _IN_PROGRESS_LOCK:
        pending = list(_IN_PROGRESS)
        _IN_PROGRESS.clear()
    for tmp in pending:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return len(pending)


def file_in_the_way(path: Path) -> Path | None:
    """The first component of ``path`` that exists but is not a folder (None: there is none).

    ``mkdir(parents=True)`` below a regular file says only "File exists" or "Not a
    directory"; this names the component that stands in the way.
    """
    for part in [*reversed(Path(path).parents), Path(path)][1:]:
        try:
            if not part.is_dir():
                return part if part.exists() or part.is_symlink() else None
        except OSError:  # unreadable: not ours to judge
            return None
    return None


def _cannot_write(path: Path, exc: OSError, what: str) -> str:
    """``path: cannot write WHAT here: why`` (which component is a file, when one is)."""
    blocker = file_in_the_way(path)
    if blocker is not None and blocker != path:
        kind = "a regular file" if blocker.is_file() else "not a folder"
        why = f"{blocker} is {kind}, not a folder (remove or rename it, or choose another path)"
    else:
        why = exc.strerror or str(exc)
    return f"{path}: cannot write {what} here: {why}"


def open_temp_beside(path: Path) -> tuple[int, Path]:
    """Create ``path``'s folder and a temporary file next to it; returns ``(fd, temp path)``.

    Raises ConfigError (``path: cannot write: ...``) when ``path`` is a directory or its
    folder cannot be created or written, before anything is read or written.
    """
    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; give a file name to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if is_no_space(exc):
            raise NoSpaceError(path) from None
        raise ConfigError(_cannot_write(path, exc, "the file")) from None
    return fd, Path(tmp)


def _temp_dir_for(path: Path, error: type[Exception], what: str, inside: bool) -> Path:
    """A private temporary folder beside ``path`` (or, ``inside``, in it)."""
    try:
        if inside:
            return Path(tempfile.mkdtemp(dir=path, prefix=".tmp-"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    except OSError as exc:
        if is_no_space(exc):
            raise NoSpaceError(path) from None
        raise error(_cannot_write(path, exc, what)) from None


def _move_contents(tmp: Path, path: Path) -> None:
    """Rename every entry of ``tmp`` into ``path`` (same file system), then drop ``tmp``."""
    for entry in sorted(tmp.iterdir()):
        os.replace(entry, path / entry.name)
    tmp.rmdir()


@contextlib.contextmanager
def atomic_path(
    path: str | Path,
    *,
    directory: bool = False,
    error: type[Exception] = ConfigError,
    what: str = "the output",
) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it onto ``path`` when the block ends.

    With ``directory=True`` the temporary path is an empty folder (private, as
    ``mkdtemp`` makes it) and an empty folder at ``path`` is replaced. An empty folder
    that is a mount point cannot be replaced (``rmdir`` fails with EBUSY, and a rename
    across file systems with EXDEV): the temporary folder is then made inside it and its
    entries are renamed into it one by one at the end (each whole; a crash midway leaves
    some of them, which the caller's own check, such as an export's checksums, tells).
    On an exception the temporary file or folder is removed. ``error`` is raised (with
    the path and the cause) when the temporary path cannot be made or moved into place;
    a component of ``path`` that is a file is named.
    """
    path = Path(path)
    inside = directory and path.is_dir() and os.path.ismount(path)
    if directory:
        tmp = _temp_dir_for(path, error, what, inside)
    else:
        fd, tmp = open_temp_beside(path)
        os.close(fd)
    with _IN_PROGRESS_LOCK:
        _IN_PROGRESS.add(tmp)
    try:
        yield tmp
        try:
            if inside:
                _move_contents(tmp, path)
            else:
                if directory and path.is_dir():
                    path.rmdir()  # an empty folder stands in the way; a full one raises
                os.replace(tmp, path)
        except OSError as exc:  # e.g. a directory appeared at ``path`` meanwhile
            if exc.errno in (errno.EBUSY, errno.EXDEV):
                raise error(
                    f"{path}: cannot write {what} here: it is in use or on another file "
                    f"system than its folder ({exc.strerror})"
                ) from None
            raise error(f"{path}: cannot write: {exc.strerror or exc}") from None
    except BaseException as exc:
        if directory:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if is_no_space(exc) and not isinstance(exc, NoSpaceError):
            raise NoSpaceError(path) from None  # one line naming the file, not a traceback
        raise
    finally:
        with _IN_PROGRESS_LOCK:
            _IN_PROGRESS.discard(tmp)


def write_table(table: pa.Table, path: str | Path) -> Path:
    """Write an Arrow table as one Parquet file, atomically; returns the path."""
    import pyarrow.parquet as pq

    path = Path(path)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


class AtomicTextWriter:
    """A text file written under a temporary name and renamed into place on ``close``.

    A crash or an exception inside ``with`` leaves no half-written file behind (the
    temporary file is removed); readers never see a partial output.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._place = atomic_path(self.path)
        tmp = self._place.__enter__()
        self._fh: IO[str] = open(tmp, "w", encoding="utf-8", newline="\n")  # noqa: SIM115
        self.count = 0
        self._dropped = False

    def write_line(self, line: str) -> None:
        """Write one line (a newline is added)."""
        try:
            self._fh.write(line)
            self._fh.write("\n")
        except OSError as exc:
            self._failed(exc)
        self.count += 1

    def flush(self) -> None:
        """Flush what was written to the temporary file."""
        try:
            self._fh.flush()
        except OSError as exc:
            self._failed(exc)

    def close(self) -> None:
        """Flush, and move the file into place."""
        if self._fh.closed:
            return
        try:
            self._fh.close()
        except OSError as exc:
            self._failed(exc)
        self._place.__exit__(None, None, None)

    def _failed(self, exc: OSError) -> None:
        """A write failed: drop the temporary file; a full disk is one line naming ours."""
        with contextlib.suppress(OSError):
            self._fh.close()  # the buffered rest fails the same way: the file is dropped
        self.abort()
        if is_no_space(exc):
            raise NoSpaceError(self.path) from None
        raise exc

    def abort(self) -> None:
        """Drop what was written."""
        if self._dropped:
            return
        self._dropped = True
        with contextlib.suppress(OSError):
            self._fh.close()
        with contextlib.suppress(RuntimeError, NoSpaceError):
            self._place.__exit__(RuntimeError, RuntimeError("aborted"), None)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.close()
        else:
            self.abort()
