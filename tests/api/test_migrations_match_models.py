"""The migrations build exactly the tables the models describe, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy.engine import Connection

from solstice.sealing import load_keyring
from solstice.settings import Settings
from solstice.store.database import create_engine, migrate
from solstice.store.models import Base
from tests.postgres import Postgres


def _differences(connection: Connection) -> list[object]:
    return list(compare_metadata(MigrationContext.configure(connection), Base.metadata))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrated_schema_matches_the_models(backend: str, tmp_path: Path, postgres: Postgres) -> None:
    url = postgres.new_database() if backend == "postgresql" else ""
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key=Fernet.generate_key().decode())

    async def compare() -> list[object]:
        engine = create_engine(settings)
        try:
            await migrate(engine, load_keyring(settings))
            async with engine.connect() as connection:
                return await connection.run_sync(_differences)
        finally:
            await engine.dispose()

    assert asyncio.run(compare()) == []
