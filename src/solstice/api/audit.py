"""/api/v1/audit: who did what to which plugin or token, when, and how it ended."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from solstice.api.auth import Principal, require_read
from solstice.api.schemas import AuditEntry
from solstice.store.audit import recent
from solstice.store.plugins import MAX_ID

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry])
async def list_entries(
    request: Request,
    target: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    principal: Principal = Depends(require_read),
) -> list[AuditEntry]:
    """Audit entries, newest first; `target` filters by plugin slug."""
    async with request.app.state.sessions() as session:
        rows = await recent(session, limit, offset, target)
    return [
        AuditEntry(
            id=r.id,
            at=r.at,
            actor=r.actor,
            action=r.action,
            target=r.target,
            result=r.result,
            detail=r.detail,
        )
        for r in rows
    ]
