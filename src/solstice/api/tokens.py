"""/api/v1/tokens: create, list and revoke API tokens (admin only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from solstice.api.auth import Principal, require_admin
from solstice.api.body import documented, json_object
from solstice.api.schemas import TokenCreate, TokenCreated, TokenOut
from solstice.control.errors import NotFoundError
from solstice.store import audit
from solstice.store.models import TokenRow
from solstice.store.plugins import MAX_ID
from solstice.store.tokens import create_token, list_tokens, revoke_token

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


def _out(row: TokenRow) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        scope=row.scope,
        prefix=row.prefix,
        created_at=row.created_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


@router.post("", status_code=201, response_model=TokenCreated, openapi_extra=documented(TokenCreate))
async def create(request: Request, principal: Principal = Depends(require_admin)) -> TokenCreated:
    """Create a token; its secret is in this response only."""
    body = TokenCreate.model_validate(await json_object(request))
    async with request.app.state.sessions.begin() as session:
        row, secret = await create_token(session, body.name, body.scope)
        await audit.record(session, principal.name, "token.create", f"token:{body.name}", "ok", body.scope)
    return TokenCreated(**_out(row).model_dump(), token=secret)


@router.get("", response_model=list[TokenOut])
async def list_all(request: Request, principal: Principal = Depends(require_admin)) -> list[TokenOut]:
    """Every token, without secrets."""
    async with request.app.state.sessions() as session:
        return [_out(row) for row in await list_tokens(session)]


@router.delete("/{token_id}", response_model=TokenOut)
async def revoke(
    token_id: Annotated[int, Path(ge=1, le=MAX_ID)],
    request: Request,
    principal: Principal = Depends(require_admin),
) -> TokenOut:
    """Revoke a token; it stops working at once."""
    async with request.app.state.sessions.begin() as session:
        row = await revoke_token(session, token_id)
        if row is None:
            raise NotFoundError(f"no token with id {token_id}; list tokens with GET /api/v1/tokens")
        await audit.record(session, principal.name, "token.revoke", f"token:{row.name}", "ok")
    return _out(row)
