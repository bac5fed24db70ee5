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

from parallelner.errors import PrefectStartError

__all__ = [
    "configure_run_logging",
    "configured_api_url",
    "start_local_api",
    "api_for_workers",
    "stop_local_api",
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
    A start that fails is one line (``PrefectStartError``), not a traceback.
    """
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_HOME, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS

    if configured_api_url():
        return None
    home = Path(PREFECT_HOME.value()).expanduser()
    home.mkdir(parents=True, exist_ok=True)
    timeout = PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    with (home / "parallelner-start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file is closed
        try:
            server = SubprocessASGIServer()
            server.start(timeout=timeout)
        except Exception as exc:  # RuntimeError on a timeout; anything else it raises
            raise PrefectStartError(
                f"the local Prefect API did not start ({exc}); Prefect's first start on a "
                f"machine migrates its database under {home}, which can take minutes on a "
                f"busy machine: run the command again, raise "
                f"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS (now {timeout} s), or "
                f"point PREFECT_API_URL at a running Prefect server"
            ) from None
    _STARTED.append(server)
    return server.api_url


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
