"""The reply cache on a real Postgres server: the SQLite cache's behaviour, several OS
processes at once, a server restart and an outage in the middle, a password that never
shows, and the CLI sharing replies between two homes (two machines) through it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import pickle
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from parallelner.errors import ConfigError
from parallelner.llm.cache import (
    CachedReply,
    CacheServer,
    ReplyCache,
    cache_location,
    open_reply_cache,
)
from parallelner.llm.cache_pg import PostgresReplyCache
from parallelner.llm.client import LLMClient
from parallelner.settings import Settings, load_settings
from parallelner.testing.openai_server import OpenAIServer
from tests.conftest import _free_port, _postgres_bindir

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "s3cret-Pw-7f1c"


def _reply(i: int) -> CachedReply:
    """A reply whose every field depends on ``i``, so a mixed-up row shows."""
    return CachedReply(f"答复 {i} — reply {i}", "stop" if i % 2 else "length", i, 2 * i)


class _Server:
    """A throw-away PostgreSQL with password auth that a test may stop and start again."""

    def __init__(self) -> None:
        self.bindir = _postgres_bindir()
        if self.bindir is None:
            pytest.fail("PostgreSQL binaries not found: run scripts/install-services.sh")
        self.root = Path(tempfile.mkdtemp(prefix="parallelner-pgcache-"))
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="nobody")
            self.prefix = ["runuser", "-u", "nobody", "--"]
        self.data, self.port = self.root / "data", _free_port()
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(pwfile, user="nobody")
        self._run("initdb", "-D", str(self.data), "-A", "scram-sha-256", "-U", "postgres",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync")  # fmt: skip
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run([*self.prefix, str(self.bindir / tool), *args], check=True,
                       capture_output=True, timeout=120)  # fmt: skip

    def url(self, password: str = PASSWORD) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-w",
                  "-o", opts, "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def close(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_server():
    srv = _Server()
    yield srv
    srv.close()


def _pg_url(postgres_database: str) -> str:
    return postgres_database.replace("postgresql+psycopg2://", "postgresql://")


@pytest.fixture(params=["sqlite", "postgres"])
def location(request, tmp_path):
    """Where a cache lives: the SQLite file, or a fresh database (as from the settings)."""
    if request.param == "sqlite":
        return tmp_path / "llm-cache.sqlite"
    url = request.getfixturevalue("postgres_database")
    return CacheServer(url, tmp_path / "llm-cache-pending.sqlite")


# -- the same behaviour as the SQLite cache -----------------------------------------------


def test_put_get_aput_len_and_persistence(location):
    cache = open_reply_cache(location)
    assert cache.get("k1") is None and len(cache) == 0
    cache.put("k1", "m", "t.v1", _reply(1))

    async def many():
        await asyncio.gather(*(cache.aput(f"k{i}", "m", "t.v1", _reply(i)) for i in range(2, 50)))

    asyncio.run(many())
    assert cache.get("k1") == _reply(1) and cache.get("k49") == _reply(49)
    assert len(cache) == 49
    cache.put("k1", "m", "t.v1", _reply(1))  # the same key again: no error, no new row
    assert len(cache) == 49
    cache.close()
    cache.close()  # twice is fine
    again = open_reply_cache(location)
    assert [again.get(f"k{i}") for i in range(1, 50)] == [_reply(i) for i in range(1, 50)]
    again.close()


def test_close_flushes_pending_aputs(location):
    cache = open_reply_cache(location)

    async def go():
        tasks = [asyncio.ensure_future(cache.aput(f"p{i}", "m", "t", _reply(i))) for i in range(20)]
        await asyncio.sleep(0)  # queued, maybe not committed
        cache.close()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    again = open_reply_cache(location)
    assert len(again) == 20
    again.close()


class _SlowNetwork:
    """A TCP proxy on loopback that holds back each chunk the server sends by ``delay`` s:
    a database across a slow network."""

    def __init__(self, target_port: int, delay: float) -> None:
        self.target_port, self.delay = target_port, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            threading.Thread(target=self._pump, args=(client, server, 0.0), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(server, client, self.delay), daemon=True
            ).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, delay: float) -> None:
        try:
            while data := src.recv(65536):
                time.sleep(delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_lookup_over_a_slow_network_leaves_the_event_loop_free(postgres_database, tmp_path):
    url = _pg_url(postgres_database)
    direct = PostgresReplyCache(url, tmp_path / "spill.sqlite")
    direct.put("k", "m", "t.v1", _reply(7))
    direct.close()
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    slow = _SlowNetwork(port, delay=0.3)
    cache = PostgresReplyCache(url.replace(f":{port}/", f":{slow.port}/"), tmp_path / "s.sqlite")

    async def look_up_while_ticking() -> tuple[int, CachedReply | None]:
        ticks = 0
        lookup = asyncio.ensure_future(cache.aget("k"))
        while not lookup.done():
            ticks += 1
            await asyncio.sleep(0.01)
        return ticks, await lookup

    try:
        ticks, hit = asyncio.run(look_up_while_ticking())
    finally:
        cache.close()
        slow.close()
    assert hit == _reply(7)
    # the loop went on during the 0.3 s round trip (a lookup on the loop thread: 1 tick)
    assert ticks >= 5, ticks


@pytest.fixture(scope="module")
def llm_server():
    with OpenAIServer() as srv:
        yield srv


def test_client_reuses_replies_through_postgres(llm_server, postgres_database, tmp_path):
    prompt = "English: Paris is in France.\nGerman:"
    llm_server.script(prompt, [{"content": " Paris liegt in Frankreich.", "finish_reason": "stop"}])
    where = CacheServer(postgres_database, tmp_path / "a" / "pending.sqlite")

    async def once(max_in_flight: int, where: CacheServer):
        async with LLMClient(base_url=llm_server.base_url, model="test-model", timeout_s=2.0,
                             max_in_flight=max_in_flight, cache_path=where) as c:  # fmt: skip
            a = await c.complete(prompt, stop=["\n"], max_tokens=32, prompt_version="t.v1")
            b = await c.complete(prompt, stop=["\n"], max_tokens=32, prompt_version="t.v1")
            return a, b, c.usage

    a, b, usage = asyncio.run(once(64, where))
    assert a == b == " Paris liegt in Frankreich."
    assert usage.requests == 1 and usage.cache_hits == 1
    # another process elsewhere (another spill file), other concurrency: all from the cache
    other = CacheServer(postgres_database, tmp_path / "b" / "pending.sqlite")
    a, _, usage = asyncio.run(once(3, other))
    assert a == " Paris liegt in Frankreich." and usage.requests == 0 and usage.cache_hits == 2


# -- several OS processes at once ---------------------------------------------------------

N_KEYS = 300


def _worker(url: str, spill: str, wid: int, nproc: int, barrier) -> list[str]:
    """Write this worker's keys (overlapping the next worker's), then read everyone's."""
    try:
        return _work(url, spill, wid, nproc, barrier)
    except BaseException:
        barrier.abort()  # the others stop waiting for this one
        raise


def _work(url: str, spill: str, wid: int, nproc: int, barrier) -> list[str]:
    barrier.wait()
    cache = PostgresReplyCache(url, Path(spill))  # every worker creates the table at once
    mine = range(wid * N_KEYS // nproc, (wid + 2) * N_KEYS // nproc)  # overlaps the next

    async def write():
        await asyncio.gather(
            *(cache.aput(f"key-{i % N_KEYS}", "m", "t.v1", _reply(i % N_KEYS)) for i in mine)
        )

    barrier.wait()
    asyncio.run(write())
    for i in list(mine)[::7]:  # and some single puts of the same keys, after the fact
        cache.put(f"key-{i % N_KEYS}", "m", "t.v1", _reply(i % N_KEYS))
    barrier.wait()  # every worker's writes are committed
    wrong = [f"key-{i}" for i in range(N_KEYS) if cache.get(f"key-{i}") != _reply(i)]
    cache.close()
    return wrong


def test_processes_write_overlapping_keys_and_read_each_others(postgres_database, tmp_path):
    nproc = 4
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(nproc)
        with ctx.Pool(nproc) as pool:
            args = [(postgres_database, str(tmp_path / f"w{w}.sqlite"), w, nproc, barrier)
                    for w in range(nproc)]  # fmt: skip
            wrong = pool.starmap(_worker, args, chunksize=1)
    assert wrong == [[]] * nproc  # each process read every entry, intact
    cache = PostgresReplyCache(postgres_database, tmp_path / "check.sqlite")
    assert len(cache) == N_KEYS
    cache.close()
    assert not any(tmp_path.glob("w*.sqlite"))  # nothing had to be spilled


# -- the server goes away -----------------------------------------------------------------


def test_reconnects_after_a_restart(own_server, tmp_path, caplog):
    cache = PostgresReplyCache(own_server.url(), tmp_path / "pending.sqlite")
    cache.put("before", "m", "t", _reply(1))
    own_server.stop()
    own_server.start()  # every connection the cache held is gone
    assert cache.get("before") == _reply(1)  # the reader reconnected

    async def write():
        await asyncio.gather(*(cache.aput(f"after-{i}", "m", "t", _reply(i)) for i in range(10)))

    asyncio.run(write())  # the writer reconnected
    assert len(cache) == 11
    cache.close()
    assert not (tmp_path / "pending.sqlite").exists()
    assert PASSWORD not in caplog.text


def test_restart_while_writing_loses_nothing(own_server, tmp_path):
    import threading

    cache = PostgresReplyCache(own_server.url(), tmp_path / "pending.sqlite", retry_s=60)
    own_server.stop()
    back = threading.Timer(1.0, own_server.start)  # down for a second, within retry_s
    back.start()

    async def write():
        await asyncio.gather(*(cache.aput(f"k{i}", "m", "t", _reply(i)) for i in range(20)))

    asyncio.run(write())  # returns once the rows are committed on the restarted server
    back.join()
    assert [cache.get(f"k{i}") for i in range(20)] == [_reply(i) for i in range(20)]
    cache.close()
    fresh = PostgresReplyCache(own_server.url(), None)
    assert len(fresh) == 20
    fresh.close()
    assert not (tmp_path / "pending.sqlite").exists()


def test_an_outage_spills_paid_replies_and_copies_them_back(own_server, tmp_path, caplog):
    spill = tmp_path / "pending.sqlite"
    cache = PostgresReplyCache(own_server.url(), spill, retry_s=0.5)
    cache.put("old", "m", "t", _reply(0))
    own_server.stop()
    caplog.set_level(logging.WARNING)

    async def write():
        await asyncio.gather(*(cache.aput(f"k{i}", "m", "t", _reply(i)) for i in range(1, 11)))

    asyncio.run(write())  # not lost: committed to the spill file
    cache.put("k11", "m", "t", _reply(11))
    assert cache.get("k3") == _reply(3)  # read back from the spill file
    assert cache.get("old") is None  # the server's rows: a miss while it is down
    assert cache.get("missing") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("lookups count as misses" in w for w in warnings) == 1  # once per outage
    assert sum("are kept in" in w for w in warnings) == 1
    cache.close()  # still down: the spill file stays for the next open
    assert spill.exists()
    own_server.start()
    again = PostgresReplyCache(own_server.url(), spill)  # copies the spill file over
    again.close()
    other = PostgresReplyCache(own_server.url(), tmp_path / "other.sqlite")  # another machine
    assert [other.get(f"k{i}") for i in range(1, 12)] == [_reply(i) for i in range(1, 12)]
    assert other.get("old") == _reply(0) and len(other) == 12
    other.close()
    assert PASSWORD not in caplog.text


def test_a_server_that_comes_back_gets_the_spilled_rows_on_the_next_write(own_server, tmp_path):
    spill = tmp_path / "pending.sqlite"
    cache = PostgresReplyCache(own_server.url(), spill, retry_s=0.2)
    own_server.stop()
    cache.put("a", "m", "t", _reply(1))
    own_server.start()
    import time

    time.sleep(2.1)  # past the re-check interval of a server known to be down
    cache.put("b", "m", "t", _reply(2))
    other = PostgresReplyCache(own_server.url(), None)
    assert other.get("a") == _reply(1) and other.get("b") == _reply(2)
    other.close()
    cache.close()


def _spilled(server: _Server, spill: Path, n: int) -> None:
    """``n`` replies of about 2 KB each written while ``server`` is down: all in ``spill``."""
    cache = PostgresReplyCache(server.url(), spill, retry_s=0.2)
    server.stop()
    for i in range(n):
        cache.put(f"k{i}", "m", "t", _long_reply(i))
    cache.close()  # still down: the spill file stays for the next open
    assert spill.exists()


def _long_reply(i: int) -> CachedReply:
    return CachedReply(f"答复 {i} " + f"— reply {i} " * 200, "stop", i, 2 * i)


@pytest.mark.parametrize("damage", ["truncated", "random_bytes", "rows_not_replies"])
def test_a_damaged_spill_file_keeps_its_good_replies_and_sets_itself_aside(
    own_server, tmp_path, caplog, damage
):
    """Issue 25: a spill file (replies written while Postgres was down) that is damaged
    made every later open of the cache a traceback (``file is not a database``, ``database
    disk image is malformed``, or Postgres refusing a row that is not a reply), and no run
    could start. Now the replies that read back whole are copied to the server, the file
    is set aside with one warning naming it and what was left out, and the cache opens."""
    spill = tmp_path / "pending.sqlite"
    _spilled(own_server, spill, 300)
    if damage == "truncated":  # a copy cut short: the last pages are gone
        data = spill.read_bytes()
        spill.write_bytes(data[: len(data) * 6 // 10])
    elif damage == "random_bytes":
        spill.write_bytes(os.urandom(64 * 1024))
    else:  # SQLite keeps any value in any column: rows Postgres refuses
        import sqlite3

        db = sqlite3.connect(spill)
        db.execute("INSERT INTO replies VALUES (NULL, 'm', 't', 'x', 'stop', 1, 2, 0)")
        row = ("nul", "m", "t", "a\x00b", "stop", 1, 2, 0)  # Postgres refuses NUL in text
        db.execute("INSERT INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row)
        db.execute("INSERT INTO replies VALUES ('tok', 'm', 't', 'x', 'stop', 'abc', 2, 0)")
        db.commit()
        db.close()
    own_server.start()
    caplog.set_level(logging.WARNING)
    cache = PostgresReplyCache(own_server.url(), spill)  # no traceback: it opens
    cache.put("after", "m", "t", _reply(1))  # and works
    cache.close()
    warnings = [r.getMessage() for r in caplog.records if "spill file damaged" in r.getMessage()]
    assert len(warnings) == 1, caplog.text
    moved = [
        p
        for p in tmp_path.iterdir()
        if p.name.startswith("pending.sqlite.damaged-") and not p.name.endswith(("-wal", "-shm"))
    ]
    assert len(moved) == 1 and f"set aside as {moved[0].name}" in warnings[0]
    assert str(spill) in warnings[0] and "asked again" in warnings[0]
    assert not spill.exists()  # copied, nothing left pending
    other = PostgresReplyCache(own_server.url(), None)
    kept = {i for i in range(300) if other.get(f"k{i}") is not None}
    # whatever came back is exactly the reply written; nothing else was invented
    assert all(other.get(f"k{i}") == _long_reply(i) for i in kept)
    assert other.get("after") == _reply(1)
    if damage == "truncated":
        assert "truncated" in warnings[0] and 50 <= len(kept) < 300
        assert f"{len(kept)} replies read from it were kept" in warnings[0]
    elif damage == "random_bytes":
        assert "not an SQLite database" in warnings[0] and not kept
    else:
        assert kept == set(range(300)) and len(other) == 301  # the good rows all kept
        assert "3 rows that are not replies (rowid 301, 302, 303)" in warnings[0]
    other.close()
    assert PASSWORD not in caplog.text


# -- the password ---------------------------------------------------------------------------


def test_a_refused_password_never_shows(own_server, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-pass-99"
    with pytest.raises(ConfigError) as err:
        PostgresReplyCache(own_server.url(wrong), tmp_path / "p.sqlite")
    text = str(err.value)
    assert "password authentication failed" in text and f"127.0.0.1:{own_server.port}" in text
    assert wrong not in text and wrong not in caplog.text and "***" in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_the_password_stays_out_of_repr_pickles_settings_and_hashes(own_server, tmp_path):
    from parallelner.version import run_signature, stage_config_hash
    from parallelner_cli.config import effective_settings

    cache = PostgresReplyCache(own_server.url(), tmp_path / "p.sqlite")
    assert PASSWORD not in repr(cache)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(cache)
    cache.close()
    plain = Settings(home=tmp_path)
    shared = Settings(home=tmp_path, llm_cache_url=own_server.url())
    assert isinstance(cache_location(plain), Path)
    assert PASSWORD not in repr(cache_location(shared))
    shown = effective_settings(shared)["llm_cache_url"]
    assert shown == f"postgresql://postgres:***@127.0.0.1:{own_server.port}/postgres"
    assert shared.masked()["llm_cache_url"] == "***"
    assert effective_settings(plain)["llm_cache_url"].endswith("llm-cache.sqlite")
    # where replies are cached changes no row: same signature, same config hash
    assert run_signature(plain, "zh") == run_signature(shared, "zh")
    assert stage_config_hash(plain, "zh") == stage_config_hash(shared, "zh")


@pytest.mark.parametrize("value", ["mysql://u:pw-in-it@h/db", "pw-in-it"])
def test_a_url_that_is_not_postgres_is_refused_without_echo(value):
    with pytest.raises(ConfigError) as err:
        load_settings(llm_cache_url=value)
    assert "llm_cache_url" in str(err.value) and "pw-in-it" not in str(err.value)


def test_the_setting_comes_from_yaml_env_and_empty_means_sqlite(tmp_path, monkeypatch):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("llm_cache_url: postgresql+psycopg2://u:p@db:5432/x\n")
    assert load_settings(cfg).llm_cache_url.get_secret_value().endswith("@db:5432/x")
    monkeypatch.setenv("PARALLELNER_LLM_CACHE_URL", "")
    assert load_settings(cfg).llm_cache_url is None  # env beats YAML; empty = SQLite
    monkeypatch.setenv("PARALLELNER_LLM_CACHE_URL", "postgresql://v@other/y")
    assert load_settings(cfg).llm_cache_url.get_secret_value() == "postgresql://v@other/y"


def test_config_show_masks_the_cache_password(own_server, tmp_path):
    res = _cli("config", "show", cwd=tmp_path, env={"PARALLELNER_LLM_CACHE_URL": own_server.url()})
    assert res.returncode == 0, res.stderr
    assert PASSWORD not in res.stdout + res.stderr
    line = next(x for x in res.stdout.splitlines() if x.startswith("llm_cache_url:"))
    assert "postgres:***@127.0.0.1" in line and "env PARALLELNER_LLM_CACHE_URL" in line


# -- the CLI: two homes (two machines) share the replies ------------------------------------


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "from parallelner_cli import main; main()", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_cli_second_run_on_another_home_makes_no_request(own_server, llm_server, tmp_path):
    sample = REPO / "examples" / "cluener-zh-sample.jsonl"
    env = {"PARALLELNER_LLM_CACHE_URL": own_server.url().replace("://", "+psycopg2://")}

    def translate(home: str):
        args = ["translate", str(sample), "-o", str(tmp_path / f"{home}.jsonl"), "--to", "en",
                "--llm-base-url", llm_server.base_url, "--home", str(tmp_path / home), "--json"]  # fmt: skip
        res = _cli(*args, cwd=tmp_path, env=env)
        assert res.returncode == 0, res.stderr[-2000:]
        assert PASSWORD not in res.stdout + res.stderr
        return json.loads(res.stdout)

    llm_server.reset_log()
    first = translate("machine-a")
    assert first["translated"] == 20 and first["usage"]["requests"] > 0
    n = len(llm_server.requests)
    second = translate("machine-b")  # another home: no SQLite file to find, the server has it
    assert second["translated"] == 20 and second["usage"]["requests"] == 0
    assert second["usage"]["cache_hits"] == first["usage"]["requests"]
    assert len(llm_server.requests) == n
    assert not (tmp_path / "machine-a" / "llm-cache.sqlite").exists()

    def rows(name: str) -> list[tuple]:
        lines = (tmp_path / name).read_text(encoding="utf-8").splitlines()
        return sorted((r["id"], r["status"], r["target"]["text"]) for r in map(json.loads, lines))

    assert rows("machine-a.jsonl") == rows("machine-b.jsonl")  # the same replies


def test_sqlite_default_is_unchanged(tmp_path):
    where = cache_location(Settings(home=tmp_path))
    assert where == tmp_path / "llm-cache.sqlite"
    cache = open_reply_cache(where)
    assert isinstance(cache, ReplyCache)
    cache.close()
