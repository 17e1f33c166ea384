"""The policy through the REST API of a real `solstice serve`: 400 with the reason, warnings in the answer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from solstice.security.policy import INTERNAL_WARNING, PATH_WARNING
from tests.conftest import TESTBED, Standalone, wait_until
from tests.server import Server


@pytest.fixture
def remote(standalone: type[Standalone]) -> Standalone:
    return standalone()


@pytest.fixture
def strict(tmp_path: Path, remote: Standalone) -> Iterator[Server]:
    """A server with an allowlist: the tests' plugin tree and one gRPC server on 127.0.0.1."""
    env = {
        "ALLOW_INTERNAL_NETWORK_ACCESS": "false",
        "PLUGIN_COMMAND_ALLOWLIST": f"{TESTBED.parent}/*, grpc://127.0.0.1:{remote.port}",
    }
    server = Server(tmp_path, env=env).wait_ready()
    yield server
    server.stop()


def create(server: Server, command: str) -> httpx.Response:
    body = {"name": "p", "slug": f"p-{uuid.uuid4().hex[:8]}", "command": command, "hook_type": "pre_auth"}
    with server.client() as client:
        return client.post("/api/v1/plugins", json=body)


def test_refusals_are_400_with_the_policy_reason(strict: Server) -> None:
    for command, fragment in [
        ("grpc://10.0.0.1:50051", "matches no entry of PLUGIN_COMMAND_ALLOWLIST"),
        ("file:///usr/bin/true", "matches no path glob in PLUGIN_COMMAND_ALLOWLIST"),
        ("file://./my-plugin", "file:///usr/local/bin/my-plugin"),
        ("grpc://user:secret@plugins.example.com:50051", "must not carry credentials"),
    ]:
        answer = create(strict, command)
        assert answer.status_code == 400, answer.text
        assert fragment in answer.json()["detail"]
        assert "secret" not in answer.text


def test_allowlisted_internal_target_runs_although_internal_access_is_off(
    strict: Server, remote: Standalone
) -> None:
    answer = create(strict, remote.command)
    assert answer.status_code == 201, answer.text
    plugin = answer.json()
    assert plugin["status"] == "healthy", plugin
    assert plugin["warnings"] == []  # listed on purpose: no internal-address warning


def test_changing_a_command_to_a_refused_one_keeps_the_plugin(strict: Server) -> None:
    created = create(strict, f"file://{TESTBED}").json()
    assert created["warnings"] == [PATH_WARNING]
    with strict.client() as client:
        answer = client.patch(f"/api/v1/plugins/{created['id']}", json={"command": "grpc://10.1.1.1:1"})
        assert answer.status_code == 400, answer.text
        assert client.get(f"/api/v1/plugins/{created['id']}").json()["command"] == f"file://{TESTBED}"


def test_internal_access_allowed_carries_the_warning(tmp_path: Path, remote: Standalone) -> None:
    server = Server(tmp_path).wait_ready()  # the test servers set ALLOW_INTERNAL_NETWORK_ACCESS=true
    try:
        plugin = create(server, remote.command).json()
        assert plugin["warnings"] == [INTERNAL_WARNING]
        assert "PLUGIN SECURITY WARNING: Plugin command targets internal network address" in server.log()
    finally:
        server.stop()


def test_a_bad_allowlist_stops_the_server_at_start_with_one_sentence(tmp_path: Path) -> None:
    env = {**os.environ, "PLUGIN_COMMAND_ALLOWLIST": "grpc://10.0.0.0/99", "SOLSTICE_DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "solstice", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert done.stderr.startswith("solstice: PLUGIN_COMMAND_ALLOWLIST entry 'grpc://10.0.0.0/99' is invalid")
    assert done.stderr.count("\n") == 1


def test_warnings_found_by_a_crash_restart_reach_the_api(tmp_path: Path) -> None:
    # The OCI cache is a standard directory: a symlink there starts without a path warning.
    inside = tmp_path / "oci-cache" / "local" / "plugin.py"
    inside.parent.mkdir(parents=True)
    inside.write_bytes(TESTBED.read_bytes())
    inside.chmod(0o755)
    link = inside.with_name("plugin")
    link.symlink_to(inside)
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            created = create(server, f"file://{link}").json()
            assert created["warnings"] == [], created
            health = client.get(f"/api/v1/plugins/{created['id']}/health").json()
            # The link now leads outside the standard directories; the restart's check notices.
            outside = tmp_path / "elsewhere" / "plugin.py"
            outside.parent.mkdir()
            outside.write_bytes(TESTBED.read_bytes())
            outside.chmod(0o755)
            link.unlink()
            link.symlink_to(outside)
            os.kill(health["pid"], signal.SIGKILL)
            url = f"/api/v1/plugins/{created['id']}"

            def warned() -> dict[str, Any] | None:
                plugin: dict[str, Any] = client.get(url).json()
                return plugin if plugin["warnings"] else None

            plugin = wait_until(
                warned, 20, lambda: client.get(url).text, what="the restarted plugin's warnings"
            )
        assert plugin["warnings"] == [PATH_WARNING], plugin
    finally:
        server.stop()
