"""The migration that makes ids never reused, from a database at the previous head holding data."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from solstice.settings import Settings
from solstice.store.database import MIGRATIONS, database_url
from tests.postgres import Postgres

NOW = datetime(2026, 1, 1, tzinfo=UTC)
INT_ID_TABLES = ("plugins", "api_tokens", "audit_log", "llms", "llm_plugins", "apps", "app_keys")


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def _previous_head() -> str:
    """The revision before the one that rebuilds the tables."""
    script = ScriptDirectory(str(MIGRATIONS))
    revision = next(r for r in script.walk_revisions() if "never reused" in (r.doc or ""))
    assert isinstance(revision.down_revision, str)
    return revision.down_revision


def _plugin(number: int, config: str) -> dict[str, Any]:
    return {
        "id": number, "name": f"P{number}", "slug": f"p{number}", "description": "", "command": "file:///x",
        "oci_reference": None, "hook_type": "auth", "hook_types": '["auth"]', "plugin_type": "gateway",
        "is_active": False, "config": config, "namespace": "", "checksum": None, "timeout_ms": 1000,
        "failure_policy": None, "env": "[]", "status": "stopped", "last_error": None, "warnings": "[]",
        "digest": None, "revision": 1, "created_at": NOW, "updated_at": NOW, "is_global": False,
    }  # fmt: skip


def _seed(connection: Connection) -> None:
    """Rows as an older Solstice wrote them: three plugins, an LLM whose chain uses plugin 2, an app."""
    columns = ", ".join(_plugin(1, "{}"))
    values = ", ".join(f":{name}" for name in _plugin(1, "{}"))
    for number in (1, 2, 3):
        connection.execute(
            text(f"INSERT INTO plugins ({columns}) VALUES ({values})"), _plugin(number, f'{{"n": {number}}}')
        )
    connection.execute(
        text(
            "INSERT INTO llms (id, name, slug, vendor, upstream_url, api_key, is_active, options, created_at, "
            "updated_at, namespace) VALUES (1, 'L', 'l', 'mock', '', '', true, '{}', :now, :now, '')"
        ),
        {"now": NOW},
    )
    connection.execute(
        text(
            "INSERT INTO llm_plugins (id, llm_id, plugin_id, position, config_override) "
            "VALUES (1, 1, 2, 0, '{\"o\": 1}')"
        )
    )
    connection.execute(
        text(
            "INSERT INTO apps (id, name, is_active, llm_ids, created_at, updated_at, namespace) "
            "VALUES (1, 'A', true, '[1]', :now, :now, '')"
        ),
        {"now": NOW},
    )
    connection.execute(
        text(
            "INSERT INTO app_keys (id, app_id, name, prefix, key_hash, created_at) "
            "VALUES (1, 1, 'k', 'sk_', :hash, :now)"
        ),
        {"hash": "0" * 64, "now": NOW},
    )


def _check(connection: Connection) -> None:
    """Data kept, and a deleted newest id is not handed out again."""
    configs = connection.execute(text("SELECT id, config FROM plugins ORDER BY id")).all()
    assert [row[0] for row in configs] == [1, 2, 3]
    assert "2" in str(configs[1][1])
    chain = connection.execute(text("SELECT llm_id, plugin_id, config_override FROM llm_plugins")).all()
    assert [(r[0], r[1]) for r in chain] == [(1, 2)] and '"o"' in str(chain[0][2]).replace("'", '"')
    assert connection.execute(text("SELECT count(*) FROM app_keys WHERE app_id = 1")).scalar_one() == 1
    assert connection.execute(text("SELECT is_global FROM plugins WHERE id = 1")).scalar_one() in (False, 0)
    connection.execute(text("DELETE FROM plugins WHERE id = 3"))
    row = _plugin(0, "{}")
    del row["id"]
    row["slug"] = "p-new"
    columns = ", ".join(row)
    values = ", ".join(f":{name}" for name in row)
    new_id = connection.execute(
        text(f"INSERT INTO plugins ({columns}) VALUES ({values}) RETURNING id"), row
    ).scalar_one()
    assert new_id == 4
    if connection.dialect.name == "sqlite":
        for table in INT_ID_TABLES:
            sql = connection.execute(
                text("SELECT sql FROM sqlite_master WHERE name = :t"), {"t": table}
            ).scalar_one()
            assert "AUTOINCREMENT" in sql, sql
        indexes = {
            r[0] for r in connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'index'"))
        }
        assert {"ix_plugins_slug", "ix_plugins_is_active", "ix_plugins_namespace"} <= indexes
        assert connection.execute(text("PRAGMA foreign_key_check")).all() == []


def _migrate_with_data(url: str) -> None:
    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as connection:
                await connection.run_sync(lambda c: command.upgrade(_config(c), _previous_head()))
                await connection.run_sync(_seed)
            async with engine.begin() as connection:
                await connection.run_sync(lambda c: command.upgrade(_config(c), "head"))
            async with engine.begin() as connection:
                await connection.run_sync(_check)
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_keeps_data_and_ids_are_not_reused(backend: str, tmp_path: Path, postgres: Postgres) -> None:
    url = postgres.new_database() if backend == "postgresql" else ""
    _migrate_with_data(database_url(Settings(data_dir=tmp_path, database_url=url)))
