"""The after_* object hook notifications waiting for their plugins, and their delivery state.

A row is added in the transaction that changes the object, so a stored change always leaves its
notifications behind. Servers claim a row with a lease; a delivered row is deleted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from solstice.store.models import ObjectDeliveryRow, PluginRow


def add(session: AsyncSession, values: Mapping[str, Any]) -> None:
    """Queue one notification in the session's transaction."""
    session.add(ObjectDeliveryRow(**values))


async def ready(
    session: AsyncSession, now: datetime, slugs: Sequence[str], limit: int
) -> list[tuple[ObjectDeliveryRow, str]]:
    """Notifications for the plugins `slugs` due now and unclaimed, each the oldest of its plugin
    and object, with the plugin's slug."""
    earlier = aliased(ObjectDeliveryRow)
    older_exists = exists().where(
        earlier.plugin_id == ObjectDeliveryRow.plugin_id,
        earlier.object_type == ObjectDeliveryRow.object_type,
        earlier.object_id == ObjectDeliveryRow.object_id,
        earlier.id < ObjectDeliveryRow.id,
    )
    query = (
        select(ObjectDeliveryRow, PluginRow.slug)
        .join(PluginRow, PluginRow.id == ObjectDeliveryRow.plugin_id)
        .where(
            PluginRow.is_active.is_(True),
            PluginRow.slug.in_(list(slugs)),
            ObjectDeliveryRow.next_attempt_at <= now,
            or_(ObjectDeliveryRow.claimed_until.is_(None), ObjectDeliveryRow.claimed_until < now),
            ~older_exists,
        )
        .order_by(ObjectDeliveryRow.id)
        .limit(limit)
    )
    return [(row, slug) for row, slug in await session.execute(query)]


async def claim(session: AsyncSession, row_id: int, server: str, now: datetime, until: datetime) -> bool:
    """Take a notification until `until`; False when another server holds it."""
    result = await session.execute(
        update(ObjectDeliveryRow)
        .where(
            ObjectDeliveryRow.id == row_id,
            ObjectDeliveryRow.next_attempt_at <= now,
            or_(ObjectDeliveryRow.claimed_until.is_(None), ObjectDeliveryRow.claimed_until < now),
        )
        .values(claimed_by=server, claimed_until=until)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount == 1


async def forget(session: AsyncSession, row_id: int) -> None:
    """Forget a notification: its plugin took it, or may no longer have it."""
    await session.execute(delete(ObjectDeliveryRow).where(ObjectDeliveryRow.id == row_id))


async def failed(session: AsyncSession, row_id: int, error: str, retry_at: datetime) -> None:
    """Count a failed attempt and release the notification until `retry_at`."""
    await session.execute(
        update(ObjectDeliveryRow)
        .where(ObjectDeliveryRow.id == row_id)
        .values(
            attempts=ObjectDeliveryRow.attempts + 1,
            last_error=error,
            next_attempt_at=retry_at,
            claimed_by="",
            claimed_until=None,
        )
    )


async def drop_older_than(session: AsyncSession, created_before: datetime) -> int:
    """Forget notifications that waited since before `created_before`; how many."""
    result = await session.execute(
        delete(ObjectDeliveryRow).where(ObjectDeliveryRow.created_at < created_before)
    )
    assert isinstance(result, CursorResult)
    return result.rowcount


async def backlog(session: AsyncSession) -> int:
    """How many notifications wait."""
    return (await session.execute(select(func.count(ObjectDeliveryRow.id)))).scalar_one()
