"""The Prefect API a command-line run reports to: found, started, handed on, stopped.

Everything the CLI needs of Prefect's server side lives here (flows/ is the only package
that imports Prefect): whether ``PREFECT_API_URL`` names a server, the temporary local
API started under a lock, the API address handed to the workers of a Dask cluster, and
stopping the API started here when a run is interrupted.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from parallelner.errors import (
    ConfigError,
    NoSpaceError,
    PrefectStartError,
    is_no_space,
    why_not_writable,
)

__all__ = [
    "configure_run_logging",
    "configured_api_url",
    "start_local_api",
    "api_for_workers",
    "stop_local_api",
    "prefect_disk_full",
    "prefect_home_full",
]

# the servers this process started (stopped by ``stop_local_api``)
_STARTED: list[Any] = []


def configure_run_logging() -> None:
    """Prefect's logging and start-up defaults for a run from a terminal.

    The run's INFO lines (shards started and finished) go to the Prefect API, where the
    UI shows them; the terminal shows the progress bar and warnings only. Prefect's first
    start migrates its database: on a busy 2-core machine that takes longer than the
    ephemeral server's 20 s default, and the run died in start-up.
    """
    if "PREFECT_LOGGING_LEVEL" not in os.environ:
        os.environ["PREFECT_LOGGING_LEVEL"] = "INFO"
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")  # no egress noise
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")


def configured_api_url() -> str | None:
    """The Prefect server ``PREFECT_API_URL`` names, or None (a temporary local API)."""
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


def start_local_api() -> str | None:
    """Start the temporary local Prefect API (unless PREFECT_API_URL names a server); its
    address, or None when PREFECT_API_URL names one.

    Prefect starts it on the first API call anyway; doing it here lets two runs that
    start at once on one machine (en->zh and zh->en) take turns: the first start migrates
    Prefect's database, and two migrations of one fresh database at once fail
    (``index ... already exists``). A lock file under PREFECT_HOME serialises the start;
    the runs share the database afterwards (SQLite in WAL mode, Prefect's busy timeout).
    A start that fails is one line (``PrefectStartError``), not a traceback, as soon as
    the server process exits (``flows._local_api``); a full disk under PREFECT_HOME is
    ``NoSpaceError`` naming it (checked first with a small write, then from the server's
    own report).
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    from flows._local_api import LocalAPI, ServerExited

    if configured_api_url():
        return None
    home = Path(PREFECT_HOME.value()).expanduser()
    _check_prefect_home(home)
    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    before = SubprocessASGIServer._instances.get(None)
    if before is not None and not isinstance(before, LocalAPI) and not before.running:
        del SubprocessASGIServer._instances[None]  # made, never started: ours instead
    with (home / "parallelner-start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        try:
            server = LocalAPI()
            server.start(timeout=timeout)
        except Exception as exc:  # RuntimeError on a timeout; anything else it raises
            if prefect_disk_full() or is_no_space(exc):
                raise prefect_home_full(home) from None
            why = (
                f"the local Prefect API did not start ({exc}); "
                if isinstance(exc, ServerExited)
                else f"the local Prefect API did not start ({exc}); Prefect's first start "
                f"on a machine migrates its database under {home}, which can take minutes "
                f"on a busy machine: run the command again, raise "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (now {timeout} s), or "
            )
            raise PrefectStartError(
                f"{why}point PREFECT_API_URL at a running Prefect server"
            ) from None
    _STARTED.append(server)
    return server.api_url


def prefect_home_full(home: Path | None = None) -> NoSpaceError:
    """The one-line error for a full disk under PREFECT_HOME."""
    if home is None:
        from prefect.settings import PREFECT_HOME

        home = Path(PREFECT_HOME.value()).expanduser()
    return NoSpaceError(
        home,
        setting="PREFECT_HOME",
        what="Prefect keeps its database, results and logs there (PREFECT_HOME)",
    )


def prefect_disk_full() -> bool:
    """Whether the local API started here reported a full disk (its database cannot grow)."""
    import sys

    if "flows._local_api" not in sys.modules:  # never started here
        return False
    from flows._local_api import disk_full_reported

    return disk_full_reported()


def _check_prefect_home(home: Path) -> None:
    """Write (and remove) 64 KiB under PREFECT_HOME: a full or read-only disk is one line
    before the server starts."""
    import tempfile

    probe = None
    try:
        home.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-check-", dir=home)
        with os.fdopen(fd, "wb") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as exc:
        if is_no_space(exc):
            raise prefect_home_full(home) from None
        why = why_not_writable(exc)
        raise ConfigError(
            f"{home}: Prefect's home folder cannot be written ({why}): Prefect keeps its "
            "database, results and logs there; set PREFECT_HOME to a folder you can write "
            "(or PREFECT_API_URL to a running Prefect server); nothing was run"
        ) from None
    finally:
        if probe is not None:
            with contextlib.suppress(OSError):
                os.unlink(probe)


@contextlib.contextmanager
def api_for_workers(api_url: str | None, address: str | None) -> Iterator[None]:
    """Tell the workers of the Dask cluster at ``address`` this run's temporary Prefect API.

    Prefect hands its settings to the Dask workers with each task; the temporary API is
    otherwise known only inside this process, and each worker would start one of its own
    (its task runs missing from this flow run). It listens on loopback: workers on other
    machines need PREFECT_API_URL (the CLI's scheduler check says so before the run).
    """
    if api_url is None or address is None:
        yield
        return
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield


def stop_local_api() -> None:
    """Stop the temporary API this process started (terminate, then kill its uvicorn)."""
    while _STARTED:
        with contextlib.suppress(Exception):
            _STARTED.pop().stop()
