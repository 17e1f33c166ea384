"""Alembic environment: Solstice runs migrations itself, on a connection it passes in."""

from __future__ import annotations

from alembic import context

from solstice.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through solstice.store.database.migrate(), which passes a connection")

context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
