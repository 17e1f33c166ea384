"""What a stored plugin means to the host: its spec, its failure policy and its live status."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from solstice.host import PluginHost, PluginNotLoadedError, PluginSpec
from solstice.protocol import pb
from solstice.safejson import unreadable_reason
from solstice.snapshot import config_id_for, deep_merge
from solstice.store.models import LLMPluginRow, PluginRow


def hook_name(hook: int) -> str:
    """The API name of a protocol Hook value: HOOK_PRE_AUTH -> pre_auth."""
    return pb.Hook.Name(hook).removeprefix("HOOK_").lower()


def overrides_for(row: PluginRow, entries: Sequence[LLMPluginRow]) -> dict[str, dict[str, Any]]:
    """The extra configurations a plugin needs: one per distinct per-LLM override, by config id."""
    overrides: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry.config_override:
            effective = deep_merge(row.config or {}, entry.config_override)
            overrides[config_id_for(effective)] = effective
    return overrides


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
    """The host spec of a stored plugin, with the overrides of the chain entries that use it."""
    return PluginSpec(
        slug=row.slug,
        command=row.command,
        config=dict(row.config or {}),
        env=tuple(row.env or ()),
        timeout_ms=row.timeout_ms,
        checksum=row.checksum,
        overrides=overrides_for(row, entries),
        unusable=unusable_reason(row, entries),
    )


def live_status(row: PluginRow, host: PluginHost) -> tuple[str, str | None]:
    """Status and last error: the host's view when it runs the plugin, else what was stored."""
    if not row.is_active:
        return "inactive", None
    try:
        status = host.status(row.slug)
    except PluginNotLoadedError:
        return row.status, row.last_error
    return status.state.value, status.last_error
