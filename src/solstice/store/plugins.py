"""Reading and writing plugin rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.hooks import hook_types_of
from solstice.store.models import PluginRow

# Largest id an INTEGER column holds on every database we support; larger numbers are slugs.
MAX_ID = 2**31 - 1


class DuplicateSlugError(ValueError):
    """Another plugin already uses this slug."""


@dataclass(frozen=True)
class PluginFilter:
    """Filters of the plugin list."""

    hook_type: str | None = None
    is_active: bool | None = None
    namespace: str | None = None
    plugin_type: str | None = None


async def get_plugin(session: AsyncSession, ref: str | int) -> PluginRow | None:
    """A plugin by numeric id or by slug."""
    text = str(ref)
    if text.isascii() and text.isdigit() and int(text) <= MAX_ID:
        row = await session.get(PluginRow, int(text))
        if row is not None:
            return row
    return (await session.execute(select(PluginRow).where(PluginRow.slug == str(ref)))).scalar_one_or_none()


async def list_plugins(
    session: AsyncSession, where: PluginFilter, limit: int, offset: int
) -> tuple[list[PluginRow], int]:
    """One page of plugins matching `where`, ordered by id, and the total that match."""
    query = select(PluginRow)
    if where.is_active is not None:
        query = query.where(PluginRow.is_active == where.is_active)
    if where.namespace is not None:
        query = query.where(PluginRow.namespace == where.namespace)
    if where.plugin_type is not None:
        query = query.where(PluginRow.plugin_type == where.plugin_type)
    rows = list((await session.execute(query.order_by(PluginRow.id))).scalars())
    if where.hook_type is not None:
        # hook_types is JSON: filter here so SQLite and PostgreSQL behave the same.
        rows = [r for r in rows if where.hook_type in hook_types_of(r.hook_types, r.hook_type)]
    return rows[offset : offset + limit], len(rows)


async def all_plugins(session: AsyncSession) -> list[PluginRow]:
    """Every plugin, ordered by id."""
    return list((await session.execute(select(PluginRow).order_by(PluginRow.id))).scalars())


async def slug_taken(session: AsyncSession, slug: str) -> bool:
    """True when a plugin uses `slug`."""
    query = select(func.count()).select_from(PluginRow).where(PluginRow.slug == slug)
    return bool((await session.execute(query)).scalar_one())


async def insert_plugin(session: AsyncSession, values: Mapping[str, Any]) -> PluginRow:
    """Store a new plugin; raises DuplicateSlugError when the slug is taken."""
    row = PluginRow(**values)
    session.add(row)
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise DuplicateSlugError(values["slug"]) from None
    return row
