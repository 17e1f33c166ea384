"""Object hooks: plugins' policy on changes to LLMs, apps and plugins.

before_* hooks run in order (priority, then plugin id) before a change is stored: each may
allow it, reject it (422 naming the plugin and its reason) or replace the object, which is then
checked as if the user had sent it. after_* notifications are queued in the transaction that
stores the change and delivered by `control/object_deliveries.py`.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.control.errors import ControlError, InvalidError, UnavailableError
from solstice.hooks import (
    OBJECT_EVENTS,
    OBJECT_HOOK,
    OBJECT_TYPES,
    default_failure_policy,
    hook_types_of,
    known_failure_policy,
)
from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError
from solstice.metrics import OBJECT_HOOK_CALLS
from solstice.protocol import pb
from solstice.scopes import OBJECTS_SCOPE, grants
from solstice.store import object_deliveries
from solstice.store.models import PluginRow
from solstice.store.plugins import all_plugins
from solstice.store.scopes import all_approvals

log = structlog.get_logger("solstice.object_hooks")

# Fields of an object's view a plugin sees but cannot set, and secrets it never sees: dropped from
# a replacement.
READ_ONLY = ("id", "has_api_key", "api_key")
# What the API says of a failed call (the plugin's own words go to the log).
_CALL_FAILURES = {
    "DEADLINE_EXCEEDED": "it did not answer within {ms} ms",
    "UNAVAILABLE": "it is not reachable",
    "CANCELLED": "it is not reachable",
    "UNIMPLEMENTED": "it does not implement HandleObjectHook",
}
# The longest rejection reason passed on to the API's client.
_REASON_LIMIT = 500
# Checks a replaced object as if the user had sent it: the object to store, or InvalidError.
Check = Callable[[dict[str, Any]], dict[str, Any]]


class RejectedByPluginError(InvalidError):
    """A before_* hook refused the change."""


@contextlib.contextmanager
def blamed_on(replaced_by: Sequence[str], object_type: str) -> Iterator[None]:
    """Name the plugins that replaced an object in the refusal of a check that came after them."""
    try:
        yield
    except ControlError as exc:
        if not replaced_by:
            raise
        who = ", ".join(dict.fromkeys(replaced_by))
        raise type(exc)(f"{exc} (plugin {who} changed this {object_type} before the check)") from None


def read_registrations(
    slug: str, found: Sequence[pb.ObjectHookRegistration]
) -> tuple[list[dict[str, Any]], list[str]]:
    """The usable registrations a plugin reported, as stored, and a warning for each unusable part."""
    usable: list[dict[str, Any]] = []
    warnings: list[str] = []
    for registration in found:
        if registration.object_type not in OBJECT_TYPES:
            warnings.append(
                f"plugin {slug} hooks object type {registration.object_type!r}, which does not exist; "
                f"object types: {', '.join(OBJECT_TYPES)}"
            )
            continue
        events = [e for e in registration.events if e in OBJECT_EVENTS]
        warnings += [
            f"plugin {slug} hooks event {e!r} of {registration.object_type}, which does not exist; "
            f"events: {', '.join(OBJECT_EVENTS)}"
            for e in registration.events
            if e not in OBJECT_EVENTS
        ]
        if events:
            usable.append(
                {
                    "object_type": registration.object_type,
                    "events": sorted(set(events)),
                    "priority": registration.priority,
                }
            )
    return usable, warnings


@dataclass(frozen=True)
class ChangedBy:
    """Who made a change: the API token's name, and the id of the request."""

    actor: str
    request_id: str = ""


@dataclass(frozen=True)
class Watcher:
    """A plugin that hooks one event of one object type."""

    plugin_id: int
    slug: str
    priority: int
    timeout_s: float
    fail_open: bool


def _watchers(
    rows: Sequence[PluginRow], approvals: Mapping[int, list[str]], object_type: str, event: str
) -> list[Watcher]:
    found: list[Watcher] = []
    for row in rows:
        if not row.is_active or OBJECT_HOOK not in hook_types_of(row.hook_types, row.hook_type):
            continue
        if OBJECTS_SCOPE not in (row.requested_scopes or []) or not grants(
            approvals.get(row.id, []), OBJECTS_SCOPE
        ):
            continue
        for registration in row.object_hooks or []:
            if registration.get("object_type") == object_type and event in registration.get("events", []):
                found.append(
                    Watcher(
                        plugin_id=row.id,
                        slug=row.slug,
                        priority=int(registration.get("priority", 0)),
                        timeout_s=row.timeout_ms / 1000,
                        # The policy the API shows for the plugin.
                        fail_open=(
                            known_failure_policy(row.failure_policy) or default_failure_policy(row.hook_type)
                        )
                        == "fail_open",
                    )
                )
                break
    return sorted(found, key=lambda w: (w.priority, w.plugin_id))


def _refusal_of(answer: pb.ObjectHookResponse, event: str) -> str | None:
    """Why a before_* answer cannot be used, or None."""
    decision = answer.WhichOneof("decision")
    if decision is None:
        return "it answered no decision: allow, reject or modify"
    if decision == "modify":
        if event == "before_delete":
            return "it answered modify to before_delete, which can only be allowed or rejected"
        try:
            replaced = json.loads(answer.modify.object_json)
        except json.JSONDecodeError:
            return "its modified object is not valid JSON"
        if not isinstance(replaced, dict):
            return f"its modified object is a JSON {type(replaced).__name__}, not an object"
    return None


class ObjectHooks:
    """Runs before_* hooks and queues after_* notifications, on the control plane."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], host: PluginHost) -> None:
        self.sessions = sessions
        self.host = host

    async def watchers(
        self, object_type: str, event: str, exclude: str | None = None, session: AsyncSession | None = None
    ) -> list[Watcher]:
        """Plugins that hook `event` of `object_type`, in calling order; never the plugin `exclude`."""
        if session is None:
            async with self.sessions() as own:
                return await self.watchers(object_type, event, exclude, own)
        rows = await all_plugins(session)
        approvals = await all_approvals(session)
        return [w for w in _watchers(rows, approvals, object_type, event) if w.slug != exclude]

    async def hooking(self, events: set[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
        """For each (object type, event), the slugs of the plugins that hook it now (one read)."""
        async with self.sessions() as session:
            rows = await all_plugins(session)
            approvals = await all_approvals(session)
        return {pair: {w.slug for w in _watchers(rows, approvals, *pair)} for pair in events}

    async def before(
        self,
        object_type: str,
        event: str,
        obj: Mapping[str, Any],
        *,
        by: ChangedBy,
        previous: Mapping[str, Any] | None = None,
        subject: str | None = None,
        check: Check | None = None,
        replaced_by: list[str] | None = None,
    ) -> dict[str, Any]:
        """Run the before_* hooks of a change; the object to store (replaced by hooks, checked).

        `subject` is the slug of a plugin object being changed: its own hooks are not called. The
        plugins that replaced the object are appended to `replaced_by`.
        """
        current = dict(obj)
        for watcher in await self.watchers(object_type, event, exclude=subject):
            request = pb.ObjectHookRequest(
                context=pb.RequestContext(request_id=by.request_id),
                event=event,
                object_type=object_type,
                object_json=json.dumps(current),
                previous_json=json.dumps(dict(previous)) if previous is not None else "",
                actor=by.actor,
            )
            try:
                answer = await self.host.client(watcher.slug).handle_object_hook(request, watcher.timeout_s)
                refusal = _refusal_of(answer, event)
            except PluginCallError as exc:
                # What the plugin said stays in the log: it may hold paths or secrets of its own.
                log.warning(
                    "object hook call failed", plugin=watcher.slug, object_event=event, error=str(exc)
                )
                refusal = _CALL_FAILURES.get(exc.code, "its call failed").format(
                    ms=round(watcher.timeout_s * 1000)
                )
            except PluginNotLoadedError:
                refusal = "it is not running on this server"
            if refusal is not None:
                OBJECT_HOOK_CALLS.labels(watcher.slug, event, "error").inc()
                if watcher.fail_open:
                    log.warning(
                        "object hook failed; its policy is fail_open",
                        plugin=watcher.slug,
                        object_event=event,
                        reason=refusal,
                    )
                    continue
                raise UnavailableError(
                    f"plugin {watcher.slug}'s {event} hook on {object_type} failed ({refusal}), so the "
                    "change was not made; fix or deactivate the plugin, "
                    "or set its failure_policy to fail_open"
                )
            decision = answer.WhichOneof("decision")
            OBJECT_HOOK_CALLS.labels(watcher.slug, event, decision or "error").inc()
            if decision == "reject":
                reason = " ".join(answer.reject.reason.split())[:_REASON_LIMIT] or "no reason given"
                raise RejectedByPluginError(f"plugin {watcher.slug} rejected this {object_type}: {reason}")
            if decision == "modify":
                replaced = {
                    k: v for k, v in json.loads(answer.modify.object_json).items() if k not in READ_ONLY
                }
                try:
                    current = check(replaced) if check is not None else replaced
                except InvalidError as exc:
                    raise InvalidError(
                        f"plugin {watcher.slug} changed this {object_type} into one that is not valid: {exc}"
                    ) from None
                if replaced_by is not None:
                    replaced_by.append(watcher.slug)
        return current

    async def queue_after(
        self,
        session: AsyncSession,
        object_type: str,
        event: str,
        obj: Mapping[str, Any],
        *,
        by: ChangedBy,
        previous: Mapping[str, Any] | None = None,
        subject: str | None = None,
    ) -> None:
        """Queue the after_* notifications of a change in `session`'s transaction (the change's own)."""
        for watcher in await self.watchers(object_type, event, subject, session):
            object_deliveries.add(
                session,
                {
                    "plugin_id": watcher.plugin_id,
                    "delivery_id": str(uuid.uuid4()),
                    "event": event,
                    "object_type": object_type,
                    "object_id": str(obj.get("id", "")),
                    "object_json": json.dumps(dict(obj)),
                    "previous_json": json.dumps(dict(previous)) if previous is not None else "",
                    "actor": by.actor,
                    "request_id": by.request_id,
                },
            )
