"""The reply cache on a Postgres server, shared by every machine of a run.

Same key, columns and interface as ``ReplyCache`` (SQLite). Writers on several machines
insert with ``ON CONFLICT (key) DO NOTHING``: a reply is decided by its key, so the first
copy stored is as good as any, and two writers of one key never fail.

When the server goes away (restart, network): every query reconnects once. Reads that
still fail are a cache miss (one warning per outage): that costs a request, never a wrong
reply. Writes are retried with back-off for ``retry_s``; a batch that still cannot be
written goes to a local SQLite spill file (``spill_path``), so a reply already paid for is
never lost, and is copied to Postgres as soon as a write succeeds again (or when a cache
is next opened with that spill file). Only an unreachable server at start is an error
(``ConfigError``): nothing has been paid for yet.

The URL may hold a password: it never appears in messages, logs or ``repr``. The object
holds connections and a thread, so it is never pickled: build it where it is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg2
import psycopg2.extras

from parallelner.errors import ConfigError
from parallelner.llm.cache_rows import _INSERT as _SQLITE_INSERT
from parallelner.llm.cache_rows import _SCHEMA as _SQLITE_SCHEMA
from parallelner.llm.cache_rows import CachedReply, GroupCommitCache, _truncated

__all__ = ["PostgresReplyCache", "redact_cache_url"]

log = logging.getLogger(__name__)

TABLE = "llm_replies"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
)
"""
_INSERT = f"INSERT INTO {TABLE} VALUES %s ON CONFLICT (key) DO NOTHING"
_SELECT = (
    f"SELECT content, finish_reason, prompt_tokens, completion_tokens FROM {TABLE} WHERE key = %s"
)
# CREATE TABLE IF NOT EXISTS is not atomic in Postgres: two sessions creating the table at
# once can both pass the check and one fails on pg_type's unique index. An advisory lock
# held for the transaction makes the creators take turns.
_CREATE_LOCK = 0x5041524E  # any constant shared by every ParallelNER process
_DOWN = (psycopg2.OperationalError, psycopg2.InterfaceError)  # connection lost or refused
_RECHECK_S = 2.0  # while the server is down, writes try it again at most this often
_READ_RECHECK_S = 10.0  # ... and lookups (on the event loop: a connect attempt blocks it)


def redact_cache_url(url: str) -> str:
    """The cache URL with its password replaced by ``***``, safe to print."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return parts._replace(netloc=f"{parts.username or ''}:***@{host}").geturl()
    except ValueError:
        return "the reply cache URL (PARALLELNER_LLM_CACHE_URL)"


class PostgresReplyCache(GroupCommitCache):
    """Reply cache in a Postgres table, safe to share between threads, processes, machines.

    ``get`` uses its own connection; writes go through one writer thread that commits
    whatever has queued up in one transaction (group commit), so ``aput`` never blocks the
    event loop and returns once its row is committed (in Postgres, or in the spill file
    while Postgres is down).
    """

    def __init__(
        self,
        url: str,
        spill_path: Path | None = None,
        *,
        retry_s: float = 30.0,
        connect_timeout_s: float = 5.0,
    ):
        self._dsn = _libpq_url(url)
        self._password = _password(url)
        self.location = redact_cache_url(self._dsn)
        self.spill_path = Path(spill_path) if spill_path is not None else None
        self.retry_s = retry_s
        self._connect_timeout = max(1, round(connect_timeout_s))
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._spill_lock = threading.Lock()
        self._spill: sqlite3.Connection | None = None
        self._read_down_until = 0.0  # monotonic time before which reads skip the server
        self._write_down = False  # the last write went to the spill file
        self._last_write_try = 0.0
        self._warned_read = self._warned_write = False
        try:
            self._db: psycopg2.extensions.connection | None = self._connect()
            self._reader: psycopg2.extensions.connection | None = self._connect()
        except _DOWN as exc:
            raise ConfigError(
                f"reply cache {self.location}: cannot connect ({self._scrub(exc)})"
            ) from None
        if self.spill_path is not None and self.spill_path.exists():
            with self._write_lock:
                self._recover_spill()
        # lookups from the event loop run here: a round trip to the server never blocks it
        self._lookups = ThreadPoolExecutor(1, thread_name_prefix="reply-cache-lookup")
        self._start_writer()

    def __repr__(self) -> str:
        return f"PostgresReplyCache({self.location!r})"

    def __reduce__(self):
        raise TypeError(
            "a PostgresReplyCache holds connections and is never pickled: open one in the "
            "process that uses it (parallelner.llm.cache.open_reply_cache)"
        )

    # -- connections ---------------------------------------------------------------------

    def _scrub(self, exc: BaseException) -> str:
        """The server's message, first line, without the password (should it echo it)."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        for secret in self._password:
            text = text.replace(secret, "***")
        return text

    def _connect(self) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(
            self._dsn,
            connect_timeout=self._connect_timeout,
            application_name="parallelner-reply-cache",
            keepalives=1,
            keepalives_idle=30,
            keepalives_interval=10,
            keepalives_count=3,
        )
        try:
            with conn, conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                cur.execute(_SCHEMA)
            conn.autocommit = True
        except BaseException:
            conn.close()
            raise
        return conn

    @staticmethod
    def _drop(conn: psycopg2.extensions.connection | None) -> None:
        if conn is not None:
            with contextlib.suppress(Exception):  # already broken
                conn.close()

    # -- reads ---------------------------------------------------------------------------

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for ``key``, or None (also while the server is unreachable)."""
        with self._read_lock:
            row = self._read_server(key)
        if row is None and self._spill is not None:
            row = self._spill_get(key)
        return CachedReply(*row) if row else None

    async def aget(self, key: str) -> CachedReply | None:
        """``get`` on the lookup thread: the event loop goes on while the server answers."""
        return await asyncio.get_running_loop().run_in_executor(self._lookups, self.get, key)

    def _read_server(self, key: str) -> tuple | None:
        if time.monotonic() < self._read_down_until:
            return None
        for attempt in range(2):  # a dropped connection: reconnect once
            try:
                if self._reader is None:
                    self._reader = self._connect()
                with self._reader.cursor() as cur:
                    cur.execute(_SELECT, (key,))
                    row = cur.fetchone()
                if self._warned_read:
                    log.warning("reply cache %s: reachable again", self.location)
                    self._warned_read = False
                return row
            except _DOWN as exc:
                self._drop(self._reader)
                self._reader = None
                if attempt == 1:
                    self._read_down_until = time.monotonic() + _READ_RECHECK_S
                    if not self._warned_read:
                        self._warned_read = True
                        log.warning(
                            "reply cache %s unreachable (%s): lookups count as misses "
                            "until it is back",
                            self.location,
                            self._scrub(exc),
                        )
        return None

    def __len__(self) -> int:
        with self._read_lock:
            for attempt in range(2):
                try:
                    if self._reader is None:
                        self._reader = self._connect()
                    with self._reader.cursor() as cur:
                        cur.execute(f"SELECT COUNT(*) FROM {TABLE}")
                        return cur.fetchone()[0]
                except _DOWN as exc:
                    self._drop(self._reader)
                    self._reader = None
                    if attempt == 1:
                        raise ConfigError(
                            f"reply cache {self.location}: cannot connect ({self._scrub(exc)})"
                        ) from None
        raise AssertionError("unreachable")

    # -- writes --------------------------------------------------------------------------

    def _insert(self, rows: list[tuple]) -> None:
        if self._db is None:
            self._db = self._connect()
        self._db.autocommit = False
        try:
            # in key order: two writers' batches lock their keys in the same order, so
            # overlapping batches wait for each other instead of deadlocking
            rows = sorted(rows, key=lambda r: r[0])
            with self._db, self._db.cursor() as cur:  # commits, or rolls back on error
                psycopg2.extras.execute_values(cur, _INSERT, rows, page_size=500)
        finally:
            if not self._db.closed:
                self._db.autocommit = True

    def _write(self, rows: list[tuple]) -> None:
        """Commit ``rows`` to the server, retrying for ``retry_s``; else to the spill file."""
        with self._write_lock:
            now = time.monotonic()
            if self._write_down and now - self._last_write_try < _RECHECK_S:
                self._to_spill(rows, None)
                return
            deadline = now + (0.0 if self._write_down else self.retry_s)
            delay = 0.05
            while True:
                self._last_write_try = time.monotonic()
                try:
                    self._insert(rows)
                except _DOWN as exc:
                    self._drop(self._db)
                    self._db = None
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._to_spill(rows, exc)
                        return
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 2.0)
                    continue
                if self._write_down:
                    self._write_down = False
                    log.warning("reply cache %s: reachable again", self.location)
                if self._spill is not None:
                    self._drain_spill()
                return

    # -- the spill file (replies written while the server was down) -----------------------

    def _open_spill(self) -> None:
        with self._spill_lock:
            if self._spill is None:
                self.spill_path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(self.spill_path, check_same_thread=False, isolation_level=None)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA busy_timeout=30000")
                db.execute(_SQLITE_SCHEMA)
                self._spill = db

    def _recover_spill(self) -> None:
        """Copy the replies of a spill file left by an earlier process to the server.

        A damaged file (cut short, not SQLite, unreadable pages, or rows that are not
        replies: Postgres would refuse them and the copy would fail at every open) is not
        a traceback: the replies that read back whole are kept (copied to the server, or
        to a fresh spill file while it is down), the file is renamed
        ``<name>.damaged-<UTC time>`` with one warning that names it, the rows left out
        (by rowid) and what is lost (those requests are asked again).
        """
        problem = _truncated(self.spill_path)
        good, bad, unread = _salvage(self.spill_path)
        if problem is None and not bad and unread is None:
            self._open_spill()
            self._drain_spill()
            return
        from parallelner.storage import set_aside

        faults = [problem] if problem else []
        if unread and not (problem and unread.startswith(problem)):
            faults.append(unread)
        if bad:
            shown = ", ".join(str(r) for r in bad[:10]) + (", ..." if len(bad) > 10 else "")
            faults.append(f"{len(bad)} rows that are not replies (rowid {shown})")
        kept = f"{len(good)} replies read from it were kept"
        moved = set_aside(
            self.spill_path,
            "reply cache spill file damaged: " + "; ".join(faults),
            f"{kept}; requests whose replies were not are asked again",
        )
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.spill_path}{suffix}")
            if side.exists():
                side.replace(Path(f"{moved}{suffix}"))
        if good:
            try:
                self._insert(good)
            except _DOWN as exc:
                self._drop(self._db)
                self._db = None
                self._to_spill(good, exc)

    def _to_spill(self, rows: list[tuple], exc: BaseException | None) -> None:
        if self.spill_path is None:
            raise ConfigError(
                f"reply cache {self.location} unreachable for {self.retry_s:.0f} s"
                + (f" ({self._scrub(exc)})" if exc is not None else "")
            ) from None
        self._open_spill()
        with self._spill_lock:
            self._spill.execute("BEGIN")
            self._spill.executemany(_SQLITE_INSERT, rows)
            self._spill.execute("COMMIT")
        if not self._write_down:
            self._write_down = True
            log.warning(
                "reply cache %s unreachable%s: replies are kept in %s and copied to the "
                "server when it is back",
                self.location,
                f" for {self.retry_s:.0f} s ({self._scrub(exc)})" if exc is not None else "",
                self.spill_path,
            )

    def _spill_get(self, key: str) -> tuple | None:
        with self._spill_lock:
            return self._spill.execute(
                "SELECT content, finish_reason, prompt_tokens, completion_tokens "
                "FROM replies WHERE key = ?",
                (key,),
            ).fetchone()

    def _drain_spill(self, chunk: int = 1000) -> int:
        """Copy spilled replies to the server and delete them locally; the number left."""
        while True:
            with self._spill_lock:
                rows = self._spill.execute(f"SELECT * FROM replies LIMIT {chunk}").fetchall()
            if not rows:
                return 0
            try:
                self._insert(rows)
            except _DOWN:
                self._drop(self._db)
                self._db = None
                with self._spill_lock:
                    return self._spill.execute("SELECT COUNT(*) FROM replies").fetchone()[0]
            with self._spill_lock:
                self._spill.execute("BEGIN")
                self._spill.executemany("DELETE FROM replies WHERE key = ?", [r[:1] for r in rows])
                self._spill.execute("COMMIT")

    def close(self) -> None:
        """Flush pending writes (spilled ones too, if the server is back) and disconnect."""
        if not self._stop_writer():
            return
        self._lookups.shutdown(wait=True)
        with self._write_lock, self._read_lock:
            if self._spill is not None:
                left = self._drain_spill()
                if left:
                    log.warning(
                        "reply cache %s still unreachable: %d replies stay in %s and are "
                        "copied the next time a cache opens with it",
                        self.location,
                        left,
                        self.spill_path,
                    )
                self._spill.close()
                self._spill = None
            self._drop(self._db)
            self._drop(self._reader)
            self._db = self._reader = None


def _is_reply_row(row: tuple) -> bool:
    """Whether ``row`` (a spill file's ``replies`` row) is a reply Postgres will take.

    SQLite keeps any value in any column (a NULL key, text in a token count); Postgres
    refuses those and any text holding a NUL character.
    """
    if len(row) != 8:
        return False
    key, model, prompt_version, content, finish, p_tokens, c_tokens, created = row
    texts = (key, model, prompt_version, content) + ((finish,) if finish is not None else ())
    return (
        all(isinstance(t, str) and "\x00" not in t for t in texts)
        and bool(key)
        and all(type(n) is int and 0 <= n < 2**31 for n in (p_tokens, c_tokens))
        and type(created) in (int, float)
    )


def _salvage(path: Path) -> tuple[list[tuple], list[int], str | None]:
    """The reply rows of the SQLite file at ``path`` that read back whole.

    Returns ``(rows, rowids of rows that are not replies, why some could not be read)``;
    the last is None when every page was read. The file is read in a copy (it is never
    written): a copy cut short is padded with zeros to the size its header gives, since
    SQLite refuses a file shorter than that outright; the pages that are gone then read
    as damaged ones, and past an unreadable page the rows after it are looked for by rowid
    (a few jumps), so a bad page loses only its own rows.
    """
    import shutil
    import tempfile

    rows: list[tuple] = []
    bad: list[int] = []
    with tempfile.TemporaryDirectory(prefix="parallelner-spill-") as tmp:
        copy = Path(tmp) / "spill.sqlite"
        try:
            shutil.copyfile(path, copy)
            wal = Path(f"{path}-wal")
            if wal.exists():
                shutil.copyfile(wal, f"{copy}-wal")
            head = copy.read_bytes()[:100]
            if len(head) == 100 and head[:16] == b"SQLite format 3\x00":
                page = int.from_bytes(head[16:18], "big")
                size = (65536 if page == 1 else page) * int.from_bytes(head[28:32], "big")
                if size > copy.stat().st_size:
                    with copy.open("r+b") as fh:
                        fh.truncate(size)
            db = sqlite3.connect(copy)
        except (OSError, sqlite3.Error) as exc:
            return rows, bad, f"not readable ({exc})"
        unread: str | None = None
        try:
            try:
                check = db.execute("PRAGMA quick_check").fetchone()
                if check and check[0] != "ok":
                    lines = [ln for ln in check[0].splitlines() if not ln.startswith("***")]
                    unread = f"damaged ({(lines or ['quick_check failed'])[0]})"
            except sqlite3.DatabaseError as exc:
                if "not a database" in str(exc):  # SQLITE_NOTADB: nothing in it to read
                    return rows, bad, f"not an SQLite database ({exc})"
                unread = f"damaged ({exc})"  # a damaged page: read what the others hold
            last, jumps, step = 0, 0, 1
            while True:
                try:
                    cur = db.execute(
                        "SELECT rowid, * FROM replies WHERE rowid >= ? ORDER BY rowid", (last,)
                    )
                    for rowid, *row in cur:
                        last = rowid + 1
                        step = 1
                        if _is_reply_row(tuple(row)):
                            rows.append(tuple(row))
                        else:
                            bad.append(rowid)
                    break
                except sqlite3.DatabaseError as exc:
                    unread = unread or f"unreadable ({exc})"
                    jumps += 1
                    if jumps > 24:  # the rest is gone: what was read is kept
                        break
                    last += step
                    step *= 2
        finally:
            db.close()
    return rows, bad, unread


def _libpq_url(url: str) -> str:
    """``postgresql+psycopg2://`` (SQLAlchemy's spelling) as libpq's ``postgresql://``."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ConfigError("reply cache URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB")
    return "postgresql://" + rest


def _password(url: str) -> tuple[str, ...]:
    """The password as written in the URL and decoded (both must be kept out of text)."""
    try:
        pw = urlsplit(url).password
    except ValueError:
        return ()
    return tuple({pw, unquote(pw)} - {""}) if pw else ()
