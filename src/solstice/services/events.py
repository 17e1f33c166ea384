"""The events.publish call: a structured event checked before it reaches the log and the audit log."""

from __future__ import annotations

import json
import re
from typing import Any

from solstice import safejson
from solstice.protocol import pb

# An event's data as compact JSON, at most: small enough that the whole event fits one audit entry.
MAX_EVENT_CHARS = 1800
# What is read of data_json before it is parsed (whitespace the compact form drops included).
_MAX_RAW_BYTES = 16 << 10
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
    too_big = (
        f"the data of event {call.type} is over {MAX_EVENT_CHARS} characters of JSON; "
        "send less (events are records, not payloads: keep bulk data in kv)"
    )
    if len(call.data_json.encode()) > _MAX_RAW_BYTES:
        raise EventError(too_big)
    try:
        data = safejson.loads(call.data_json or "{}")
    except ValueError as exc:
        raise EventError(f"the data of event {call.type} {exc}") from None
    if not isinstance(data, dict):
        raise EventError(f"the data of event {call.type} is a JSON {type(data).__name__}; send an object")
    if len(compact(data)) > MAX_EVENT_CHARS:
        raise EventError(too_big)
    return call.type, data


def compact(data: dict[str, Any]) -> str:
    """`data` as compact JSON: how event data is measured, and how events reach the audit log."""
    return json.dumps(data, separators=(",", ":"))
