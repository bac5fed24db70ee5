"""Stopping the service processes that tests start in their own process groups."""

from __future__ import annotations

import os
import signal
import subprocess


def stop_groups(*procs: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM each process group still running, wait, then SIGKILL what did not stop."""
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
