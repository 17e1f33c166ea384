"""Health follows events, not only the periodic check: a grpc:// server that dies is unhealthy at
once (and healthy again when it is back). A silent edge going offline: tests/api/test_sync.py."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TESTBED, Standalone, wait_until
from tests.server import Server

# The periodic check runs once a minute here: only the events can change the status in time.
SLOW_CHECKS = {"SOLSTICE_PLUGIN_HEALTH_INTERVAL": "60"}
DEADLINE_S = 20.0


def _status(server: Server, slug: str) -> dict[str, Any]:
    with server.client() as client:
        return client.get(f"/api/v1/plugins/{slug}").json()


def _wait_status(server: Server, slug: str, wanted: str) -> None:
    """Wait until the API reports `slug` with status `wanted`."""
    wait_until(
        lambda: _status(server, slug)["status"] == wanted, DEADLINE_S, server.log, what=f"{slug}: {wanted}"
    )


def test_a_dead_grpc_plugin_is_unhealthy_at_once_and_healthy_when_back(
    tmp_path: Path, standalone: type[Standalone]
) -> None:
    remote = standalone(TESTBED)
    server = Server(tmp_path, env=SLOW_CHECKS).wait_ready()
    try:
        with server.client() as client:
            body = {"name": "remote", "command": remote.command, "hook_type": "pre_auth"}
            created = client.post("/api/v1/plugins", json=body)
        assert created.json()["status"] == "healthy", created.text
        remote.stop(signal.SIGKILL)
        _wait_status(server, "remote", "unhealthy")
        assert "not reachable" in _status(server, "remote")["last_error"]

        again = standalone(TESTBED, port=remote.port)
        assert again.port == remote.port
        _wait_status(server, "remote", "healthy")
    finally:
        server.stop()


def test_a_failed_call_marks_a_grpc_plugin_unhealthy(tmp_path: Path, standalone: type[Standalone]) -> None:
    remote = standalone(TESTBED)
    server = Server(tmp_path, env=SLOW_CHECKS).wait_ready()
    try:
        with server.client() as client:
            body = {"name": "remote", "command": remote.command, "hook_type": "pre_auth"}
            assert client.post("/api/v1/plugins", json=body).json()["status"] == "healthy"
            client.post("/api/v1/llms", json={"name": "m", "vendor": "mock"}).raise_for_status()
            client.put("/api/v1/llms/m/plugins", json={"plugins": [{"plugin": "remote"}]}).raise_for_status()
        remote.stop(signal.SIGKILL)
        answer = httpx.post(f"{server.url}/llm/m/v1/chat/completions", json={"messages": []}, timeout=30)
        assert answer.status_code == 503
        _wait_status(server, "remote", "unhealthy")
    finally:
        server.stop()
