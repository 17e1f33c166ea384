"""API tokens: creation, lookup by hash, revocation. Secrets are never stored."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import TokenRow, utcnow

TOKEN_PREFIX = "sol_"


def hash_token(token: str) -> str:
    """SHA-256 hex of a token: tokens carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    """A fresh random token."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


async def create_token(session: AsyncSession, name: str, scope: str) -> tuple[TokenRow, str]:
    """Store a new token and return its row and its secret (shown once)."""
    secret = new_token()
    row = TokenRow(name=name, scope=scope, token_hash=hash_token(secret), prefix=secret[:10])
    session.add(row)
    await session.flush()
    return row, secret


async def find_token(session: AsyncSession, token: str) -> TokenRow | None:
    """The live (not revoked) token row matching a presented secret."""
    digest = hash_token(token)
    row = (await session.execute(select(TokenRow).where(TokenRow.token_hash == digest))).scalar_one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return row


async def list_tokens(session: AsyncSession) -> list[TokenRow]:
    """Every token, revoked ones included, newest last."""
    return list((await session.execute(select(TokenRow).order_by(TokenRow.id))).scalars())


async def revoke_token(session: AsyncSession, token_id: int) -> TokenRow | None:
    """Mark a token revoked; returns it, or None when there is no such token."""
    row = await session.get(TokenRow, token_id)
    if row is not None and row.revoked_at is None:
        row.revoked_at = utcnow()
    return row


async def has_admin_token(session: AsyncSession) -> bool:
    """True when a live admin token is stored."""
    query = select(TokenRow.id).where(TokenRow.scope == "admin", TokenRow.revoked_at.is_(None)).limit(1)
    return (await session.execute(query)).first() is not None


async def touch_token(session: AsyncSession, token_id: int) -> None:
    """Record that a token was just used."""
    await session.execute(update(TokenRow).where(TokenRow.id == token_id).values(last_used_at=utcnow()))
