"""The policy through the REST API of a real `solstice serve`: 400 with the reason, warnings in the answer."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from solstice.security.policy import INTERNAL_WARNING, PATH_WARNING
from tests.conftest import TESTBED, Standalone
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
