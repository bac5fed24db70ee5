"""Persistent LLM reply cache: one SQLite file under ``settings.home`` (one machine), or a
Postgres table shared by several (``llm_cache_url``, see ``cache_pg``).

The key is the sha256 of everything that decides a reply — model, messages (or prompt),
sampling parameters, response schema and prompt version — and nothing that does not
(concurrency, batch size, shard, API key). Each reply is committed as it arrives (WAL
journal), so a process killed with SIGKILL loses only the requests that were in flight.
Only complete HTTP replies are stored; transport failures are never cached.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from parallelner.errors import NoSpaceError, is_no_space
from parallelner.llm.cache_rows import (
    _INSERT,
    _SCHEMA,
    CachedReply,
    GroupCommitCache,
    _truncated,
    cache_key,
)

if TYPE_CHECKING:
    from parallelner.llm.cache_pg import PostgresReplyCache
    from parallelner.settings import Settings

__all__ = ["CachedReply", "ReplyCache", "cache_key", "cache_location", "open_reply_cache"]


class ReplyCache(GroupCommitCache):
    """SQLite-backed reply cache, safe to share between threads of one process.

    Reads use their own connection; writes go through the writer thread (group commit),
    so an event loop calling ``aput`` never blocks on the disk (a WAL checkpoint can take
    100+ ms on a busy machine).
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()
        try:
            try:
                self._open()
            except sqlite3.DatabaseError as exc:  # OperationalError (full, locked): not damage
                if isinstance(exc, sqlite3.OperationalError) or not self.path.exists():
                    raise
                self._set_aside(f"reply cache damaged ({exc})")
                self._open()
        except (sqlite3.OperationalError, OSError) as exc:
            if is_no_space(exc):
                raise NoSpaceError(self.path) from None
            raise
        self._start_writer()

    def _open(self) -> None:
        problem = _truncated(self.path)
        if problem is not None:
            raise sqlite3.DatabaseError(problem)
        self._db = self._connect()
        try:
            self._db.execute(_SCHEMA)
            self._db.execute("SELECT key FROM replies ORDER BY rowid DESC LIMIT 1").fetchall()
            self._reader = self._connect()
        except BaseException:
            self._db.close()
            raise

    def _set_aside(self, problem: str) -> None:
        """Move the damaged database (and its WAL files) aside; the cache starts empty."""
        from parallelner.storage import set_aside

        moved = set_aside(
            self.path, problem, "the reply cache starts empty (replies are asked again)"
        )
        for suffix in ("-wal", "-shm"):
            side = Path(f"{self.path}{suffix}")
            if side.exists():
                side.replace(Path(f"{moved}{suffix}"))

    def _connect(self) -> sqlite3.Connection:
        # the busy timeout first: worker processes opening a new cache at once wait for
        # each other's switch to WAL instead of failing with "database is locked"
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        db.execute("PRAGMA busy_timeout=30000")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for ``key``, or None."""
        with self._read_lock:
            row = self._reader.execute(
                "SELECT content, finish_reason, prompt_tokens, completion_tokens "
                "FROM replies WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedReply(*row) if row else None

    def _write(self, rows: list[tuple]) -> None:
        try:
            with self._write_lock:
                self._db.execute("BEGIN")
                try:
                    self._db.executemany(_INSERT, rows)
                    self._db.execute("COMMIT")
                except BaseException:
                    with contextlib.suppress(sqlite3.Error):  # SQLite may have rolled back
                        self._db.execute("ROLLBACK")
                    raise
        except (sqlite3.OperationalError, OSError) as exc:
            # every caller waiting on this batch gets it (``aput``): the shard stops, the
            # run ends in one line; nothing waits for a write that will never land
            if is_no_space(exc):
                raise NoSpaceError(self.path) from None
            raise

    def __len__(self) -> int:
        with self._read_lock:
            return self._reader.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        """Flush pending writes and close the database."""
        if not self._stop_writer():
            return
        with self._write_lock, self._read_lock:
            self._reader.close()
            self._db.close()


@dataclass(frozen=True)
class CacheServer:
    """Where a shared cache lives: a Postgres URL (a secret) and this machine's spill file."""

    url: str = field(repr=False)
    spill_path: Path


def cache_location(settings: Settings) -> Path | CacheServer:
    """The reply cache the settings name: the SQLite file in the home, or a Postgres server."""
    home = Path(settings.home)
    if settings.llm_cache_url is None:
        return home / "llm-cache.sqlite"
    return CacheServer(settings.llm_cache_url.get_secret_value(), home / "llm-cache-pending.sqlite")


def open_reply_cache(location: Path | CacheServer) -> ReplyCache | PostgresReplyCache:
    """Open the cache at ``location`` (from ``cache_location``, or a SQLite path)."""
    if isinstance(location, CacheServer):
        from parallelner.llm.cache_pg import PostgresReplyCache

        return PostgresReplyCache(location.url, location.spill_path)
    return ReplyCache(location)
