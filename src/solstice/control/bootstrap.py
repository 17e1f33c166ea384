"""What a server ensures at start: an admin token, and plugins named on the command line."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.host import PluginSpec
from solstice.settings import Settings
from solstice.store import audit
from solstice.store.models import PluginRow
from solstice.store.plugins import get_plugin
from solstice.store.tokens import create_token, has_admin_token


async def ensure_admin_token(sessions: async_sessionmaker[AsyncSession], settings: Settings) -> str | None:
    """Create an admin token when none is configured or stored; returns its secret, else None."""
    if settings.admin_token:
        return None
    async with sessions.begin() as session:
        if await has_admin_token(session):
            return None
        _, secret = await create_token(session, "initial-admin", "admin")
        await audit.record(session, "solstice", "token.create", "token:initial-admin", "ok", "admin")
    return secret


async def ensure_plugins(sessions: async_sessionmaker[AsyncSession], specs: Sequence[PluginSpec]) -> None:
    """Create each plugin, or point an existing one at the given command, active."""
    for spec in specs:
        async with sessions.begin() as session:
            row = await get_plugin(session, spec.slug)
            if row is None:
                session.add(
                    PluginRow(
                        name=spec.slug,
                        slug=spec.slug,
                        description="",
                        command=spec.command,
                        # Learned from the plugin's GetInfo when it first starts.
                        hook_type="",
                        hook_types=[],
                        config=dict(spec.config),
                        namespace="",
                        env=[],
                        warnings=[],
                    )
                )
                await audit.record(session, "solstice serve --plugin", "plugin.create", spec.slug, "ok")
            elif row.command != spec.command or not row.is_active:
                row.command = spec.command
                row.is_active = True
                row.revision += 1
                await audit.record(session, "solstice serve --plugin", "plugin.update", spec.slug, "ok")
