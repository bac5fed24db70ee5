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


def mount_tmpfs(path, size: str) -> None:
    """Mount a tmpfs of ``size`` on ``path`` (a real small disk, to fill up or to export
    into as a mount point), or skip the test: mounting needs root (CI and this machine run
    as root; a developer's shell usually does not). The caller unmounts it."""
    import pytest

    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"needs root to mount a tmpfs: {mounted.stderr.decode().strip()}")
