"""Prefect's temporary local API server, started so that a failure is one line, at once.

Prefect's own ``SubprocessASGIServer.start`` polls ``/health`` for the whole start-up
timeout even after its server process has died, and the process writes its traceback to
the terminal. With ``PREFECT_HOME`` on a full disk the server dies migrating its database
("database or disk is full"): the run sat silent for the whole timeout (180-300 s), then
printed a traceback (issue 25 case 8). Here the server's stderr goes through this process
(forwarded as before once it is up), a start ends as soon as the process exits, and a
server that reports a full disk (at start or in the middle of a run) is remembered, so
the CLI ends the run in one line naming ``PREFECT_HOME``.

Imported only after ``flows.server.configure_run_logging`` (it imports Prefect).
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import re
import subprocess
import sys
import threading
import time
from typing import IO, Any

import httpx
import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, get_current_settings

from parallelner.errors import is_no_space

__all__ = ["LocalAPI", "ServerExited", "disk_full_reported"]

_RECORD = re.compile(r"^\d\d:\d\d:\d\d\.\d+ \| ")  # the first line of a Prefect log record
_DISK_FULL = threading.Event()  # the server said its disk is full (its database cannot grow)


def disk_full_reported() -> bool:
    """Whether a local API server of this process reported a full disk."""
    return _DISK_FULL.is_set()


class ServerExited(RuntimeError):
    """The server process exited before it answered: its exit code and last stderr line."""


class LocalAPI(SubprocessASGIServer):
    """``SubprocessASGIServer`` whose start stops at the server's exit and whose stderr is
    read here (kept while it starts, forwarded once it is up, dropped after a full disk).

    The same singleton Prefect's client looks up (``SubprocessASGIServer()``, port None):
    create it before Prefect's first API call and the flow uses this server.
    """

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        # Prefect 3.9's command line and environment, with stderr piped to this process
        server_env = {
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
        }
        proc = subprocess.Popen(
            args=[
                sys.executable,
                "-m",
                "uvicorn",
                "--app-dir",
                str(prefect.__module_path__.parent),
                "--factory",
                "prefect.server.api.server:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--log-level",
                "error",
                "--lifespan",
                "on",
            ],  # fmt: skip
            env={
                **os.environ,
                **server_env,
                **get_current_settings().to_environment_variables(exclude_unset=True),
            },
            stderr=subprocess.PIPE,
        )
        self._tail: collections.deque[str] = collections.deque(maxlen=40)
        self._up = getattr(self, "_up", None) or threading.Event()
        threading.Thread(
            target=self._drain, args=(proc.stderr, self._tail, self._up),
            name="prefect-api-stderr", daemon=True,
        ).start()  # fmt: skip
        return proc

    @staticmethod
    def _drain(stream: IO[bytes], tail: collections.deque[str], up: threading.Event) -> None:
        """Read the server's stderr to its end (a full pipe would block the server).

        Lines are forwarded a log record at a time (a record and its traceback, up to the
        next record's first line): a record whose traceback ends in a full disk is dropped
        whole, as is everything after it. Nothing is forwarded before the server is up.
        """
        block: list[str] = []

        def forward() -> None:
            if block and up.is_set() and not _DISK_FULL.is_set():
                sys.stderr.write("".join(block))
                sys.stderr.flush()
            block.clear()

        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace")
            if line.strip():
                tail.append(line.rstrip())
            if is_no_space(RuntimeError(line)) and not _DISK_FULL.is_set():
                _DISK_FULL.set()
                # Prefect's API log handler writes its failures to stderr unless this is
                # off; the run is about to end with one line that says why
                logging.raiseExceptions = False
            if _RECORD.match(line):
                forward()
            block.append(line)
        forward()

    def start(self, timeout: int | None = None) -> None:
        """Start the server; return once it answers ``/health``.

        Raises ``ServerExited`` as soon as the process exits (Prefect's own start went on
        polling a dead process until its timeout) and RuntimeError on a timeout.
        """
        if self.running:
            return
        if self.port is None:
            self.port = self.find_available_port()
        limit = timeout or PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
        self.running = True
        try:
            self.server_process = self._run_uvicorn_command()
            atexit.register(self.stop)
            deadline = time.monotonic() + limit
            with httpx.Client() as client:
                while True:
                    code = self.server_process.poll()
                    if code == 3:  # the port was taken meanwhile: another one (as Prefect)
                        self.port = self.find_available_port()
                        self.server_process = self._run_uvicorn_command()
                        continue
                    if code is not None:
                        self.server_process.wait()
                        time.sleep(0.2)  # its last lines reach the drain thread
                        last = self._tail[-1] if self._tail else "no output"
                        raise ServerExited(f"its process exited with code {code}: {last[:300]}")
                    try:
                        if client.get(f"{self.api_url}/health").status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"it did not answer within {limit} s")
                    time.sleep(0.1)
        except Exception:
            self.running = False
            if self.server_process is not None and self.server_process.poll() is None:
                self.stop()
            raise
        self._up.set()

    def stop(self) -> None:
        """Stop the server; what it writes while it shuts down (a traceback of the work it
        cancels, after the run's own last line) is not forwarded."""
        up = getattr(self, "_up", None)
        if up is not None:
            up.clear()
        super().stop()
