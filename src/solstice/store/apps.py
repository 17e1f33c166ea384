"""Reading and writing apps and their API keys (only key hashes are stored)."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.appkeys import APP_KEY_PREFIX, hash_key
from solstice.store.models import AppKeyRow, AppRow, utcnow
from solstice.store.plugins import MAX_ID


async def get_app(session: AsyncSession, ref: str) -> AppRow | None:
    """An app by numeric id."""
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
        return await session.get(AppRow, int(ref))
    return None


async def all_apps(session: AsyncSession) -> list[AppRow]:
    """Every app, ordered by id."""
    return list((await session.execute(select(AppRow).order_by(AppRow.id))).scalars())


async def keys_of(session: AsyncSession, app_id: int) -> list[AppKeyRow]:
    """An app's keys, revoked ones included."""
    query = select(AppKeyRow).where(AppKeyRow.app_id == app_id).order_by(AppKeyRow.id)
    return list((await session.execute(query)).scalars())


async def live_keys(session: AsyncSession) -> list[AppKeyRow]:
    """Every key that is not revoked."""
    return list((await session.execute(select(AppKeyRow).where(AppKeyRow.revoked_at.is_(None)))).scalars())


async def create_key(session: AsyncSession, app_id: int, name: str) -> tuple[AppKeyRow, str]:
    """Store a new key for an app; returns the row and the secret (shown once)."""
    secret = APP_KEY_PREFIX + secrets.token_urlsafe(32)
    row = AppKeyRow(app_id=app_id, name=name, prefix=secret[:12], key_hash=hash_key(secret))
    session.add(row)
    await session.flush()
    return row, secret


async def revoke_key(session: AsyncSession, app_id: int, key_id: int) -> AppKeyRow | None:
    """Revoke one key of an app; None when the app has no such key."""
    row = await session.get(AppKeyRow, key_id)
    if row is None or row.app_id != app_id:
        return None
    if row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def forget_agent(session: AsyncSession, slug: str) -> None:
    """Take a deleted plugin's slug out of every app's agents."""
    for app in await all_apps(session):
        if slug in (app.agents or []):
            app.agents = [agent for agent in app.agents if agent != slug]
