"""`parallelner run --runner dask --dask-address` on a real Dask cluster (issue 18): a
`dask scheduler` and two `dask worker` processes started from their own working
directories with their own homes (as separate machines would be), shards and rows on an
S3-compatible server (moto) or in a folder every worker reaches (a shared file system),
the reply cache in one Postgres, two stand-in LLM servers of which one
is killed mid-run and restarted on its port. The table equals a one-machine run's, and
the same command again asks the LLM nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from parallelner.settings import Settings, load_settings
from parallelner.store import load_snapshot
from parallelner.testing.openai_server import OpenAIServer
from tests.flows.helpers import (
    REPO,
    WIKINEURAL,
    comparable,
    free_port,
    run_cli,
    run_env,
    summary_of,
)
from tests.processes import stop_groups

ARGS = [str(WIKINEURAL), "--to", "zh", "--shard-size", "4", "--max-in-flight", "4", "--json"]
DASK = str(Path(sys.executable).parent / "dask")


def _machine_env(root: Path, extra: dict[str, str]) -> dict[str, str]:
    """A worker "machine": its own HOME, PARALLELNER_HOME, TMPDIR; the package importable."""
    for d in ("home", "parallelner-home", "tmp", "prefect"):
        (root / d).mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARALLELNER_", "PREFECT_"))}
    env.update(
        HOME=str(root / "home"),
        PARALLELNER_HOME=str(root / "parallelner-home"),
        TMPDIR=str(root / "tmp"),
        PREFECT_HOME=str(root / "prefect"),
        PYTHONPATH=str(REPO),
        **extra,
    )
    return env


@contextmanager
def dask_cluster(root: Path, extra_env: dict[str, str]) -> Iterator[tuple[str, list[Path]]]:
    """A scheduler and two workers on loopback, each in its own process group; yields the
    scheduler's address and the workers' homes. Everything is killed after."""
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []

    def start(name: str, args: list[str]) -> Path:
        machine = root / name
        env = _machine_env(machine, extra_env)
        log = machine / f"{name}.log"
        with open(log, "w") as fh:
            procs.append(
                subprocess.Popen(
                    args,
                    cwd=machine,
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
        logs.append(log)
        return machine

    scheduler_file = root / "scheduler.json"
    try:
        start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port", "0",
                            "--dashboard-address", ":0", "--scheduler-file", str(scheduler_file)])  # fmt: skip
        end = time.monotonic() + 120
        while not scheduler_file.exists():
            if time.monotonic() > end or procs[0].poll() is not None:
                raise AssertionError(f"no scheduler: {logs[0].read_text()[-3000:]}")
            time.sleep(0.3)
        address = json.loads(scheduler_file.read_text())["address"]
        homes = []
        for name in ("worker-a", "worker-b"):
            machine = start(name, [DASK, "worker", address, "--nthreads", "2", "--nworkers", "1",
                                   "--no-nanny", "--name", name, "--host", "127.0.0.1",
                                   "--dashboard-address", ":0",
                                   "--local-directory", str(root / name / "tmp")])  # fmt: skip
            homes.append(machine / "parallelner-home")
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
        yield address, homes
    finally:
        stop_groups(*reversed(procs))


@pytest.mark.parametrize("where", ["s3", "shared-path"])
def test_existing_cluster_gives_the_one_machine_table(where, request, tmp_path):
    # one machine: the thread runner, local home, one LLM server
    with OpenAIServer(model="test-model") as ref_srv:
        ref = summary_of(run_cli(*ARGS, env=run_env(tmp_path / "ref" / "home", ref_srv)))
    ref_rows = load_snapshot("main", settings=load_settings(home=tmp_path / "ref" / "home"))

    # an object store every worker reaches, or a folder on a file system they all mount
    s3_env = request.getfixturevalue("s3_server") if where == "s3" else {}
    storage_url = "s3://parallelner/team-cluster" if s3_env else str(tmp_path / "nfs")
    client_home = tmp_path / "client" / "home"
    cache = {}  # the reply cache every machine shares (Postgres), where the code has it
    if "llm_cache_url" in Settings.model_fields:
        cache["PARALLELNER_LLM_CACHE_URL"] = request.getfixturevalue("postgres_database")
    a = OpenAIServer(model="test-model", service_time=0.2).start()
    b = OpenAIServer(model="test-model", service_time=0.2).start()
    restarted: list[OpenAIServer] = []
    try:
        with dask_cluster(tmp_path / "cluster", s3_env) as (address, worker_homes):
            cli = ["--runner", "dask", "--dask-address", address]

            def kill_and_restart() -> None:
                while len(a.requests) < 20:
                    time.sleep(0.01)
                port = a.port
                a.stop()  # killed: its port refuses connections
                time.sleep(1.0)
                restarted.append(OpenAIServer(model="test-model", port=port).start())

            killer = threading.Thread(target=kill_and_restart, daemon=True)
            killer.start()
            env = run_env(
                client_home, f"{a.base_url},{b.base_url}", PARALLELNER_STORAGE_URL=storage_url,
                **s3_env, **cache,
            )  # fmt: skip
            first = summary_of(run_cli(*ARGS, *cli, env=env))
            killer.join(timeout=60)
            assert restarted, "the killed server was never restarted"
            asked_a, asked_b = len(a.requests), len(b.requests)

            # the same command again: every shard's rows are in S3, nothing is asked
            for srv in (b, restarted[0]):
                srv.reset_log()
            again = summary_of(run_cli(*ARGS, *cli, env=env))
            asked_again = len(b.requests) + len(restarted[0].requests)
            worker_caches = [h / "llm-cache.sqlite" for h in worker_homes]
    finally:
        for srv in (a, b, *restarted):
            srv.stop()

    rows = load_snapshot("main", settings=load_settings(home=client_home))
    assert rows.num_rows == ref_rows.num_rows == 46
    assert comparable(rows) == comparable(ref_rows)  # record ids, statuses, every column
    assert first["counts"] == ref["counts"] and first.get("unfinished", {}) == {}
    assert asked_a >= 20 and asked_b > 0  # both served; A until it was killed
    assert asked_again == 0
    assert (
        again["counts"] == ref["counts"] and again["shards"]["reused"] == again["shards"]["total"]
    )
    # shards and rows went to the storage, not to the client's home or a worker's
    assert not (client_home / "shards").exists() and not (client_home / "rows").exists()
    if not s3_env:
        assert len(list((tmp_path / "nfs" / "rows").glob("*/*.parquet"))) == 12
    for home in worker_homes:
        assert not (home / "shards").exists() and not (home / "rows").exists()
    if not cache:  # each worker kept its reply cache in its own home
        assert any(c.exists() for c in worker_caches)
    else:  # the workers' replies went to the one shared cache
        import sqlalchemy as sa

        engine = sa.create_engine(cache["PARALLELNER_LLM_CACHE_URL"])
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM llm_replies")).scalar() >= 46
        engine.dispose()
    # Prefect: one flow run per command, its shard tasks reported by the workers to the
    # client's API (no worker started a Prefect API of its own)
    import sqlite3

    with sqlite3.connect(client_home.parent / "prefect-home" / "prefect.db") as db:
        flows = db.execute("SELECT count(*) FROM flow_run").fetchone()[0]
        shard_runs = db.execute(
            "SELECT count(*) FROM task_run WHERE name LIKE 'process-shard%' "
            "AND state_type = 'COMPLETED'"
        ).fetchone()[0]
    assert flows == 2 and shard_runs == 2 * first["shards"]["total"] == 24
    for home in worker_homes:
        assert not list((home.parent / "prefect").glob("*.db"))


def test_unreachable_scheduler_is_one_line_and_exit_2(llm_server, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    env = run_env(tmp_path / "home", llm_server)
    res = run_cli(*ARGS, "--runner", "dask", "--dask-address", address, env=env, timeout=120)
    assert res.returncode == 2
    assert f"no Dask scheduler answers at {address}" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("address", ["127.0.0.1", "http://127.0.0.1:8786", "tcp://h:port"])
def test_malformed_scheduler_address_says_the_expected_form(address):
    from parallelner.errors import ConfigError
    from parallelner_cli.run import check_scheduler

    with pytest.raises(ConfigError, match="expected tcp://HOST:PORT"):
        check_scheduler(address)


def test_scheduler_on_another_machine_needs_a_prefect_server():
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from parallelner.errors import ConfigError
    from parallelner_cli.run import check_scheduler

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(
            ConfigError, match="tcp://10.0.0.5:8786 is on another machine: set PREFECT_API_URL"
        ),
    ):
        check_scheduler("tcp://10.0.0.5:8786")


def test_a_worker_keeps_the_run_settings_but_uses_its_own_home(monkeypatch, tmp_path):
    from flows.synthesize import on_this_machine

    client = load_settings(
        home=tmp_path / "client", storage_url="s3://bucket/runs", llm_max_in_flight=7
    )
    monkeypatch.setenv("PARALLELNER_HOME", str(tmp_path / "worker"))
    worker = on_this_machine(client)
    assert worker.home == tmp_path / "worker"
    assert worker.model_dump(exclude={"home"}) == client.model_dump(exclude={"home"})
