"""Root test configuration: paths to the repository's real data."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.processes import stop_groups

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
EXAMPLES = REPO / "examples"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


# --- PostgreSQL on loopback (Iceberg catalog, Prefect server DB) -------------------------
# Debian's binaries (apt package `postgresql`, see scripts/install-services.sh), initdb in
# a temporary directory, a free loopback port, trust auth. PostgreSQL refuses to run as
# root, so under root the server runs as the OS user `nobody`.


def _postgres_bindir() -> Path | None:
    import shutil

    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """SQLAlchemy URL of a throw-away PostgreSQL server: postgresql+psycopg2://postgres@127.0.0.1:PORT/postgres."""
    import os
    import shutil
    import subprocess
    import tempfile

    bindir = _postgres_bindir()
    if bindir is None:
        pytest.fail(
            "PostgreSQL binaries not found (/usr/lib/postgresql/*/bin): "
            "run scripts/install-services.sh"
        )
    root = Path(tempfile.mkdtemp(prefix="parallelner-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, user="nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    data, port = root / "data", _free_port()

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, timeout=120)

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "-E",
        "UTF8",
        "--no-sync",
    )
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(root / "server.log"),
        "-w",
        "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
        "start",
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


_DB_SEQ = itertools.count(1)


@pytest.fixture
def postgres_database(postgres_url, request):
    """A fresh, empty database on the session's PostgreSQL server; yields its URL."""
    import re

    import sqlalchemy as sa

    name = "t_" + re.sub(r"[^a-z0-9]+", "_", request.node.name.lower())[:50] + f"_{next(_DB_SEQ)}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    yield postgres_url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """An S3-compatible server (moto) on loopback, in its own process; yields its
    environment: AWS_ENDPOINT_URL_S3 and throw-away credentials, the variables that
    ``parallelner.storage`` and the warehouse read. The bucket ``parallelner`` exists."""
    import subprocess
    import sys
    import time

    import httpx

    port = _free_port()
    endpoint = f"http://127.0.0.1:{port}"
    env = {
        "AWS_ENDPOINT_URL_S3": endpoint,
        "AWS_ACCESS_KEY_ID": "test-key",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "AWS_REGION": "us-east-1",
    }
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    moto = str(Path(sys.executable).parent / "moto_server")
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [moto, "-H", "127.0.0.1", "-p", str(port)],
            stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        end = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"moto_server exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(endpoint, timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > end:
                    pytest.fail(f"moto_server did not start: {log.read_text()[-2000:]}")
                time.sleep(0.3)
        httpx.put(f"{endpoint}/parallelner", timeout=10).raise_for_status()  # the bucket
        yield env
    finally:
        stop_groups(proc)
