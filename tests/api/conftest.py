"""API fixtures: a PostgreSQL server for the session; per module and database, the app in this process
(most tests) or a `solstice serve` process (tests that need a real port)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inprocess import InProcess, app_settings
from tests.postgres import Postgres
from tests.server import Server


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    server = Postgres()
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A data directory and a database URL ('' means SQLite in the data directory)."""
    data_dir = tmp_path_factory.mktemp(f"data-{request.param}")
    url = request.getfixturevalue("postgres").new_database() if request.param == "postgresql" else ""
    return data_dir, url


@pytest.fixture(scope="module")
def api(database: tuple[Path, str]) -> Iterator[Server]:
    """A running server shared by the tests of one module; tests use their own slugs."""
    data_dir, url = database
    server = Server(data_dir, database_url=url).wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def app(database: tuple[Path, str]) -> Iterator[InProcess]:
    """The app in this process, shared by the tests of one module; tests use their own slugs."""
    data_dir, url = database
    running = InProcess(app_settings(data_dir, database_url=url)).start()
    yield running
    running.stop()
