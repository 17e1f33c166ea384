"""Edge gateways: upserted by each sync, listed by the API, told to reload."""

from __future__ import annotations

from sqlalchemy import CursorResult, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import EdgeRow, utcnow


async def record_sync(
    session: AsyncSession, edge_id: str, name: str, namespace: str, address: str, applied: str
) -> EdgeRow:
    """Create or refresh an edge's row from one sync request (its heartbeat)."""
    row = await session.get(EdgeRow, edge_id)
    if row is None:
        row = EdgeRow(id=edge_id, first_seen=utcnow())
        session.add(row)
    row.name, row.namespace, row.address, row.applied_version = name, namespace, address, applied
    row.last_seen = utcnow()
    await session.flush()
    return row


async def reload_generation(session: AsyncSession, edge_id: str) -> int:
    """The edge's current reload generation (0 for an unknown edge)."""
    value = await session.scalar(select(EdgeRow.reload_generation).where(EdgeRow.id == edge_id))
    return int(value or 0)


async def all_edges(session: AsyncSession) -> list[EdgeRow]:
    """Every edge that ever synced, by id."""
    return list((await session.scalars(select(EdgeRow).order_by(EdgeRow.id))).all())


async def request_reload(
    session: AsyncSession, edge_id: str | None = None, namespace: str | None = None
) -> int:
    """Bump the reload generation of one edge or of a namespace's edges; how many rows changed."""
    statement = update(EdgeRow).values(reload_generation=EdgeRow.reload_generation + 1)
    if edge_id is not None:
        statement = statement.where(EdgeRow.id == edge_id)
    if namespace is not None:
        statement = statement.where(EdgeRow.namespace == namespace)
    result = await session.execute(statement)
    # An UPDATE answers with a CursorResult, the kind that counts the rows it changed.
    assert isinstance(result, CursorResult)
    return int(result.rowcount or 0)
