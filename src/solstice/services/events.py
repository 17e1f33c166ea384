"""The events.publish call: a structured event checked before it reaches the log and the audit log."""

from __future__ import annotations

import re
from typing import Any

from solstice import safejson
from solstice.protocol import pb

MAX_EVENT_BYTES = 16 << 10
_TYPE = re.compile(r"[A-Za-z0-9._-]{1,64}")


class EventError(ValueError):
    """An event that cannot be published; the message says what to send instead."""


def event_of(call: pb.Event) -> tuple[str, dict[str, Any]]:
    """The event's type and data, checked."""
    if not _TYPE.fullmatch(call.type):
        raise EventError(
            f"event type {call.type[:80]!r} is not 1 to 64 letters, digits, '.', '_' or '-'; "
            "name it like 'webhook.received'"
        )
    if len(call.data_json.encode()) > MAX_EVENT_BYTES:
        raise EventError(f"the data of event {call.type} is over {MAX_EVENT_BYTES} bytes; send less")
    try:
        data = safejson.loads(call.data_json or "{}")
    except ValueError as exc:
        raise EventError(f"the data of event {call.type} {exc}") from None
    if not isinstance(data, dict):
        raise EventError(f"the data of event {call.type} is a JSON {type(data).__name__}; send an object")
    return call.type, data
