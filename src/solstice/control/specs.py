"""What a stored plugin means to the host: its spec, its failure policy and its live status."""

from __future__ import annotations

from solstice.host import PluginHost, PluginNotLoadedError, PluginSpec
from solstice.protocol import pb
from solstice.store.models import PluginRow

HOOK_TYPES = ("pre_auth", "auth", "post_auth", "on_response", "data_collection")
PLUGIN_TYPES = ("gateway", "data_collector")
FAILURE_POLICIES = ("fail_closed", "fail_open")
# Request-path hooks protect the upstream: when such a plugin fails, the request fails.
_FAIL_OPEN_HOOKS = ("on_response", "data_collection")


def hook_name(hook: int) -> str:
    """The API name of a protocol Hook value: HOOK_PRE_AUTH -> pre_auth."""
    return pb.Hook.Name(hook).removeprefix("HOOK_").lower()


def default_failure_policy(hook_type: str) -> str:
    """fail_open for on_response and data_collection, fail_closed for the rest."""
    return "fail_open" if hook_type in _FAIL_OPEN_HOOKS else "fail_closed"


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
