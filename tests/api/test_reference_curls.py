"""The reference page's curl commands against a real server, as written (real token, real paths)."""

from __future__ import annotations

import json
import subprocess

from tests.conftest import TESTBED
from tests.server import Server


def _curl(*args: str) -> tuple[int, dict[str, object]]:
    done = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    body, _, code = done.stdout.rpartition("\n")
    return int(code), json.loads(body) if body else {}


def test_file_plugin_curl(api: Server) -> None:
    body = f"""{{
    "name": "My Plugin",
    "slug": "my-plugin",
    "command": "file://{TESTBED}",
    "hook_type": "pre_auth",
    "plugin_type": "gateway",
    "is_active": true
  }}"""
    code, plugin = _curl(
        "-X", "POST", f"{api.url}/api/v1/plugins",
        "-H", f"Authorization: Bearer {api.token}",
        "-H", "Content-Type: application/json",
        "-d", body,
    )  # fmt: skip
    assert code == 201, plugin
    assert plugin["slug"] == "my-plugin"
    assert plugin["status"] == "healthy"
    assert plugin["command"] == f"file://{TESTBED}"


def test_docker_curl_without_content_type(api: Server) -> None:
    # `curl -d` with no Content-Type sends application/x-www-form-urlencoded; the body is JSON.
    code, plugin = _curl(
        "-X", "POST", f"{api.url}/api/v1/plugins",
        "-H", f"Authorization: Bearer {api.token}",
        "-d", f'{{"command": "file://{TESTBED}", "name": "Docker Plugin", "hook_type": "pre_auth"}}',
    )  # fmt: skip
    assert code == 201, plugin
    assert plugin["slug"] == "docker-plugin"


def test_remote_plugin_curl(api: Server, standalone) -> None:
    remote = standalone()
    body = f"""{{
    "name": "My Remote Plugin",
    "slug": "my-remote-plugin",
    "command": "{remote.command}",
    "hook_type": "pre_auth",
    "plugin_type": "gateway",
    "is_active": true
  }}"""
    code, plugin = _curl(
        "-X", "POST", f"{api.url}/api/v1/plugins", "-H", f"Authorization: Bearer {api.token}", "-d", body
    )  # fmt: skip
    assert code == 201, plugin
    assert plugin["status"] == "healthy"
    code, health = _curl(
        f"{api.url}/api/v1/plugins/my-remote-plugin/health", "-H", f"Authorization: Bearer {api.token}"
    )
    assert code == 200 and health["status"] == "healthy" and health["pid"] is None


def test_oci_plugin_curl_fields_are_accepted(api: Server) -> None:
    body = """{
    "name": "My OCI Plugin",
    "slug": "my-oci-plugin",
    "command": "oci://registry.example.com/plugins/my-plugin:v1.0.0",
    "oci_reference": "registry.example.com/plugins/my-plugin:v1.0.0",
    "hook_type": "pre_auth",
    "plugin_type": "gateway",
    "is_active": false
  }"""
    code, plugin = _curl(
        "-X", "POST", f"{api.url}/api/v1/plugins", "-H", f"Authorization: Bearer {api.token}", "-d", body
    )  # fmt: skip
    assert code == 201, plugin
    assert plugin["oci_reference"] == "registry.example.com/plugins/my-plugin:v1.0.0"
    assert plugin["status"] == "inactive"


def test_reload_and_health_curls(api: Server) -> None:
    code, created = _curl(
        "-X", "POST", f"{api.url}/api/v1/plugins", "-H", f"Authorization: Bearer {api.token}",
        "-d", f'{{"name": "Reload Me", "command": "file://{TESTBED}", "hook_type": "pre_auth"}}',
    )  # fmt: skip
    assert code == 201
    code, reloaded = _curl(
        "-X",
        "POST",
        f"{api.url}/api/v1/plugins/{created['id']}/reload",
        "-H",
        f"Authorization: Bearer {api.token}",
    )
    assert code == 200 and reloaded["status"] == "healthy"
    code, health = _curl(
        f"{api.url}/api/v1/plugins/{created['id']}/health", "-H", f"Authorization: Bearer {api.token}"
    )
    assert code == 200
    assert health["status"] == "healthy" and isinstance(health["pid"], int)
