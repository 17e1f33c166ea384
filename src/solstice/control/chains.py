"""Changing an LLM's plugin chain: plugins must accept new per-LLM overrides before it is stored."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from solstice.control.errors import InvalidError, StartFailedError
from solstice.control.manager import PluginManager
from solstice.control.specs import spec_for
from solstice.hooks import FailurePolicy
from solstice.host import PluginConfigError, PluginError, PluginNotLoadedError, PluginSpec, PluginState
from solstice.safejson import JSONObject
from solstice.store import audit
from solstice.store.llms import entries_for_plugin, replace_chain
from solstice.store.models import LLMPluginRow, LLMRow, PluginRow
from solstice.store.plugins import get_plugin


class ChainEntry(BaseModel):
    """One plugin in a chain, as a client sends it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    plugin: str | int = Field(description="Plugin id or slug.")
    config_override: JSONObject = Field(default_factory=dict)
    timeout_ms: int | None = Field(None, ge=1, le=600_000)
    failure_policy: FailurePolicy | None = None


async def set_chain(manager: PluginManager, llm: LLMRow, entries: Sequence[ChainEntry], actor: str) -> None:
    """Make `entries` the LLM's chain; a serving plugin that rejects its new override fails it all."""
    async with manager.sessions() as session:
        plugins: list[PluginRow] = []
        for entry in entries:
            plugin = await get_plugin(session, str(entry.plugin))
            if plugin is None:
                raise InvalidError(f"no plugin with id or slug {entry.plugin!r}; create it first")
            plugins.append(plugin)
    if len({p.id for p in plugins}) != len(plugins):
        raise InvalidError("a plugin appears twice in the chain; list each plugin once")
    # Every plugin whose overrides may change is locked, in one order, for the whole change:
    # two chains sharing a plugin must not each reload it without the other's override.
    async with contextlib.AsyncExitStack() as stack:
        for slug in sorted({p.slug for p in plugins}):
            await stack.enter_async_context(manager.lock_for(slug))
        await _set_chain_locked(manager, llm, entries, plugins, actor)


async def _set_chain_locked(
    manager: PluginManager, llm: LLMRow, entries: Sequence[ChainEntry], plugins: list[PluginRow], actor: str
) -> None:
    async with manager.sessions() as session:
        current = {p.id: await entries_for_plugin(session, p.id) for p in plugins}
    new_rows = [
        LLMPluginRow(
            llm_id=llm.id,
            plugin_id=plugin.id,
            config_override=dict(entry.config_override),
            timeout_ms=entry.timeout_ms,
            failure_policy=entry.failure_policy,
        )
        for entry, plugin in zip(entries, plugins, strict=True)
    ]
    changed: list[PluginRow] = []
    for plugin, row in zip(plugins, new_rows, strict=True):
        others = [e for e in current[plugin.id] if e.llm_id != llm.id]
        candidate = spec_for(plugin, [*others, row])
        if set(candidate.overrides) - set(spec_for(plugin, current[plugin.id]).overrides):
            changed.append(plugin)
            await _accept(manager, plugin, candidate)
    async with manager.sessions.begin() as session:
        await replace_chain(
            session,
            llm.id,
            [
                {
                    "plugin_id": r.plugin_id,
                    "config_override": r.config_override,
                    "timeout_ms": r.timeout_ms,
                    "failure_policy": r.failure_policy,
                }
                for r in new_rows
            ],
        )
        for plugin in changed:
            stored = await session.get(PluginRow, plugin.id)
            if stored is not None:
                stored.revision += 1  # other servers reload it with the new overrides
        await audit.record(session, actor, "llm.chain", llm.slug, "ok", ", ".join(p.slug for p in plugins))
    for plugin in changed:
        await manager.applied_externally(plugin.id, locked=True)


async def _accept(manager: PluginManager, plugin: PluginRow, candidate: PluginSpec) -> None:
    """Reload a serving plugin with its new overrides; raise if it rejects them."""
    try:
        serving = manager.host.status(plugin.slug).state in (PluginState.HEALTHY, PluginState.UNHEALTHY)
    except PluginNotLoadedError:
        return  # it is started with the stored chain when it next starts
    if not serving:
        return
    try:
        await manager.host.reload(plugin.slug, manager.keeping_current_overrides(candidate))
    except PluginConfigError as exc:
        raise InvalidError(f"{exc}; the chain is unchanged") from None
    except PluginError as exc:
        raise StartFailedError(f"{exc}; the chain is unchanged") from None
