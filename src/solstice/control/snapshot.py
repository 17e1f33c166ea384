"""Builds the snapshot a gateway serves from the store: global items plus a namespace's."""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.control.specs import unusable_reason
from solstice.sealing import Keyring, SecretKeyError, keyring_of
from solstice.snapshot import SNAPSHOT_FORMAT, version_of
from solstice.store.apps import all_apps, live_keys
from solstice.store.llms import all_chain_entries, all_llms
from solstice.store.models import AppRow, LLMPluginRow, LLMRow, PluginRow
from solstice.store.plugins import all_plugins

log = structlog.get_logger("solstice.control")


def _visible(namespace: str | None, item_namespace: str | None) -> bool:
    # None is the control plane's own view: every namespace.
    return namespace is None or not item_namespace or item_namespace == namespace


def _plugin(row: PluginRow, entries: list[LLMPluginRow]) -> dict[str, Any]:
    plugin = {
        "slug": row.slug,
        "name": row.name,
        "command": row.command,
        "config": dict(row.config or {}),
        "hook_type": row.hook_type,
        "hook_types": list(row.hook_types or ([row.hook_type] if row.hook_type else [])),
        "plugin_type": row.plugin_type,
        "is_active": row.is_active,
        "is_global": row.is_global,
        "timeout_ms": row.timeout_ms,
        "failure_policy": row.failure_policy,
        "env": list(row.env or []),
        "checksum": row.checksum,
        "namespace": row.namespace or "",
        # For oci:// plugins the digest the control plane resolved: a change makes edges reload.
        "digest": row.digest,
        # Bumped by every change and by POST /plugins/{id}/reload: edges reload with the control plane.
        "revision": row.revision,
    }
    unusable = unusable_reason(row, entries)
    if unusable:
        # The edge fails this plugin with the reason instead of running it without its settings.
        plugin["unusable"] = unusable
    return plugin


def _llm(row: LLMRow, chain: list[dict[str, Any]], keyring: Keyring) -> dict[str, Any]:
    return {
        "id": row.id,
        "slug": row.slug,
        "name": row.name,
        "vendor": row.vendor,
        "upstream_url": row.upstream_url,
        # Decrypted: the gateway and the edges send it upstream (an edge encrypts its copy on disk).
        "api_key": _open_key(row, keyring),
        "is_active": row.is_active,
        "options": dict(row.options or {}),
        "namespace": row.namespace or "",
        "chain": chain,
    }


def _open_key(row: LLMRow, keyring: Keyring) -> str:
    try:
        return keyring.open(row.api_key)
    except SecretKeyError as exc:
        # One unreadable key must not stop every route and every edge: this LLM goes without it.
        log.error(
            "an LLM's upstream key cannot be decrypted; it is sent without one", llm=row.slug, error=str(exc)
        )
        return ""


def _app(row: AppRow, llm_ids: set[int], key_hashes: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "is_active": row.is_active,
        "namespace": row.namespace or "",
        "llm_ids": [i for i in row.llm_ids or [] if i in llm_ids],
        "key_hashes": sorted(key_hashes),
    }


async def build_snapshot(
    session: AsyncSession, namespace: str | None, reload_generation: int = 0
) -> dict[str, Any]:
    """The snapshot for the edges of `namespace` (None: everything), with its `version`."""
    keyring = keyring_of(session)
    plugins = {p.id: p for p in await all_plugins(session) if _visible(namespace, p.namespace)}
    llms = [llm for llm in await all_llms(session) if _visible(namespace, llm.namespace)]
    chains: dict[int, list[dict[str, Any]]] = {}
    entries_of: dict[int, list[LLMPluginRow]] = {}
    for entry in await all_chain_entries(session):
        plugin = plugins.get(entry.plugin_id)
        if plugin is not None:
            entries_of.setdefault(entry.plugin_id, []).append(entry)
            chains.setdefault(entry.llm_id, []).append(
                {
                    "plugin": plugin.slug,
                    "position": entry.position,
                    "config_override": dict(entry.config_override or {}),
                    "timeout_ms": entry.timeout_ms,
                    "failure_policy": entry.failure_policy,
                }
            )
    llm_ids = {llm.id for llm in llms}
    keys: dict[int, list[str]] = {}
    for key in await live_keys(session):
        keys.setdefault(key.app_id, []).append(key.key_hash)
    apps = [a for a in await all_apps(session) if _visible(namespace, a.namespace)]
    snapshot: dict[str, Any] = {
        "format": SNAPSHOT_FORMAT,
        "namespace": namespace,
        "reload_generation": reload_generation,
        "plugins": sorted(
            (_plugin(p, entries_of.get(p.id, [])) for p in plugins.values()), key=lambda p: p["slug"]
        ),
        "llms": sorted(
            (_llm(llm, sorted(chains.get(llm.id, []), key=lambda e: e["position"]), keyring) for llm in llms),
            key=lambda item: item["slug"],
        ),
        "apps": sorted((_app(a, llm_ids, keys.get(a.id, [])) for a in apps), key=lambda a: a["id"]),
    }
    snapshot["version"] = version_of(snapshot)
    return snapshot
