"""Typed exceptions. Library code raises these; only the CLI turns them into messages.

Every message is meant for a person: it names the file and line where there is one, says
what is wrong, and never contains a secret.
"""

from __future__ import annotations

from parallelner.reasons import Reason

__all__ = [
    "ParallelNERError",
    "ConfigError",
    "InputError",
    "LLMError",
    "StoreError",
    "ReviewError",
    "PrefectStartError",
    "UnfinishedRun",
    "NoSpaceError",
    "RunStopped",
    "Pending",
    "is_no_space",
    "why_not_writable",
]


class ParallelNERError(Exception):
    """Base class: an error the user can act on (printed as one line, exit code 2)."""

    exit_code = 2


class ConfigError(ParallelNERError):
    """Invalid or inconsistent configuration, detected before any work is done."""


class InputError(ParallelNERError):
    """Bad input data: ``file:line: what is wrong``."""

    def __init__(self, path: str, line: int | None, reason: Reason, detail: str):
        self.path = str(path)
        self.line = line
        self.reason = reason
        self.detail = detail
        where = f"{self.path}:{line}" if line is not None else self.path
        super().__init__(f"{where}: {detail} [{reason.value}]")


class LLMError(ParallelNERError):
    """The LLM endpoint cannot be used (unreachable, bad model name, bad key)."""


class StoreError(ParallelNERError):
    """The dataset store refused an operation (unknown tag, tampered file...)."""


class ReviewError(ParallelNERError):
    """Label Studio cannot be used (unreachable, bad token, deleted project)."""


class PrefectStartError(ParallelNERError):
    """Prefect's local API did not start (e.g. its first start timed out on a busy machine)."""

    exit_code = 1


class UnfinishedRun(ParallelNERError):
    """A run ended with rows failed for transient LLM reasons: running it again retries them."""

    exit_code = 3


class NoSpaceError(ParallelNERError):
    """The disk (or quota) under a path the run writes is full: nothing more can be kept.

    Everything written before stays (each file is written whole or not at all), so the
    same command resumes once there is room.
    """

    def __init__(self, path: object, setting: str = "PARALLELNER_HOME", what: str = ""):
        self.path = str(path)
        self.setting = setting
        super().__init__(
            f"{self.path}: no space left on the device (disk or quota full)"
            + (f"; {what}" if what else "")
            + f"; free space there (or set {setting} to a disk with room) and run the same "
            "command again: finished shards are kept and replies received are in the cache"
        )


class RunStopped(ParallelNERError):
    """Work cut off because the run is stopping (another shard failed): not retried."""


_NO_SPACE_ERRNOS = {28, 122}  # ENOSPC, EDQUOT (Linux)
_NO_SPACE_TEXT = ("database or disk is full", "no space left on device", "[errno 28]")


def why_not_writable(exc: OSError) -> str:
    """Why a folder could not be written, in words: "on a read-only file system", "not
    writable by this user", or the system's own message."""
    import errno

    return {
        errno.EROFS: "on a read-only file system",
        errno.EACCES: "not writable by this user",
        errno.EPERM: "not writable by this user",
    }.get(exc.errno or 0, exc.strerror or type(exc).__name__)


def is_no_space(exc: BaseException | None) -> bool:
    """True when ``exc`` (or an exception it was raised from) says the disk is full.

    OSError carries ENOSPC in ``errno``; SQLite says "database or disk is full"; pyarrow
    raises a plain OSError whose message holds ``[errno 28]``.
    """
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, NoSpaceError):
            return True
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
            return True
        text = str(exc).lower()
        if isinstance(exc, OSError | Exception) and any(t in text for t in _NO_SPACE_TEXT):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


class Pending(BaseException):  # noqa: N818 (not an error: the instance waits for a round)
    """A batch round (``parallelner.batchrun``): an instance asked a question no batch job
    has answered yet, and its chain stops here until the next round.

    A ``BaseException``, so that no stage's or client's ``except Exception`` takes it for
    a failure.
    """
