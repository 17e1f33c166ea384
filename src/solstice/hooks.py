"""The names of hooks, plugin types and failure policies, shared by server, CLI and plugin SDK.

Each is a Literal type (what the API and the snapshot accept) and, where code iterates over the
names, the tuple of its values.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, cast, get_args

from solstice.protocol import pb

HookType = Literal["pre_auth", "auth", "post_auth", "on_response", "data_collection"]
# In pipeline order.
HOOK_TYPES: tuple[HookType, ...] = get_args(HookType)
# Served at /plugins/{slug}/…, not a step of the request pipeline, so not one of HOOK_TYPES.
ENDPOINT_HOOK: Literal["custom_endpoint"] = "custom_endpoint"
# RunTask at a schedule's due times. The scope schedules.run, not this registration, lets a plugin's
# tasks run: a plugin whose only capability is its schedules is registered for it.
TASK_HOOK: Literal["scheduled_task"] = "scheduled_task"
# HandleObjectHook: policy on changes to the control plane's own objects.
OBJECT_HOOK: Literal["object_hooks"] = "object_hooks"
# HandleAgentMessage: chat turns at /agents/{slug}/chat.
AGENT_HOOK: Literal["agent"] = "agent"
# What a plugin may be registered for (hook_type, hook_types): the pipeline's hooks and the rest.
PluginHook = Literal[HookType, "custom_endpoint", "scheduled_task", "object_hooks", "agent"]
PLUGIN_HOOKS: tuple[PluginHook, ...] = (*HOOK_TYPES, ENDPOINT_HOOK, TASK_HOOK, OBJECT_HOOK, AGENT_HOOK)
# The objects object hooks see, and the events of each.
ObjectType = Literal["llm", "app", "plugin"]
OBJECT_TYPES: tuple[ObjectType, ...] = get_args(ObjectType)
ObjectEvent = Literal[
    "before_create", "before_update", "before_delete", "after_create", "after_update", "after_delete"
]
OBJECT_EVENTS: tuple[ObjectEvent, ...] = get_args(ObjectEvent)
FailurePolicy = Literal["fail_closed", "fail_open"]
FAILURE_POLICIES: tuple[FailurePolicy, ...] = get_args(FailurePolicy)
PluginType = Literal["gateway", "data_collector"]
# Request-path hooks protect the upstream: when such a plugin fails, the request fails.
_FAIL_OPEN_HOOKS = ("on_response", "data_collection")
_ENUM_PREFIX = "HOOK_"

# Hook name -> protocol Hook value, the pipeline's hooks then the others; the enum is the name
# upper-cased after HOOK_ (pre_auth: HOOK_PRE_AUTH).
HOOK_ENUMS: dict[str, pb.Hook] = {
    hook: cast(pb.Hook, pb.Hook.Value(_ENUM_PREFIX + hook.upper())) for hook in PLUGIN_HOOKS
}


def hook_name(hook: int) -> str:
    """The API name of a protocol Hook value: HOOK_PRE_AUTH -> pre_auth."""
    return pb.Hook.Name(hook).removeprefix(_ENUM_PREFIX).lower()


def hook_types_of(hook_types: Sequence[str] | None, hook_type: str | None) -> list[str]:
    """The hooks a plugin serves: `hook_types`, or its one `hook_type` (a row stored before the list)."""
    return list(hook_types or ([hook_type] if hook_type else []))


def default_failure_policy(hook_type: str | None) -> FailurePolicy:
    """fail_open for on_response and data_collection, fail_closed for the rest."""
    return "fail_open" if hook_type in _FAIL_OPEN_HOOKS else "fail_closed"


def known_failure_policy(value: str | None) -> FailurePolicy | None:
    """A stored policy as its type; None (the hook's default) when unset or not a policy."""
    for policy in FAILURE_POLICIES:
        if value == policy:
            return policy
    return None
