"""What a stored plugin means to the host and the edges: its snapshot entry, its spec and its live status."""

from __future__ import annotations

from collections.abc import Sequence

from solstice.hooks import hook_types_of, known_failure_policy
from solstice.host import PluginHost, PluginNotLoadedError, PluginSpec
from solstice.host.spec import spec_of
from solstice.safejson import unreadable_reason
from solstice.snapshot import PluginEntry, overrides_of
from solstice.store.models import LLMPluginRow, PluginRow


def plugin_entry(
    row: PluginRow, entries: Sequence[LLMPluginRow] = (), approved_scopes: Sequence[str] = ()
) -> PluginEntry:
    """A stored plugin as the snapshot carries it; `entries` are the chain entries that use it."""
    plugin: PluginEntry = {
        "slug": row.slug,
        "name": row.name,
        "command": row.command,
        "config": dict(row.config or {}),
        "hook_type": row.hook_type,
        "hook_types": hook_types_of(row.hook_types, row.hook_type),
        "plugin_type": row.plugin_type,
        "is_active": row.is_active,
        "is_global": row.is_global,
        "timeout_ms": row.timeout_ms,
        "failure_policy": known_failure_policy(row.failure_policy),
        "env": list(row.env or []),
        "checksum": row.checksum,
        "namespace": row.namespace or "",
        "digest": row.digest,
        "revision": row.revision,
        "approved_scopes": list(approved_scopes),
    }
    unusable = unusable_reason(row, entries)
    if unusable:
        plugin["unusable"] = unusable
    return plugin


def unusable_reason(row: PluginRow, entries: Sequence[LLMPluginRow] = ()) -> str | None:
    """Why a stored plugin must not run: a setting it needs could not be read back from the store."""
    for name, value in (("config", row.config), ("env", row.env)):
        reason = unreadable_reason(value)
        if reason is not None:
            return (
                f"plugin {row.slug}'s stored {name} cannot be read (it {reason}); "
                f"set it again with PUT /api/v1/plugins/{row.slug}"
            )
    for entry in entries:
        reason = unreadable_reason(entry.config_override)
        if reason is not None:
            return (
                f"plugin {row.slug}'s config_override in the chain of LLM {entry.llm_id} cannot be read "
                f"(it {reason}); set the chain again with PUT /api/v1/llms/{entry.llm_id}/plugins"
            )
    return None


def spec_for(row: PluginRow, entries: Sequence[LLMPluginRow] = ()) -> PluginSpec:
    """The host spec of a stored plugin, with the overrides of the chain entries that use it.

    Built from its snapshot entry, as an edge builds it, so both run a plugin the same way.
    """
    plugin = plugin_entry(row, entries)
    return spec_of(plugin, overrides_of(plugin["config"], (entry.config_override for entry in entries)))


def live_status(row: PluginRow, host: PluginHost) -> tuple[str, str | None]:
    """Status and last error: the host's view when it runs the plugin, else what was stored."""
    if not row.is_active:
        return "inactive", None
    try:
        status = host.status(row.slug)
    except PluginNotLoadedError:
        return row.status, row.last_error
    return status.state.value, status.last_error
