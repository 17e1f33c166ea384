"""Two servers sharing one PostgreSQL database follow each other's plugin changes."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import ROOT, TESTBED, pid_alive, wait_until
from tests.postgres import Postgres
from tests.server import Server

SERVICES = ROOT / "tests" / "plugins" / "services.py"


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
        there = wait_until(
            lambda: _pid(second, "shared"), 15, what="the second server to start the new plugin"
        )
        here = _pid(first, "shared")
        assert there != here and there in second.plugin_pids() and here in first.plugin_pids()

        with first.client() as client:
            assert client.post("/api/v1/plugins/shared/reload").status_code == 200
        wait_until(
            lambda: _pid(second, "shared") not in (None, there),
            15,
            what="the second server to reload the plugin",
        )
        wait_until(  # the old instance drains, then stops
            lambda: not pid_alive(there), 15, what="the second server's old instance to stop"
        )

        with first.client() as client:
            assert client.patch("/api/v1/plugins/shared", json={"is_active": False}).status_code == 200
        wait_until(lambda: not second.plugin_pids(), 15, what="the second server to stop the plugin")
        with second.client() as client:
            assert client.get("/api/v1/plugins/shared").json()["status"] == "inactive"

        with second.client() as client:
            assert client.patch("/api/v1/plugins/shared", json={"is_active": True}).status_code == 200
        wait_until(lambda: len(first.plugin_pids()) == 1, 15, what="the first server to restart the plugin")
        with second.client() as client:
            assert client.delete("/api/v1/plugins/shared").status_code == 204
        wait_until(
            lambda: not first.plugin_pids() and not second.plugin_pids(),
            15,
            what="both servers to stop the deleted plugin",
        )
    finally:
        assert first.stop() == 0
        assert second.stop() == 0


def test_plugin_data_is_shared_by_servers_on_one_database(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.new_database()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = Server(tmp_path / "a", database_url=url)
    second = Server(tmp_path / "b", database_url=url)
    try:
        first.wait_ready()
        second.wait_ready()
        with first.client() as client:
            created = client.post("/api/v1/plugins", json={
                "name": "services", "command": f"file://{SERVICES}", "hook_types": ["custom_endpoint"],
            })  # fmt: skip
            assert created.status_code == 201, created.text
            approved = client.post(
                "/api/v1/plugins/services/scopes/approve", json={"scopes": ["kv.readwrite"]}
            )
            assert approved.status_code == 200, approved.text
        wait_until(lambda: _pid(second, "services"), 15, what="the second server to start the plugin")
        # Each server runs its own plugin process; both store in the one database.
        put = httpx.put(f"{first.url}/plugins/services/kv/shared", content=b"from the first")
        assert put.status_code == 200, put.text
        read = wait_until(
            lambda: (
                (r := httpx.get(f"{second.url}/plugins/services/kv/shared")).status_code == 200 and r.json()
            ),
            15,
            what="the second server's plugin to be approved and read",
        )
        assert read == {"result": "from the first"}
        with second.client() as client:
            assert client.delete("/api/v1/plugins/services/data").json()["deleted_keys"] == 1
        assert httpx.get(f"{first.url}/plugins/services/kv/shared").json() == {"result": None}
    finally:
        first.stop()
        second.stop()
