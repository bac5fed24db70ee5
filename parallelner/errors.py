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
