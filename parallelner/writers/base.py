"""Atomic, streaming file output shared by the writers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import IO, Self

__all__ = ["AtomicTextWriter"]


class AtomicTextWriter:
    """A text file written under a temporary name and renamed into place on ``close``.

    A crash or an exception inside ``with`` leaves no half-written file behind (the
    temporary file is removed); readers never see a partial output.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        self._tmp = Path(tmp)
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
        os.replace(self._tmp, self.path)

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
