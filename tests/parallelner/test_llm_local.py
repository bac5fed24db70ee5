"""The embedded local model server never outlives the process that started it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

SCRIPT = """
import os
from parallelner.llm.local import LocalServer
srv = LocalServer()
srv.start()
print(srv._proc.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie waiting for its (dead) parent counts as gone
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


@pytest.mark.slow
def test_server_dies_with_a_sigkilled_parent():
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == -9, out.stderr
    child = int(out.stdout.strip())
    deadline = time.monotonic() + 15
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(child), f"llama.cpp server {child} outlived its parent"
