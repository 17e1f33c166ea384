"""What the API's write routes share for object hooks: the hooks, the request id, and the check
that a hook's replacement object is valid as if the user had sent it."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from pydantic import BaseModel, ValidationError

from solstice.api.auth import Principal
from solstice.api.problems import describe_validation
from solstice.control.errors import InvalidError
from solstice.control.object_hooks import READ_ONLY, ChangedBy, ObjectHooks


def hooks_of(request: Request) -> ObjectHooks:
    """The control plane's object hooks."""
    hooks: ObjectHooks = request.app.state.object_hooks
    return hooks


def changed_by(request: Request, principal: Principal) -> ChangedBy:
    """Who is making a change: the token's name and the request's id (from the middleware)."""
    return ChangedBy(principal.name, str(getattr(request.state, "request_id", "")))


def writable(view: dict[str, Any]) -> dict[str, Any]:
    """An object's view without what a hook cannot set."""
    return {key: value for key, value in view.items() if key not in READ_ONLY}


def checked(
    schema: type[BaseModel],
    obj: dict[str, Any],
    *,
    unset: bool = False,
    by_alias: bool = False,
    nullable: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """`obj` (without its read-only fields) validated by `schema` and dumped again (without unset
    fields with `unset`), or InvalidError; null is refused where a stored value cannot be null."""
    try:
        model = schema.model_validate(writable(obj))
    except ValidationError as exc:
        raise InvalidError(describe_validation(exc.errors())) from None
    dumped = model.model_dump(exclude_unset=unset, exclude_none=not unset, by_alias=by_alias)
    nulls = sorted(key for key, value in dumped.items() if value is None and key not in nullable)
    if nulls:
        raise InvalidError(f"{nulls[0]} cannot be null")
    return dumped


def checker(schema: type[BaseModel], **options: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`checked` with `schema` and `options`, for ObjectHooks.before."""
    return lambda obj: checked(schema, obj, **options)


def changes_from(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The writable fields of `after` that differ from `before`."""
    return {key: value for key, value in writable(after).items() if before.get(key) != value}


# One change at a time per object on this server: a read-modify-write (and the `previous` its
# hooks see) is not interleaved with another. Servers sharing PostgreSQL also lock the row.
_LOCKS: defaultdict[tuple[str, int], asyncio.Lock] = defaultdict(asyncio.Lock)


@contextlib.asynccontextmanager
async def one_change_at_a_time(object_type: str, object_id: int) -> AsyncIterator[None]:
    """Hold the lock of one object while it is read, judged and changed."""
    key = (object_type, object_id)
    lock = _LOCKS[key]
    try:
        async with lock:
            yield
    finally:
        if not lock.locked() and not getattr(lock, "_waiters", None):
            _LOCKS.pop(key, None)
