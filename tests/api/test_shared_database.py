"""Two servers sharing one PostgreSQL database follow each other's plugin changes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import TESTBED, pid_alive
from tests.postgres import Postgres
from tests.server import Server


def _eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def _pid(server: Server, slug: str) -> int | None:
    with server.client() as client:
        response = client.get(f"/api/v1/plugins/{slug}/health")
    return response.json().get("pid") if response.status_code == 200 else None


def test_changes_on_one_server_reach_the_other(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Server(tmp_path / "a", database_url=url)
    second = Server(tmp_path / "b", database_url=url)
    try:
        first.wait_ready()
        second.wait_ready()
        with first.client() as client:
            created = client.post(
                "/api/v1/plugins",
                json={"name": "Shared", "command": f"file://{TESTBED}", "hook_type": "pre_auth"},
            )
        assert created.status_code == 201
        _eventually(lambda: _pid(second, "shared") is not None)
        there = _pid(second, "shared")
        here = _pid(first, "shared")
        assert there != here and there in second.plugin_pids() and here in first.plugin_pids()

        with first.client() as client:
            assert client.post("/api/v1/plugins/shared/reload").status_code == 200
        _eventually(lambda: _pid(second, "shared") not in (None, there))
        assert there is not None
        _eventually(lambda: not pid_alive(there))  # the old instance drains, then stops

        with first.client() as client:
            assert client.patch("/api/v1/plugins/shared", json={"is_active": False}).status_code == 200
        _eventually(lambda: not second.plugin_pids())
        with second.client() as client:
            assert client.get("/api/v1/plugins/shared").json()["status"] == "inactive"

        with second.client() as client:
            assert client.patch("/api/v1/plugins/shared", json={"is_active": True}).status_code == 200
        _eventually(lambda: len(first.plugin_pids()) == 1)
        with second.client() as client:
            assert client.delete("/api/v1/plugins/shared").status_code == 204
        _eventually(lambda: not first.plugin_pids() and not second.plugin_pids())
    finally:
        assert first.stop() == 0
        assert second.stop() == 0
