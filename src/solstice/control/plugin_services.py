"""The host service API on the control plane: the database keeps plugins' data, events reach the audit log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.gateway.catalog import ConfigCatalog
from solstice.gateway.llm_calls import GatewayLlmCalls
from solstice.gateway.proxy import Gateway
from solstice.services import KvService, PluginServices
from solstice.services.events import compact
from solstice.settings import Settings
from solstice.store import audit
from solstice.store.plugin_data import StoredKv

log = structlog.get_logger("solstice.plugins")


def approve_hint(slug: str, scope: str) -> str:
    """How an operator of the control plane approves a scope."""
    return (
        f'POST /api/v1/plugins/{slug}/scopes/approve with {{"scopes": ["{scope}"]}}, '
        f"or solstice plugins approve {slug} {scope}"
    )


class AuditedEvents:
    """Plugin events: one server log line and one audit entry each."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def publish(self, slug: str, event_type: str, data: Mapping[str, Any]) -> None:
        """Record one event from plugin `slug`."""
        log.info("plugin event", plugin=slug, type=event_type, data=dict(data))
        async with self.sessions.begin() as session:
            # Compact, as events.py measures it, so the whole event fits the audit entry.
            detail = compact({"event": event_type, "data": dict(data)})
            await audit.record(session, f"plugin:{slug}", "plugin.event", slug, "ok", detail)


def control_plane_services(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], gateway: Gateway
) -> PluginServices:
    """What answers plugins' calls on `solstice serve`."""
    return PluginServices(
        ConfigCatalog(gateway.state, approve_hint),
        KvService(StoredKv(sessions), settings.plugin_kv_max_value_bytes, settings.plugin_kv_max_bytes),
        AuditedEvents(sessions),
        GatewayLlmCalls(gateway),
    )
