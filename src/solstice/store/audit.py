"""The audit log of plugin and token operations."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import AuditRow


async def record(
    session: AsyncSession, actor: str, action: str, target: str, result: str, detail: str = ""
) -> None:
    """Add one audit entry to the session's transaction."""
    session.add(AuditRow(actor=actor, action=action, target=target, result=result, detail=detail[:2000]))


async def recent(session: AsyncSession, limit: int, offset: int, target: str | None = None) -> list[AuditRow]:
    """Audit entries, newest first."""
    query = select(AuditRow).order_by(AuditRow.id.desc())
    if target is not None:
        query = query.where(AuditRow.target == target)
    return list((await session.execute(query.offset(offset).limit(limit))).scalars())
