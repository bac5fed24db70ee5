"""A real `prefect server start` on loopback over PostgreSQL: `parallelner deploy` registers
`synthesize` for a process work pool, a `prefect worker` runs it, the snapshot exists."""

from __future__ import annotations

import json
import os
import re
import shutil
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
from tests.processes import stop_groups

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
        stop_groups(proc)


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


def deploy_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CLI, "deploy", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300
    )


def _start_run(api: str, deployment_id: str, params: dict) -> str:
    run = httpx.post(
        f"{api}/deployments/{deployment_id}/create_flow_run",
        json={"parameters": params},
        timeout=30,
    )
    assert run.status_code in (200, 201), run.text
    return run.json()["id"]


def _wait_completed(api: str, run_id: str, log: Path, timeout_s: float = 400) -> None:
    end = time.monotonic() + timeout_s
    state = None
    while time.monotonic() < end:
        state = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10).json()["state"]
        if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        time.sleep(2)
    assert state is not None and state["type"] == "COMPLETED", f"{state}\n{log.read_text()[-4000:]}"


def _wait_deployment(api: str, name: str, proc: subprocess.Popen, log: Path) -> dict:
    end = time.monotonic() + 240
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"serve exited {proc.returncode}: {log.read_text()[-3000:]}")
        res = httpx.get(f"{api}/deployments/name/{name}", timeout=10)
        if res.status_code == 200 and "being served" in log.read_text():
            return res.json()
        time.sleep(2)
    raise AssertionError(f"{name} not served in time: {log.read_text()[-3000:]}")


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

        # no such pool: one line that says how to make it, not Prefect's traceback
        res = deploy_cli("--pool", "no-such-pool", "synthesize", env=env)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "prefect work-pool create no-such-pool --type process" in res.stderr

        res = deploy_cli("--pool", POOL, "synthesize", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        ids = re.findall(r"^deployment ([0-9a-f-]{36})  (\S+)$", res.stdout, re.MULTILINE)
        assert [name for _, name in ids] == [f"synthesize/synthesize-{POOL}"], res.stdout
        dep_id = ids[0][0]

        dep = httpx.get(f"{api}/deployments/{dep_id}", timeout=10).json()
        assert dep.get("name") == f"synthesize-{POOL}", f"{res.stdout!r}: {dep}"
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
        run_id = _start_run(api, dep_id, params)

        with _process(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process"],
            env,
            worker_log,
        ):
            _wait_completed(api, run_id, worker_log)

        artifacts = httpx.post(
            f"{api}/artifacts/filter",
            timeout=10,
            json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        ).json()
        assert {a["type"] for a in artifacts} >= {"progress", "table"}

        # `serve` after `deploy`: its own deployment, runs execute in the serving process
        # (they crashed with "Downloading flow code from storage at None" when both used
        # synthesize/synthesize); the pool's deployment keeps its pool and pull step
        served_home = tmp_path / "served-home"
        serve_log = tmp_path / "serve.log"
        with _process([CLI, "serve", "synthesize"], env, serve_log) as serving:
            served = _wait_deployment(api, "synthesize/synthesize", serving, serve_log)
            assert served["id"] != dep_id and served["work_pool_name"] is None
            served_params = {**params, "config": {**params["config"], "home": str(served_home)}}
            _wait_completed(api, _start_run(api, served["id"], served_params), serve_log)
        pool_dep = httpx.get(f"{api}/deployments/{dep_id}", timeout=10).json()
        assert pool_dep["work_pool_name"] == POOL and pool_dep["pull_steps"]

        # `parallelner run` with relative paths: the flow run's parameters are absolute
        # (they resolve the same wherever the run is looked at or started again)
        workdir = tmp_path / "workdir"
        workdir.mkdir()
        shutil.copy(WIKINEURAL_SAMPLE, workdir / "sample.conllu")
        ran = subprocess.run(
            [CLI, "run", "sample.conllu", "--to", "zh", "--home", "rel-home", "--json"],
            env={**env, "PARALLELNER_LLM_BASE_URL": llm_server.base_url,
                 "PARALLELNER_LLM_MODEL": "test-model", "COLUMNS": "200"},
            cwd=workdir, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        runs = httpx.post(f"{api}/flow_runs/filter", json={}, timeout=10).json()
        mine = [r for r in runs if str(workdir) in json.dumps(r["parameters"])]
        assert len(mine) == 1, [r["parameters"] for r in runs]
        assert mine[0]["parameters"]["sources"] == [str(workdir / "sample.conllu")]
        assert mine[0]["parameters"]["config"]["home"] == str(workdir / "rel-home")

    assert load_snapshot("main", settings=load_settings(home=served_home)).num_rows == 20
    rows = load_snapshot("main", settings=load_settings(home=home))
    assert rows.num_rows == 20
    assert len(llm_server.requests) >= 20  # the worker's flow run asked the test LLM
    summary = json.loads(json.dumps({a["key"]: a["data"] for a in artifacts if a["key"]}))
    assert "synthesize-summary" in summary
