"""Helpers for the flow tests: an isolated Prefect home, and ``parallelner run`` as a user
runs it (the installed console script, in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa

from parallelner.testing.openai_server import OpenAIServer
from tests.processes import stop_groups

REPO = Path(__file__).resolve().parents[2]
CLI = str(Path(sys.executable).parent / "parallelner")
# 46 real WikiNEuRal English validation sentences (credits in tests/data/NOTICE.md)
WIKINEURAL = REPO / "tests" / "data" / "wikineural-en-val-head.conllu"
# 20 real sentences each, the bundled samples (credits in data/NOTICE.md)
WIKINEURAL_SAMPLE = REPO / "examples" / "wikineural-en-sample.conllu"
CLUENER_SAMPLE = REPO / "examples" / "cluener-zh-sample.jsonl"

# Columns that legitimately differ between two runs of the same input.
VOLATILE = ("created_at", "reviewed_at")


def prefect_env(root: Path) -> dict[str, str]:
    """Prefect settings that keep a test's ephemeral API, DB and results under ``root``."""
    (root / "prefect-home").mkdir(parents=True, exist_ok=True)  # Prefect makes one level only
    return {
        "PREFECT_HOME": str(root / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180",
    }


def run_env(home: Path, llm: OpenAIServer | str | None, **extra: str) -> dict[str, str]:
    """Environment for a ``parallelner run`` subprocess: no inherited PARALLELNER_/PREFECT_."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "PREFECT_"))}
    env.update(prefect_env(home.parent))
    env["PARALLELNER_HOME"] = str(home)
    env["COLUMNS"] = "200"
    if llm is not None:
        env["PARALLELNER_LLM_BASE_URL"] = llm if isinstance(llm, str) else llm.base_url
        env["PARALLELNER_LLM_MODEL"] = "test-model"
    env.update(extra)
    return env


def run_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    """``parallelner run ARGS`` to completion."""
    return subprocess.run(
        [CLI, "run", *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO
    )


def summary_of(res: subprocess.CompletedProcess) -> dict:
    """The ``--json`` summary printed by a finished run."""
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(res.stdout)


def comparable(table: pa.Table) -> list[dict]:
    """A run's rows sorted by record id, without the columns that carry wall-clock times."""
    keep = [n for n in table.column_names if n not in VOLATILE]
    return table.select(keep).sort_by("record_id").to_pylist()


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def prefect_server(root: Path, timeout_s: float = 240) -> Iterator[str]:
    """``prefect server start`` on loopback (SQLite under ``root``, UI on); yields the API URL.

    The server runs in its own process group and is stopped with its children after.
    """
    import time

    import httpx

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "PREFECT_"))}
    env.update(prefect_env(root))
    env.update({"PREFECT_API_URL": api, "PREFECT_UI_ENABLED": "true"})
    log = root / "prefect-server.log"
    args = [str(Path(sys.executable).parent / "prefect"), "server", "start",
            "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            args, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        end = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"prefect server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > end:
                raise AssertionError(f"prefect server not healthy: {log.read_text()[-3000:]}")
            time.sleep(1)
        yield api
    finally:
        stop_groups(proc)
