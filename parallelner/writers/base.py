"""Atomic, streaming file output shared by the writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Self

from parallelner.errors import ConfigError

__all__ = ["AtomicTextWriter", "open_temp_beside"]


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
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return fd, Path(tmp)


class AtomicTextWriter:
    """A text file written under a temporary name and renamed into place on ``close``.

    A crash or an exception inside ``with`` leaves no half-written file behind (the
    temporary file is removed); readers never see a partial output.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        fd, self._tmp = open_temp_beside(self.path)
        self._fh: IO[str] = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self.count = 0

    def write_line(self, line: str) -> None:
        """Write one line (a newline is added)."""
        self._fh.write(line)
        self._fh.write("\n")
        self.count += 1

    def close(self) -> None:
        """Flush, and move the file into place."""
        if self._fh.closed:
            return
        self._fh.close()
        try:
            os.replace(self._tmp, self.path)
        except OSError as exc:  # e.g. a directory appeared at ``path`` meanwhile
            self._tmp.unlink(missing_ok=True)
            raise ConfigError(f"{self.path}: cannot write: {exc.strerror or exc}") from None

    def abort(self) -> None:
        """Drop what was written."""
        if not self._fh.closed:
            self._fh.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # noqa: ANN001
        if exc_type is None:
            self.close()
        else:
            self.abort()
