"""The gateway's routing table, built once per snapshot and swapped atomically."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from solstice.hooks import (
    AGENT_HOOK,
    ENDPOINT_HOOK,
    HOOK_TYPES,
    FailurePolicy,
    default_failure_policy,
    hook_types_of,
)
from solstice.snapshot import PluginEntry, Snapshot, config_id_for, deep_merge


@dataclass(frozen=True)
class Step:
    """One plugin call in a hook chain."""

    slug: str
    config_id: str
    timeout_ms: int
    failure_policy: FailurePolicy


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
    agents: frozenset[str] = frozenset()


@dataclass(frozen=True)
class GatewayConfig:
    """Everything a request needs, without a database read."""

    routes: Mapping[str, Route] = field(default_factory=dict)
    apps_by_key: Mapping[str, AppIdentity] = field(default_factory=dict)
    apps_by_id: Mapping[int, AppIdentity] = field(default_factory=dict)
    # Active plugins registered for custom_endpoint: their routes are served at /plugins/{slug}/.
    endpoint_plugins: frozenset[str] = frozenset()
    # Active plugins registered for agent: they answer at /agents/{slug}/chat.
    agent_plugins: frozenset[str] = frozenset()
    # Host service API scopes approved per active plugin (slug): read at each call, so an
    # approval takes effect without a reload.
    approved_scopes: Mapping[str, frozenset[str]] = field(default_factory=dict)


def _hooks(plugin: PluginEntry) -> list[str]:
    """The pipeline hooks a plugin is registered for (custom_endpoint is served apart)."""
    return [h for h in hook_types_of(plugin.get("hook_types"), plugin.get("hook_type")) if h in HOOK_TYPES]


def _step(
    plugin: PluginEntry,
    hook: str,
    config_id: str = "",
    timeout_ms: int | None = None,
    policy: FailurePolicy | None = None,
) -> Step:
    return Step(
        slug=plugin["slug"],
        config_id=config_id,
        timeout_ms=timeout_ms or plugin["timeout_ms"],
        failure_policy=policy or plugin.get("failure_policy") or default_failure_policy(hook),
    )


def config_from_snapshot(snapshot: Snapshot) -> GatewayConfig:
    """The gateway's view of a configuration snapshot (the control plane's own, or an edge's)."""
    plugins = {p["slug"]: p for p in snapshot.get("plugins", []) if p.get("is_active")}
    globals_ = [p for p in plugins.values() if p.get("is_global")]
    routes: dict[str, Route] = {}
    for llm in snapshot.get("llms", []):
        chains: dict[str, list[Step]] = {hook: [] for hook in HOOK_TYPES}
        for plugin in globals_:
            for hook in _hooks(plugin):
                chains[hook].append(_step(plugin, hook))
        for entry in llm.get("chain", []):
            chained = plugins.get(entry["plugin"])
            if chained is None or chained.get("is_global"):
                continue  # inactive, or already in front as a global plugin
            override = entry.get("config_override")
            config_id = config_id_for(deep_merge(chained.get("config") or {}, override)) if override else ""
            for hook in _hooks(chained):
                chains[hook].append(
                    _step(chained, hook, config_id, entry.get("timeout_ms"), entry.get("failure_policy"))
                )
        routes[llm["slug"]] = Route(
            id=llm["id"],
            slug=llm["slug"],
            name=llm["name"],
            vendor=llm["vendor"],
            upstream_url=llm["upstream_url"],
            api_key=llm["api_key"],
            is_active=llm["is_active"],
            options=dict(llm.get("options") or {}),
            chains={hook: tuple(steps) for hook, steps in chains.items()},
        )
    apps = {
        app["id"]: AppIdentity(
            id=app["id"],
            name=app["name"],
            is_active=app["is_active"],
            llm_ids=frozenset(app["llm_ids"]),
            agents=frozenset(app.get("agents", ())),
        )
        for app in snapshot.get("apps", [])
    }
    by_key = {key: apps[app["id"]] for app in snapshot.get("apps", []) for key in app.get("key_hashes", [])}
    endpoints = frozenset(
        slug
        for slug, plugin in plugins.items()
        if ENDPOINT_HOOK in hook_types_of(plugin.get("hook_types"), plugin.get("hook_type"))
    )
    agents = frozenset(
        slug
        for slug, plugin in plugins.items()
        if AGENT_HOOK in hook_types_of(plugin.get("hook_types"), plugin.get("hook_type"))
    )
    approved = {slug: frozenset(plugin.get("approved_scopes") or ()) for slug, plugin in plugins.items()}
    return GatewayConfig(
        routes=routes,
        apps_by_key=by_key,
        apps_by_id=apps,
        endpoint_plugins=endpoints,
        agent_plugins=agents,
        approved_scopes=approved,
    )


class ConfigHolder:
    """What the proxy reads its configuration from; the runtime replaces `config` in one step."""

    def __init__(self) -> None:
        self.config = GatewayConfig()
