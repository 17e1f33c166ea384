"""The scopes of the host service API: what a plugin may ask the platform for, named once."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal, get_args

Scope = Literal[
    "kv.read",
    "kv.readwrite",
    "llms.read",
    "apps.read",
    "llms.call",
    "events.publish",
    "schedules.run",
    "objects.hook",
]
SCOPES: tuple[Scope, ...] = get_args(Scope)

DESCRIPTIONS: dict[str, str] = {
    "kv.read": "read the plugin's own key-value data",
    "kv.readwrite": "read, write and delete the plugin's own key-value data",
    "llms.read": "list and read LLMs as the API shows them, without upstream keys",
    "apps.read": "list and read apps as the API shows them, without keys",
    "llms.call": "call an LLM through the gateway as the plugin, with no app key",
    "events.publish": "write events to the server log and the audit log",
    "schedules.run": "be called at the due times of the plugin's schedules",
    "objects.hook": "see changes to LLMs, apps and plugins, and allow, reject or modify them before storing",
}
# What a plugin that runs scheduled tasks must hold (declared and approved).
SCHEDULES_SCOPE: Scope = "schedules.run"
# What a plugin with object hooks must hold (declared and approved).
OBJECTS_SCOPE: Scope = "objects.hook"

_BY_NAME: dict[str, Scope] = {scope: scope for scope in SCOPES}
# A broader scope that includes a narrower one.
_IMPLIES: dict[str, tuple[Scope, ...]] = {"kv.readwrite": ("kv.read",)}


class ScopeError(ValueError):
    """A scope name Solstice does not know."""


def check_scopes(names: Iterable[str]) -> list[Scope]:
    """The names as scopes, sorted and without repeats; ScopeError names the first unknown one."""
    known: set[Scope] = set()
    for name in names:
        scope = _BY_NAME.get(name)
        if scope is None:
            raise ScopeError(f"unknown scope {name!r}; valid scopes: {', '.join(SCOPES)}")
        known.add(scope)
    return sorted(known)


def grants(held: Iterable[str], needed: str) -> bool:
    """Whether `held` scopes allow what `needed` allows."""
    return any(scope == needed or needed in _IMPLIES.get(scope, ()) for scope in held)
