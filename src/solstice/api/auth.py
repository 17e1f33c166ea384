"""Bearer-token authentication and scope checks for /api/v1."""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass

from fastapi import Depends, Request

from solstice.api.problems import Problem
from solstice.store.tokens import find_token, touch_token

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="solstice"'}
# last_used_at is written at most this often per token, so reads stay reads.
_TOUCH_EVERY_S = 60.0


@dataclass(frozen=True)
class Principal:
    """Who is calling: a name for the audit log and a scope."""

    name: str
    scope: str


async def authenticate(request: Request) -> Principal:
    """The caller of this request, or 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "missing bearer token; send 'Authorization: Bearer <token>'", _CHALLENGE)
    state = request.app.state
    configured = _configured_principal(state.settings.admin_token, state.settings.edge_token, token)
    if configured is not None:
        return configured
    async with state.sessions() as session:
        row = await find_token(session, token)
        if row is None:
            raise Problem(
                401,
                "the bearer token is invalid or revoked; create one with `solstice tokens create`",
                _CHALLENGE,
            )
        touched: dict[int, float] = state.token_touches
        now = time.monotonic()
        if now - touched.get(row.id, 0.0) > _TOUCH_EVERY_S:
            touched[row.id] = now
            await touch_token(session, row.id)
            await session.commit()
        return Principal(f"token:{row.name}#{row.id}", row.scope)


def _configured_principal(admin: str, edge: str, token: str) -> Principal | None:
    """The principal of a token set in the environment: one Secret can feed a control plane and its edges."""
    found = None
    # Both comparisons always run, so timing does not tell which variable a guess is close to.
    for name, scope, value in (
        ("SOLSTICE_ADMIN_TOKEN", "admin", admin),
        ("SOLSTICE_EDGE_TOKEN", "edge", edge),
    ):
        if value and hmac.compare_digest(token.encode(), value.encode()) and found is None:
            found = Principal(name, scope)
    return found


async def require_read(principal: Principal = Depends(authenticate)) -> Principal:
    """A read or admin token (an edge token may only sync)."""
    if principal.scope == "edge":
        raise Problem(403, "this token has scope 'edge'; it may only call GET /api/v1/sync")
    return principal


async def require_edge(principal: Principal = Depends(authenticate)) -> Principal:
    """An edge token: the only kind that receives a configuration snapshot, secrets included."""
    if principal.scope != "edge":
        raise Problem(
            403,
            f"this token has scope {principal.scope!r}; syncing needs an edge token "
            "(solstice tokens create NAME --scope edge)",
        )
    return principal


async def require_admin(principal: Principal = Depends(authenticate)) -> Principal:
    """A token with the admin scope, or 403."""
    if principal.scope != "admin":
        raise Problem(403, f"this token has scope {principal.scope!r}; changes need an admin token")
    return principal
