"""Persistent LLM reply cache: one SQLite file under ``settings.home``.

The key is the sha256 of everything that decides a reply — model, messages (or prompt),
sampling parameters, response schema and prompt version — and nothing that does not
(concurrency, batch size, shard, API key). Each reply is committed as it arrives (WAL
journal), so a process killed with SIGKILL loses only the requests that were in flight.
Only complete HTTP replies are stored; transport failures are never cached.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CachedReply", "ReplyCache", "cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS replies (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    prompt_version TEXT NOT NULL,
    content TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL DEFAULT 0,
    completion_tokens INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
)
"""


def cache_key(request: dict[str, Any], prompt_version: str) -> str:
    """sha256 over the request body that decides the reply, plus the prompt version.

    ``request`` is the JSON body sent to the server (model, messages or prompt, sampling
    parameters, response_format, stop...). Keys are sorted so dict order never matters.
    """
    blob = json.dumps(
        {"request": request, "prompt_version": prompt_version},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedReply:
    """A stored reply: the text the model produced and why it stopped."""

    content: str
    finish_reason: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class ReplyCache:
    """SQLite-backed reply cache, safe to share between threads of one process."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=30000")
        self._db.execute(_SCHEMA)

    def get(self, key: str) -> CachedReply | None:
        """The stored reply for ``key``, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT content, finish_reason, prompt_tokens, completion_tokens "
                "FROM replies WHERE key = ?",
                (key,),
            ).fetchone()
        return CachedReply(*row) if row else None

    def put(self, key: str, model: str, prompt_version: str, reply: CachedReply) -> None:
        """Store one reply now (committed immediately)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO replies VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    prompt_version,
                    reply.content,
                    reply.finish_reason,
                    reply.prompt_tokens,
                    reply.completion_tokens,
                    time.time(),
                ),
            )

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM replies").fetchone()[0]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
