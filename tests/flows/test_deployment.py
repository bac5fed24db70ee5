"""A real `prefect server start` on loopback over PostgreSQL: `parallelner deploy` registers
`synthesize` for a process work pool, a `prefect worker` runs it, the snapshot exists."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

from parallelner.settings import load_settings
from parallelner.store import load_snapshot
from tests.flows.helpers import CLI, REPO, WIKINEURAL_SAMPLE, prefect_env

BIN = Path(sys.executable).parent
POOL = "parallelner-test-pool"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path):
    """A long-running service process in its own group; killed with its children after."""
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            args, env=env, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _wait_healthy(api: str, proc: subprocess.Popen, log: Path, timeout_s: float = 240) -> None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"prefect server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"prefect server not healthy in {timeout_s} s: {log.read_text()[-3000:]}")


def test_deployment_runs_through_a_worker_on_a_real_server(postgres_database, llm_server, tmp_path):
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "PREFECT_"))}
    env.update(prefect_env(tmp_path))
    env.update({
        "PREFECT_API_URL": api,
        "PREFECT_API_DATABASE_CONNECTION_URL":
            postgres_database.replace("postgresql+psycopg2://", "postgresql+asyncpg://"),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_WORKER_QUERY_SECONDS": "2",
        "PREFECT_WORKER_PREFETCH_SECONDS": "5",
    })  # fmt: skip
    home = tmp_path / "home"
    server_log, worker_log = tmp_path / "server.log", tmp_path / "worker.log"

    with _process(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env,
        server_log,
    ) as server:
        _wait_healthy(api, server, server_log)
        subprocess.run(
            [str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"],
            env=env,
            check=True,
            capture_output=True,
            timeout=120,
        )

        res = subprocess.run(
            [CLI, "deploy", "--pool", POOL, "synthesize"],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert res.returncode == 0, res.stdout + res.stderr
        ids = re.findall(r"^deployment ([0-9a-f-]{36})$", res.stdout, re.MULTILINE)
        assert len(ids) == 1, res.stdout
        dep_id = ids[0]

        dep = httpx.get(f"{api}/deployments/{dep_id}", timeout=10).json()
        assert dep.get("name") == "synthesize", f"{res.stdout!r}: {dep}"
        assert dep["work_pool_name"] == POOL

        params = {
            "sources": [str(WIKINEURAL_SAMPLE)],
            "tgt_lang": "zh",
            "config": {
                "home": str(home),
                "llm_base_url": llm_server.base_url,
                "llm_model": "test-model",
                "shard_size": 5,
            },
        }
        run = httpx.post(
            f"{api}/deployments/{dep_id}/create_flow_run", json={"parameters": params}, timeout=30
        )
        assert run.status_code in (200, 201), run.text
        run_id = run.json()["id"]

        with _process(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
            env,
            worker_log,
        ):
            end = time.monotonic() + 400
            state = None
            while time.monotonic() < end:
                state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]
                if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                    break
                time.sleep(2)
            assert state is not None and state["type"] == "COMPLETED", (
                f"{state}\n{worker_log.read_text()[-4000:]}"
            )

        artifacts = httpx.post(
            f"{api}/artifacts/filter",
            timeout=10,
            json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        ).json()
        assert {a["type"] for a in artifacts} >= {"progress", "table"}

    rows = load_snapshot("main", settings=load_settings(home=home))
    assert rows.num_rows == 20
    assert len(llm_server.requests) >= 20  # the worker's flow run asked the test LLM
    summary = json.loads(json.dumps({a["key"]: a["data"] for a in artifacts if a["key"]}))
    assert "synthesize-summary" in summary
