"""The names of hooks, plugin types and failure policies, shared by server and CLI (no imports)."""

from __future__ import annotations

HOOK_TYPES = ("pre_auth", "auth", "post_auth", "on_response", "data_collection")
PLUGIN_TYPES = ("gateway", "data_collector")
FAILURE_POLICIES = ("fail_closed", "fail_open")
# Request-path hooks protect the upstream: when such a plugin fails, the request fails.
_FAIL_OPEN_HOOKS = ("on_response", "data_collection")


def default_failure_policy(hook_type: str) -> str:
    """fail_open for on_response and data_collection, fail_closed for the rest."""
    return "fail_open" if hook_type in _FAIL_OPEN_HOOKS else "fail_closed"
