"""JSON Solstice accepts: finite numbers only, nested at most MAX_DEPTH levels, at most MAX_BYTES.

Every document from a client, a plugin file or the database passes through here: Python's
parser accepts NaN and Infinity (which no JSON encoder writes back) and overflows the stack on
deep nesting, so either breaks whoever reads the value later.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator

MAX_DEPTH = 64
MAX_BYTES = 1 << 20


class JSONValueError(ValueError):
    """A JSON document or value Solstice refuses; `path` names the offending part ('' for the whole)."""

    def __init__(self, reason: str, path: str = "") -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


def parse(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """Parse a document as written; JSONValueError (a ValueError) when it is not JSON or is too deep to parse.

    NaN and Infinity are parsed here so that check() can say where they are.
    """
    try:
        return json.loads(raw)
    except RecursionError:
        raise JSONValueError(_too_deep(max_depth)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise JSONValueError(f"is not valid JSON: {exc}") from None


def body_too_large(limit: int, size: int | None = None) -> str:
    """The 413 text of a request body over `limit` bytes; `size` when known (declared or read)."""
    if size is None:
        return f"request body is over the {limit} byte limit"
    return f"request body is {size} bytes; the limit is {limit}"


def body_refusal(exc: JSONValueError) -> str:
    """The text of a request body refused as JSON, naming the offending part when there is one."""
    return f"request body {exc.path}: {exc.reason}" if exc.path else f"request body {exc.reason}"


def loads(raw: str | bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """parse() then check(): JSONValueError for invalid JSON, non-finite numbers or deep nesting."""
    value = parse(raw, max_depth=max_depth)
    check(value, max_depth=max_depth)
    return value


def dumps(value: Any) -> str:
    """Serialise without NaN or Infinity, which other JSON readers refuse."""
    return json.dumps(value, allow_nan=False)


def _too_deep(max_depth: int) -> str:
    return f"is nested more than {max_depth} levels deep; JSON may nest at most {max_depth} levels"


def check(value: Any, *, max_depth: int = MAX_DEPTH, path: str = "") -> None:
    """Raise JSONValueError naming the first non-finite number or container nested past `max_depth`.

    Iterative, so a value nested deeper than the interpreter's stack is reported rather than crashing.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 1)]
    while stack:
        item, where, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise JSONValueError(f"{item} is not a finite number; JSON numbers must be finite", where)
        if isinstance(item, dict | list):
            if depth > max_depth:
                raise JSONValueError(_too_deep(max_depth), _shorten(where))
            children = (
                ((v, f"{where}.{k}" if where else str(k)) for k, v in item.items())
                if isinstance(item, dict)
                else ((v, f"{where}[{n}]") for n, v in enumerate(item))
            )
            stack.extend((child, child_path, depth + 1) for child, child_path in reversed(list(children)))


def _shorten(path: str, keep: int = 40) -> str:
    """A path a person can read: a deep path is cut after its first characters."""
    return path if len(path) <= keep else f"{path[:keep]}…"


def _checked_object(value: dict[str, Any]) -> dict[str, Any]:
    try:
        check(value)
        size = len(dumps(value).encode())
    except JSONValueError as exc:
        raise ValueError(f"at {exc.path}: {exc.reason}" if exc.path else exc.reason) from None
    except RecursionError:
        raise ValueError(_too_deep(MAX_DEPTH)) from None
    if size > MAX_BYTES:
        raise ValueError(f"is {size} bytes as JSON; the limit is {MAX_BYTES}")
    return value


# A JSON object field (a plugin's config, an override, options): finite, at most MAX_DEPTH deep and MAX_BYTES.
JSONObject = Annotated[dict[str, Any], AfterValidator(_checked_object)]


class Unreadable(dict[str, Any]):
    """An empty stand-in for a stored JSON value that cannot be read back; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


def stored_loads(raw: str | bytes) -> Any:
    """The database's JSON reader: a value that breaks the rules becomes Unreadable, never an exception.

    One bad row (written before inputs were checked, or by hand) must not fail every query that reads it.
    """
    try:
        return loads(raw)
    except (JSONValueError, RecursionError) as exc:
        return Unreadable(getattr(exc, "reason", str(exc)))


def unreadable_reason(value: Any) -> str | None:
    """Why a stored value could not be read, or None when it was read."""
    return value.reason if isinstance(value, Unreadable) else None
