"""LLM upstream keys encrypted at rest: plain-text keys stored before are sealed with the current key.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import context, op
from sqlalchemy import text

from solstice.store.llm_keys import reseal_llm_keys

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    keyring = context.config.attributes.get("keyring")
    if keyring is not None:
        # Without a keyring (a bare upgrade), the next `solstice serve` seals them at start.
        reseal_llm_keys(op.get_bind(), keyring)


def downgrade() -> None:
    keyring = context.config.attributes.get("keyring")
    if keyring is None:
        raise RuntimeError("downgrading past 0004 needs the keyring that opens the stored keys")
    bind = op.get_bind()
    for row_id, stored in bind.execute(text("SELECT id, api_key FROM llms WHERE api_key != ''")).all():
        bind.execute(
            text("UPDATE llms SET api_key = :key WHERE id = :id"), {"key": keyring.open(stored), "id": row_id}
        )
