"""Reading and writing the host service API scopes operators approved for plugins."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import PluginScopeRow, utcnow


async def approvals_of(session: AsyncSession, plugin_id: int) -> list[PluginScopeRow]:
    """A plugin's approved scopes, by name."""
    query = select(PluginScopeRow).where(PluginScopeRow.plugin_id == plugin_id).order_by(PluginScopeRow.scope)
    return list((await session.execute(query)).scalars())


async def all_approvals(session: AsyncSession) -> dict[int, list[str]]:
    """Every plugin's approved scopes, by plugin id."""
    found: dict[int, list[str]] = {}
    query = select(PluginScopeRow.plugin_id, PluginScopeRow.scope).order_by(PluginScopeRow.scope)
    for plugin_id, scope in await session.execute(query):
        found.setdefault(plugin_id, []).append(scope)
    return found


async def approve(session: AsyncSession, plugin_id: int, scopes: Iterable[str], actor: str) -> None:
    """Approve `scopes`; one already approved keeps its first approval (another server may race us)."""
    rows = [
        {"plugin_id": plugin_id, "scope": scope, "approved_by": actor, "approved_at": utcnow()}
        for scope in scopes
    ]
    if not rows:
        return
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    await session.execute(dialect.insert(PluginScopeRow).values(rows).on_conflict_do_nothing())


async def revoke(session: AsyncSession, plugin_id: int, scopes: Iterable[str]) -> None:
    """Withdraw approvals."""
    await session.execute(
        delete(PluginScopeRow).where(
            PluginScopeRow.plugin_id == plugin_id, PluginScopeRow.scope.in_(list(scopes))
        )
    )
