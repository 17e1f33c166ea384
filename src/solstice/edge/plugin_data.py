"""Plugins' key-value data on an edge: a SQLite file in the data directory, through the standard library.

An edge keeps its own: what a plugin stores here is not shared with the control plane or other
edges, works while the control plane is away and survives restarts. Entries are keyed by slug.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from solstice.services import KvEntry, KvFull

FILE_NAME = "plugin-data.sqlite3"
_T = TypeVar("_T")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS plugin_kv (
    plugin TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    size INTEGER NOT NULL,
    expires_at_ms INTEGER,
    PRIMARY KEY (plugin, key)
)
"""
_LIVE = "(expires_at_ms IS NULL OR expires_at_ms > ?)"


class FileKv:
    """The KvStore of an edge; one connection, used from worker threads one call at a time."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / FILE_NAME
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()

    async def _run(self, work: Callable[[sqlite3.Connection], _T]) -> _T:
        def locked() -> _T:
            with self._lock:
                return work(self._db)

        return await asyncio.to_thread(locked)

    async def get(self, slug: str, key: str, now_ms: int) -> KvEntry | None:
        """The live entry under `key`, if any."""

        def read(db: sqlite3.Connection) -> KvEntry | None:
            row = db.execute(
                f"SELECT value, expires_at_ms FROM plugin_kv WHERE plugin = ? AND key = ? AND {_LIVE}",
                (slug, key, now_ms),
            ).fetchone()
            return KvEntry(key, row[0], row[1] or 0) if row else None

        return await self._run(read)

    async def put(self, slug: str, entry: KvEntry, now_ms: int, max_bytes: int) -> bool:
        """Store `entry`; whether the key held a live value. KvFull past `max_bytes`."""

        def write(db: sqlite3.Connection) -> bool:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("DELETE FROM plugin_kv WHERE plugin = ? AND expires_at_ms <= ?", (slug, now_ms))
                used = db.execute(
                    "SELECT COALESCE(SUM(size), 0) FROM plugin_kv WHERE plugin = ?", (slug,)
                ).fetchone()[0]
                current = db.execute(
                    "SELECT size FROM plugin_kv WHERE plugin = ? AND key = ?", (slug, entry.key)
                ).fetchone()
                if used - (current[0] if current else 0) + entry.size > max_bytes:
                    raise KvFull(used, max_bytes)
                db.execute(
                    "INSERT INTO plugin_kv (plugin, key, value, size, expires_at_ms) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, size = excluded.size, "
                    "expires_at_ms = excluded.expires_at_ms",
                    (slug, entry.key, entry.value, entry.size, entry.expires_unix_ms or None),
                )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
            return current is not None

        return await self._run(write)

    async def delete(self, slug: str, key: str, now_ms: int) -> bool:
        """Remove `key`; whether it held a live value."""

        def remove(db: sqlite3.Connection) -> bool:
            removed = db.execute(
                f"DELETE FROM plugin_kv WHERE plugin = ? AND key = ? AND {_LIVE} RETURNING 1",
                (slug, key, now_ms),
            ).fetchall()
            db.execute("DELETE FROM plugin_kv WHERE plugin = ? AND key = ?", (slug, key))
            return bool(removed)

        return await self._run(remove)

    async def clear(self, slug: str) -> int:
        """Remove everything plugin `slug` stored; how many keys it held (expired ones included)."""
        return await self._run(
            lambda db: db.execute("DELETE FROM plugin_kv WHERE plugin = ?", (slug,)).rowcount
        )

    async def list(self, slug: str, prefix: str, after: str, limit: int, now_ms: int) -> Sequence[KvEntry]:
        """Up to `limit` live entries whose keys start with `prefix` and sort after `after`."""

        def read(db: sqlite3.Connection) -> list[KvEntry]:
            rows = db.execute(
                f"SELECT key, value, expires_at_ms FROM plugin_kv WHERE plugin = ? AND {_LIVE} "
                "AND key >= ? AND substr(key, 1, ?) = ? AND key > ? ORDER BY key LIMIT ?",
                (slug, now_ms, prefix, len(prefix), prefix, after, limit),
            ).fetchall()
            return [KvEntry(key, value, expires or 0) for key, value, expires in rows]

        return await self._run(read)
