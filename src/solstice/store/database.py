"""The database engine: SQLite embedded by default, PostgreSQL for several servers; migrations."""

from __future__ import annotations

import errno
import os
import pwd
from functools import partial
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from solstice import safejson
from solstice.sealing import Keyring
from solstice.settings import Settings
from solstice.store.health import health_of
from solstice.store.llm_keys import reseal_llm_keys

log = structlog.get_logger("solstice.store")

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant works; it only has to be the same in every Solstice server sharing a database.
_MIGRATION_LOCK_ID = 5_317_001
_ASYNC_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}


class DatabaseError(RuntimeError):
    """The database cannot be used as configured."""


def database_url(settings: Settings) -> str:
    """The SQLAlchemy async URL: SOLSTICE_DATABASE_URL, else SQLite in the data directory."""
    if settings.database_url:
        url = make_url(settings.database_url)
        if url.drivername in _ASYNC_DRIVERS:
            url = url.set(drivername=_ASYNC_DRIVERS[url.drivername])
        if url.get_backend_name() not in ("postgresql", "sqlite"):
            raise DatabaseError(
                f"SOLSTICE_DATABASE_URL uses {url.get_backend_name()!r}; use postgresql://… or sqlite:///…"
            )
        return url.render_as_string(hide_password=False)
    path = settings.data_dir / "solstice.db"
    return f"sqlite+aiosqlite:///{path}"


def _sqlite_pragmas(dbapi_connection: Any, record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers proceed during a write; busy_timeout makes writers queue instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(settings: Settings) -> AsyncEngine:
    """An async engine for the configured database; creates the SQLite directory if needed."""
    url = database_url(settings)
    # A stored JSON value that cannot be read back is shown as unreadable instead of failing the query.
    json_io: dict[str, Any] = {"json_serializer": safejson.dumps, "json_deserializer": safejson.stored_loads}
    # Parameters hold secrets (an LLM's upstream key): never in an error message or a log record.
    json_io["hide_parameters"] = True
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30}, **json_io)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    else:
        engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **json_io)
    health_of(engine)  # watches every write from the first: /readyz reports a store that cannot write
    return engine


def data_dir_problem(settings: Settings) -> str | None:
    """Why the data directory cannot hold the SQLite database, in one sentence, or None."""
    if settings.database_url:
        return None  # the database lives elsewhere; its own errors name it
    directory = settings.data_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".solstice-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        database = directory / "solstice.db"
        if database.exists() and not os.access(database, os.W_OK):
            raise PermissionError(errno.EACCES, "the database file is read-only")
    except OSError as exc:
        return (
            f"the data directory {directory} is not writable ({exc.strerror or exc}); make it writable "
            f"by user {_user()} or set SOLSTICE_DATA_DIR to a writable directory"
        )
    return None


def _user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def session_factory(engine: AsyncEngine, keyring: Keyring | None = None) -> async_sessionmaker[Any]:
    """Sessions that keep loaded rows usable after commit, carrying the keyring of stored secrets."""
    return async_sessionmaker(engine, expire_on_commit=False, info={"keyring": keyring})


def _upgrade(connection: Connection, keyring: Keyring | None) -> None:
    if connection.dialect.name == "postgresql":
        # Several servers may start at once against one database: migrate one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["keyring"] = keyring
    command.upgrade(config, "head")
    if keyring is not None:
        # Completes a key rotation: values under a key now in SOLSTICE_SECRET_KEYS_OLD move to the new one.
        unreadable = reseal_llm_keys(connection, keyring)
        if unreadable:
            log.error(
                "the upstream keys of these LLMs were encrypted with a key this server does not have; "
                "add it to SOLSTICE_SECRET_KEYS_OLD or set each api_key again",
                llms=unreadable,
            )


async def migrate(engine: AsyncEngine, keyring: Keyring | None = None) -> None:
    """Bring the schema to the newest migration, and stored secrets under the keyring's current key."""
    async with engine.begin() as connection:
        await connection.run_sync(partial(_upgrade, keyring=keyring))
