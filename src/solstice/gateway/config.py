"""The gateway's view of the store, built once per change and swapped atomically."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from solstice.control.configs import config_id_for, deep_merge
from solstice.hooks import HOOK_TYPES, default_failure_policy
from solstice.store.apps import all_apps, live_keys
from solstice.store.llms import all_chain_entries, all_llms
from solstice.store.models import PluginRow
from solstice.store.plugins import all_plugins


@dataclass(frozen=True)
class Step:
    """One plugin call in a hook chain."""

    slug: str
    config_id: str
    timeout_ms: int
    failure_policy: str


@dataclass(frozen=True)
class Route:
    """An LLM as the proxy serves it."""

    id: int
    slug: str
    name: str
    vendor: str
    upstream_url: str
    api_key: str = field(repr=False)
    is_active: bool
    options: Mapping[str, Any]
    chains: Mapping[str, tuple[Step, ...]]


@dataclass(frozen=True)
class AppIdentity:
    """An app, as the built-in key check finds it."""

    id: int
    name: str
    is_active: bool
    llm_ids: frozenset[int]


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a request needs, without a database read."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    apps_by_key: Mapping[str, AppIdentity] = field(default_factory=dict)
    apps_by_id: Mapping[int, AppIdentity] = field(default_factory=dict)


def _hooks(plugin: PluginRow) -> tuple[str, ...]:
    return tuple(plugin.hook_types or ([plugin.hook_type] if plugin.hook_type else []))


def _step(
    plugin: PluginRow,
    hook: str,
    config_id: str = "",
    timeout_ms: int | None = None,
    policy: str | None = None,
) -> Step:
    return Step(
        slug=plugin.slug,
        config_id=config_id,
        timeout_ms=timeout_ms or plugin.timeout_ms,
        failure_policy=policy or plugin.failure_policy or default_failure_policy(hook),
    )


async def load_config(session: AsyncSession) -> GatewayConfig:
    """Read LLMs, chains, plugins and apps into one immutable GatewayConfig."""
    plugins = {p.id: p for p in await all_plugins(session) if p.is_active}
    globals_ = [p for p in plugins.values() if p.is_global]
    entries_by_llm: dict[int, list[Any]] = {}
    for entry in await all_chain_entries(session):
        entries_by_llm.setdefault(entry.llm_id, []).append(entry)
    routes: dict[str, Route] = {}
    for llm in await all_llms(session):
        chains: dict[str, list[Step]] = {hook: [] for hook in HOOK_TYPES}
        for plugin in globals_:
            for hook in _hooks(plugin):
                chains[hook].append(_step(plugin, hook))
        for entry in entries_by_llm.get(llm.id, []):
            plugin = plugins.get(entry.plugin_id)
            if plugin is None or plugin.is_global:
                continue  # inactive, or already in front as a global plugin
            config_id = (
                config_id_for(deep_merge(plugin.config or {}, entry.config_override))
                if entry.config_override
                else ""
            )
            for hook in _hooks(plugin):
                chains[hook].append(_step(plugin, hook, config_id, entry.timeout_ms, entry.failure_policy))
        routes[llm.slug] = Route(
            id=llm.id,
            slug=llm.slug,
            name=llm.name,
            vendor=llm.vendor,
            upstream_url=llm.upstream_url,
            api_key=llm.api_key,
            is_active=llm.is_active,
            options=dict(llm.options or {}),
            chains={hook: tuple(steps) for hook, steps in chains.items()},
        )
    apps = {
        app.id: AppIdentity(
            id=app.id, name=app.name, is_active=app.is_active, llm_ids=frozenset(app.llm_ids or [])
        )
        for app in await all_apps(session)
    }
    by_key = {key.key_hash: apps[key.app_id] for key in await live_keys(session) if key.app_id in apps}
    return GatewayConfig(routes=routes, apps_by_key=by_key, apps_by_id=apps)
