"""Builds the snapshot a gateway serves from the store: global items plus a namespace's."""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.control.specs import plugin_entry
from solstice.hooks import known_failure_policy
from solstice.sealing import Keyring, SecretKeyError, keyring_of
from solstice.snapshot import AppEntry, ChainEntry, LLMEntry, Snapshot, new_snapshot
from solstice.store.apps import all_apps, live_keys
from solstice.store.llms import all_chain_entries, all_llms
from solstice.store.models import AppRow, LLMPluginRow, LLMRow
from solstice.store.plugins import all_plugins
from solstice.store.scopes import all_approvals

log = structlog.get_logger("solstice.control")


def _visible(namespace: str | None, item_namespace: str | None) -> bool:
    # None is the control plane's own view: every namespace.
    return namespace is None or not item_namespace or item_namespace == namespace


def _llm(row: LLMRow, chain: list[ChainEntry], keyring: Keyring) -> LLMEntry:
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


def _app(row: AppRow, llm_ids: set[int], key_hashes: list[str]) -> AppEntry:
    return {
        "id": row.id,
        "name": row.name,
        "is_active": row.is_active,
        "namespace": row.namespace or "",
        "llm_ids": [i for i in row.llm_ids or [] if i in llm_ids],
        "key_hashes": sorted(key_hashes),
        "agents": sorted(row.agents or []),
    }


async def build_snapshot(
    session: AsyncSession, namespace: str | None, reload_generation: int = 0
) -> Snapshot:
    """The snapshot for the edges of `namespace` (None: everything), with its `version`."""
    keyring = keyring_of(session)
    plugins = {p.id: p for p in await all_plugins(session) if _visible(namespace, p.namespace)}
    llms = [llm for llm in await all_llms(session) if _visible(namespace, llm.namespace)]
    chains: dict[int, list[ChainEntry]] = {}
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
                    "failure_policy": known_failure_policy(entry.failure_policy),
                }
            )
    llm_ids = {llm.id for llm in llms}
    keys: dict[int, list[str]] = {}
    for key in await live_keys(session):
        keys.setdefault(key.app_id, []).append(key.key_hash)
    apps = [a for a in await all_apps(session) if _visible(namespace, a.namespace)]
    approvals = await all_approvals(session)
    return new_snapshot(
        namespace,
        reload_generation,
        plugins=sorted(
            (plugin_entry(p, entries_of.get(p.id, []), approvals.get(p.id, [])) for p in plugins.values()),
            key=lambda p: p["slug"],
        ),
        llms=sorted(
            (_llm(llm, sorted(chains.get(llm.id, []), key=lambda e: e["position"]), keyring) for llm in llms),
            key=lambda item: item["slug"],
        ),
        apps=sorted((_app(a, llm_ids, keys.get(a.id, [])) for a in apps), key=lambda a: a["id"]),
    )
