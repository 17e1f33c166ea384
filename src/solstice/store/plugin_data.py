"""Each plugin's own key-value data (the kv.* services), in the server's database.

Replicas on one PostgreSQL share it. A put takes a lock on the plugin's row there, so two
replicas writing for one plugin at once cannot both slip under its total.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from sqlalchemy import ColumnElement, CursorResult, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.services.backends import KvEntry, KvFull, PluginGone
from solstice.store.models import PluginKvRow, PluginRow


def _live(now_ms: int) -> ColumnElement[bool]:
    return or_(PluginKvRow.expires_at_ms.is_(None), PluginKvRow.expires_at_ms > now_ms)


def _entry(row: PluginKvRow) -> KvEntry:
    return KvEntry(row.key, row.value, row.expires_at_ms or 0)


async def _plugin_id(session: AsyncSession, slug: str, lock: bool = False) -> int:
    query = select(PluginRow.id).where(PluginRow.slug == slug)
    if lock:
        query = query.with_for_update()  # ignored by SQLite, which serializes writers anyway
    plugin_id = (await session.execute(query)).scalar_one_or_none()
    if plugin_id is None:
        raise PluginGone(slug)
    return plugin_id


class StoredKv:
    """The KvStore of the control plane."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        bind = sessions.kw.get("bind")
        # SQLite has one writer at a time: writers that queue here do not wait in its busy handler,
        # whose back-off (up to 100 ms a try) made concurrent puts slower than sequential ones.
        self._one_writer = asyncio.Lock() if bind is not None and bind.dialect.name == "sqlite" else None

    def _writing(self) -> contextlib.AbstractAsyncContextManager[object]:
        return self._one_writer if self._one_writer is not None else contextlib.nullcontext()

    async def get(self, slug: str, key: str, now_ms: int) -> KvEntry | None:
        """The live entry under `key`, if any."""
        async with self.sessions() as session:
            query = (
                select(PluginKvRow)
                .join(PluginRow, PluginRow.id == PluginKvRow.plugin_id)
                .where(PluginRow.slug == slug, PluginKvRow.key == key, _live(now_ms))
            )
            row = (await session.execute(query)).scalar_one_or_none()
            return _entry(row) if row is not None else None

    async def put(self, slug: str, entry: KvEntry, now_ms: int, max_bytes: int) -> bool:
        """Store `entry`; whether the key held a live value. KvFull past `max_bytes`."""
        async with self._writing(), self.sessions.begin() as session:
            plugin_id = await _plugin_id(session, slug, lock=True)
            # Expired entries count for nothing: clear them while the plugin is locked anyway.
            await session.execute(
                delete(PluginKvRow).where(
                    PluginKvRow.plugin_id == plugin_id, PluginKvRow.expires_at_ms <= now_ms
                )
            )
            used = (
                await session.execute(
                    select(func.coalesce(func.sum(PluginKvRow.size), 0)).where(
                        PluginKvRow.plugin_id == plugin_id
                    )
                )
            ).scalar_one()
            current = await session.get(PluginKvRow, (plugin_id, entry.key))
            if used - (current.size if current else 0) + entry.size > max_bytes:
                raise KvFull(used, max_bytes)
            expires = entry.expires_unix_ms or None
            if current is None:
                session.add(
                    PluginKvRow(
                        plugin_id=plugin_id,
                        key=entry.key,
                        value=entry.value,
                        size=entry.size,
                        expires_at_ms=expires,
                    )
                )
                return False
            current.value, current.size, current.expires_at_ms = entry.value, entry.size, expires
            return True

    async def delete(self, slug: str, key: str, now_ms: int) -> bool:
        """Remove `key`; whether it held a live value."""
        async with self._writing(), self.sessions.begin() as session:
            plugin_id = await _plugin_id(session, slug)
            removed = await session.execute(
                delete(PluginKvRow)
                .where(PluginKvRow.plugin_id == plugin_id, PluginKvRow.key == key)
                .returning(PluginKvRow.expires_at_ms)
            )
            return any(expires is None or expires > now_ms for expires in removed.scalars())

    async def list(self, slug: str, prefix: str, after: str, limit: int, now_ms: int) -> Sequence[KvEntry]:
        """Up to `limit` live entries whose keys start with `prefix` and sort after `after`."""
        async with self.sessions() as session:
            query = (
                select(PluginKvRow)
                .join(PluginRow, PluginRow.id == PluginKvRow.plugin_id)
                .where(PluginRow.slug == slug, _live(now_ms))
                .order_by(PluginKvRow.key)
                .limit(limit)
            )
            if prefix:
                # Not LIKE, which SQLite compares without case: a range start, then the exact prefix.
                query = query.where(
                    PluginKvRow.key >= prefix, func.substr(PluginKvRow.key, 1, len(prefix)) == prefix
                )
            if after:
                query = query.where(PluginKvRow.key > after)
            return [_entry(row) for row in (await session.execute(query)).scalars()]


async def clear(session: AsyncSession, plugin_id: int) -> int:
    """Remove all of a plugin's data; how many keys it held."""
    result = await session.execute(delete(PluginKvRow).where(PluginKvRow.plugin_id == plugin_id))
    assert isinstance(result, CursorResult)  # a DELETE answers with one, which counts its rows
    return int(result.rowcount or 0)
