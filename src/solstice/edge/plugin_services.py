"""The host service API on an edge: data in the edge's own file, approvals from its configuration,
events in its log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import structlog

from solstice.edge.plugin_data import FileKv
from solstice.gateway.catalog import ConfigCatalog
from solstice.gateway.llm_calls import GatewayLlmCalls
from solstice.gateway.proxy import Gateway
from solstice.services import KvService, PluginServices
from solstice.settings import Settings

log = structlog.get_logger("solstice.plugins")


class LoggedEvents:
    """Plugin events on an edge: a log line each (an edge keeps no audit log)."""

    async def publish(self, slug: str, event_type: str, data: Mapping[str, Any]) -> None:
        """Record one event from plugin `slug`."""
        log.info("plugin event", plugin=slug, type=event_type, data=dict(data))


def _synced_hint(slug: str, scope: str) -> str:
    return f"approve it on the control plane (POST /api/v1/plugins/{slug}/scopes/approve); this edge follows"


def _file_hint(slug: str, scope: str) -> str:
    return f"add {scope} to the scopes of plugin {slug} in the edge's plugins.yaml"


def forget_data_of(data: FileKv) -> Callable[[str], Awaitable[None]]:
    """What the reconciler calls for a plugin removed from the configuration: its data goes with it."""

    async def forget(slug: str) -> None:
        removed = await data.clear(slug)
        log.info("removed plugin's data deleted", plugin=slug, deleted_keys=removed)

    return forget


def edge_services(settings: Settings, gateway: Gateway, data: FileKv, file_config: bool) -> PluginServices:
    """What answers plugins' calls on `solstice edge`."""
    return PluginServices(
        ConfigCatalog(gateway.state, _file_hint if file_config else _synced_hint),
        KvService(data, settings.plugin_kv_max_value_bytes, settings.plugin_kv_max_bytes),
        LoggedEvents(),
        GatewayLlmCalls(gateway),
    )
