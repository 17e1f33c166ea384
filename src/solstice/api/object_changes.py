"""What the API's write routes share for object hooks: the hooks, the request id, and the check
that a hook's replacement object is valid as if the user had sent it."""

from __future__ import annotations

from collections.abc import Callable
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
    schema: type[BaseModel], obj: dict[str, Any], *, unset: bool = False, by_alias: bool = False
) -> dict[str, Any]:
    """`obj` validated by `schema` and dumped again (without unset fields with `unset`), or InvalidError."""
    try:
        model = schema.model_validate(obj)
    except ValidationError as exc:
        raise InvalidError(describe_validation(exc.errors())) from None
    if unset:
        return model.model_dump(exclude_unset=True, by_alias=by_alias)
    return model.model_dump(exclude_none=True, by_alias=by_alias)


def checker(schema: type[BaseModel], **options: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`checked` with `schema` and `options`, for ObjectHooks.before."""
    return lambda obj: checked(schema, obj, **options)


def changes_from(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The fields of `after` that differ from `before`."""
    return {key: value for key, value in after.items() if before.get(key) != value}
