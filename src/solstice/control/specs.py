"""What a stored plugin means to the host: its spec, its failure policy and its live status."""

from __future__ import annotations

from solstice.host import PluginHost, PluginNotLoadedError, PluginSpec
from solstice.protocol import pb
from solstice.store.models import PluginRow


def hook_name(hook: int) -> str:
    """The API name of a protocol Hook value: HOOK_PRE_AUTH -> pre_auth."""
    return pb.Hook.Name(hook).removeprefix("HOOK_").lower()


def spec_for(row: PluginRow) -> PluginSpec:
    """The host spec of a stored plugin."""
    return PluginSpec(
        slug=row.slug,
        command=row.command,
        config=dict(row.config or {}),
        env=tuple(row.env or ()),
        timeout_ms=row.timeout_ms,
        checksum=row.checksum,
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
