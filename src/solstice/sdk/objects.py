"""Object hooks in the plugin SDK: which changes a plugin sees, the change it is handed, its answers."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from solstice.hooks import OBJECT_EVENTS, OBJECT_TYPES
from solstice.protocol import pb


class ObjectHookError(ValueError):
    """A registration naming an object type or event Solstice does not have."""


@dataclass(frozen=True)
class ObjectHook:
    """The events of one object type a plugin wants: on_object is called for each.

    `object_type` is "llm", "app" or "plugin"; `events` are before_create, before_update,
    before_delete, after_create, after_update or after_delete. Lower `priority` runs first.
    """

    object_type: str
    events: Sequence[str]
    priority: int = 0

    def __post_init__(self) -> None:
        if self.object_type not in OBJECT_TYPES:
            raise ObjectHookError(
                f"object type {self.object_type!r} is not hookable; use one of {', '.join(OBJECT_TYPES)}"
            )
        if isinstance(self.events, str) or not self.events:
            raise ObjectHookError(
                f"object hook events must be a non-empty list, not {self.events!r}; "
                f"use one or more of {', '.join(OBJECT_EVENTS)}"
            )
        unknown = [event for event in self.events if event not in OBJECT_EVENTS]
        if unknown:
            raise ObjectHookError(
                f"object hook event {unknown[0]!r} is not valid; "
                f"use one or more of {', '.join(OBJECT_EVENTS)}"
            )

    def as_message(self) -> pb.ObjectHookRegistration:
        """The registration as GetInfo reports it."""
        return pb.ObjectHookRegistration(
            object_type=self.object_type, events=list(self.events), priority=self.priority
        )


@dataclass(frozen=True)
class ObjectChange:
    """One change to an LLM, app or plugin, as `Plugin.on_object` receives it."""

    event: str
    object_type: str
    # The object's writable fields (and id once stored), never a secret.
    object: dict[str, Any]
    # before_update and after_update: the object before the change.
    previous: dict[str, Any] | None
    actor: str
    # after_*: the same on every retry of one notification.
    delivery_id: str
    context: pb.RequestContext

    @property
    def before(self) -> bool:
        """Whether the change is not stored yet (a before_* event, which may be refused)."""
        return self.event.startswith("before_")

    @classmethod
    def from_request(cls, request: pb.ObjectHookRequest) -> ObjectChange:
        """The change an ObjectHookRequest describes."""
        return cls(
            event=request.event,
            object_type=request.object_type,
            object=json.loads(request.object_json) if request.object_json else {},
            previous=json.loads(request.previous_json) if request.previous_json else None,
            actor=request.actor,
            delivery_id=request.delivery_id,
            context=request.context,
        )


def allow_object() -> pb.ObjectHookResponse:
    """Let the change be stored as it is."""
    return pb.ObjectHookResponse(allow=pb.AllowObject())


def reject_object(reason: str) -> pb.ObjectHookResponse:
    """Refuse the change: the API answers 422 with `reason` and the plugin's name."""
    return pb.ObjectHookResponse(reject=pb.RejectObject(reason=reason))


def replace_object(obj: Mapping[str, Any]) -> pb.ObjectHookResponse:
    """Store `obj` (the whole object, changed) instead; it is checked as if the user had sent it."""
    return pb.ObjectHookResponse(modify=pb.ModifyObject(object_json=json.dumps(dict(obj))))
