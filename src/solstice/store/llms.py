"""Reading and writing LLMs and their plugin chains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from solstice.store.models import LLMPluginRow, LLMRow, PluginRow
from solstice.store.plugins import MAX_ID


async def get_llm(session: AsyncSession, ref: str) -> LLMRow | None:
    """An LLM by numeric id or by slug."""
    if ref.isascii() and ref.isdigit() and int(ref) <= MAX_ID:
        row = await session.get(LLMRow, int(ref))
        if row is not None:
            return row
    return (await session.execute(select(LLMRow).where(LLMRow.slug == ref))).scalar_one_or_none()


async def all_llms(session: AsyncSession) -> list[LLMRow]:
    """Every LLM, ordered by id."""
    return list((await session.execute(select(LLMRow).order_by(LLMRow.id))).scalars())


async def chain_of(session: AsyncSession, llm_id: int) -> list[tuple[LLMPluginRow, PluginRow]]:
    """An LLM's chain entries with their plugins, in order."""
    query = (
        select(LLMPluginRow, PluginRow)
        .join(PluginRow, PluginRow.id == LLMPluginRow.plugin_id)
        .where(LLMPluginRow.llm_id == llm_id)
        .order_by(LLMPluginRow.position)
    )
    return [(entry, plugin) for entry, plugin in (await session.execute(query)).all()]


async def all_chain_entries(session: AsyncSession) -> list[LLMPluginRow]:
    """Every chain entry of every LLM."""
    return list(
        (
            await session.execute(select(LLMPluginRow).order_by(LLMPluginRow.llm_id, LLMPluginRow.position))
        ).scalars()
    )


async def entries_for_plugin(session: AsyncSession, plugin_id: int) -> list[LLMPluginRow]:
    """The chain entries that use a plugin."""
    query = select(LLMPluginRow).where(LLMPluginRow.plugin_id == plugin_id).order_by(LLMPluginRow.llm_id)
    return list((await session.execute(query)).scalars())


async def replace_chain(session: AsyncSession, llm_id: int, entries: Sequence[dict[str, Any]]) -> None:
    """Make `entries` (plugin_id, config_override, timeout_ms, failure_policy) the LLM's chain."""
    await session.execute(delete(LLMPluginRow).where(LLMPluginRow.llm_id == llm_id))
    for position, entry in enumerate(entries):
        session.add(LLMPluginRow(llm_id=llm_id, position=position, **entry))
    await session.flush()
