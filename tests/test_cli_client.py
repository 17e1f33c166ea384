"""`solstice plugins` and `solstice tokens` run as a user runs them, against a real server."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import TESTBED
from tests.server import Server, free_port

SOLSTICE = [sys.executable, "-m", "solstice"]
COMMAND = f"file://{TESTBED}"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("cli-data")).wait_ready()
    yield server
    server.stop()


def run(
    api: Server, *args: str, token: str | None = None, url: str | None = None, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The CLI with SOLSTICE_URL/SOLSTICE_TOKEN set (token "" sets none); stdin is not a terminal."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("SOLSTICE_")}
    env["SOLSTICE_URL"] = api.url if url is None else url
    secret = api.token if token is None else token
    if secret:
        env["SOLSTICE_TOKEN"] = secret
    result = subprocess.run(
        [*SOLSTICE, *args],
        env=env,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert api.token not in result.stdout + result.stderr
    return result


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def error(result: subprocess.CompletedProcess[str]) -> str:
    """The message of a failed command, checked to be one `solstice: ...` line with exit status 1."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("solstice: "), result.stderr
    return lines[0].removeprefix("solstice: ")


def row(output: str, key: str) -> str:
    """The line of a table that holds `key`."""
    lines = [line for line in output.splitlines() if re.search(rf"(^|\s){re.escape(key)}(\s|$)", line)]
    assert len(lines) == 1, output
    return lines[0]


def _pid(api: Server, slug: str) -> int:
    with api.client() as client:
        health = client.get(f"/api/v1/plugins/{slug}/health").json()
    assert health["status"] == "healthy", health
    return health["pid"]


def test_plugin_lifecycle(api: Server) -> None:
    slug, namespace = f"cli-{uuid.uuid4().hex[:8]}", f"ns{uuid.uuid4().hex[:6]}"
    created = ok(
        run(
            api, "plugins", "create", "--name", "CLI Testbed", "--slug", slug, "--command", COMMAND,
            "--hook-type", "pre_auth", "--namespace", namespace, "--config", '{"slow_ms": 1}',
        )
    )  # fmt: skip
    assert f"Created plugin {slug}" in created
    assert row(created, "status").split()[-1] == "healthy"

    listed = row(ok(run(api, "plugins", "list", "--namespace", namespace)), slug)
    assert "CLI Testbed" in listed and "pre_auth" in listed and "healthy" in listed and COMMAND in listed
    page = json.loads(ok(run(api, "plugins", "list", "--namespace", namespace, "--json")))
    assert (page["total"], page["data"][0]["slug"]) == (1, slug)
    assert "No plugins match." in ok(run(api, "plugins", "list", "--namespace", namespace, "--inactive"))

    plugin = json.loads(ok(run(api, "plugins", "get", slug, "--json")))
    assert (plugin["status"], plugin["config"]) == ("healthy", {"slow_ms": 1})
    assert row(ok(run(api, "plugins", "get", str(plugin["id"]))), "status").split()[-1] == "healthy"
    health = json.loads(ok(run(api, "plugins", "health", slug, "--json")))
    assert health["status"] == "healthy" and health["pid"] == _pid(api, slug)
    assert "healthy" in row(ok(run(api, "plugins", "health")), slug)
    report = json.loads(ok(run(api, "plugins", "health", "--json")))
    assert any(p["slug"] == slug and p["status"] == "healthy" for p in report["plugins"])
    assert report["summary"]["by_status"]["healthy"] >= 1

    ok(run(api, "plugins", "update", slug, "--config", '{"slow_ms": 7}', "--description", "changed"))
    with api.client() as client:
        stored = client.get(f"/api/v1/plugins/{slug}").json()
    assert (stored["config"], stored["description"]) == ({"slow_ms": 7}, "changed")
    unchanged = (stored["namespace"], stored["hook_types"], stored["name"])
    assert unchanged == (namespace, ["pre_auth"], "CLI Testbed")

    before = _pid(api, slug)
    assert f"Reloaded plugin {slug}" in ok(run(api, "plugins", "reload", slug))
    assert _pid(api, slug) != before

    assert "pass --yes" in error(run(api, "plugins", "delete", slug))
    assert _pid(api, slug)
    assert json.loads(ok(run(api, "plugins", "delete", slug, "--yes", "--json"))) == {"deleted": slug}
    with api.client() as client:
        gone = client.get(f"/api/v1/plugins/{slug}")
    assert gone.status_code == 404
    assert error(run(api, "plugins", "get", slug)) == gone.json()["detail"]


def test_delete_asks_on_a_terminal(api: Server) -> None:
    slug = f"cli-{uuid.uuid4().hex[:8]}"
    create = ("plugins", "create", "--name", "n", "--slug", slug, "--command", COMMAND, "--hook-type", "auth")
    ok(run(api, *create, "--inactive"))
    for answer, deleted in (("n", False), ("y", True)):
        controller, terminal = os.openpty()
        try:
            os.write(controller, f"{answer}\n".encode())
            result = run(api, "plugins", "delete", slug, stdin=terminal)
        finally:
            os.close(terminal)
            os.close(controller)
        assert f"Delete plugin {slug}" in result.stderr
        if deleted:
            assert f"Deleted plugin {slug}" in ok(result)
        else:
            assert result.returncode == 1 and f"plugin {slug} was not deleted" in result.stderr
    with api.client() as client:
        assert client.get(f"/api/v1/plugins/{slug}").status_code == 404


def test_create_options_reach_the_api(api: Server, tmp_path: Path) -> None:
    slug, namespace = f"cli-{uuid.uuid4().hex[:8]}", f"ns{uuid.uuid4().hex[:6]}"
    config_file = tmp_path / "config.json"
    config_file.write_text('{"slow_ms": 3, "nested": {"a": [1, 2]}}')
    checksum = hashlib.sha256(TESTBED.read_bytes()).hexdigest()
    plugin = json.loads(
        ok(
            run(
                api, "plugins", "create", "--json", "--name", "Options", "--slug", slug, "--command", COMMAND,
                "--hook-types", "post_auth, on_response", "--description", "all the options",
                "--plugin-type", "data_collector", "--inactive", "--config-file", str(config_file),
                "--namespace", namespace, "--checksum", checksum, "--timeout-ms", "2500",
                "--failure-policy", "fail_open", "--env", "MY_KEY", "--env", "OTHER_KEY",
            )
        )
    )  # fmt: skip
    expected = {
        "hook_type": "post_auth",
        "hook_types": ["post_auth", "on_response"],
        "description": "all the options",
        "plugin_type": "data_collector",
        "is_active": False,
        "status": "inactive",
        "config": {"slow_ms": 3, "nested": {"a": [1, 2]}},
        "namespace": namespace,
        "checksum": checksum,
        "timeout_ms": 2500,
        "failure_policy": "fail_open",
        "env": ["MY_KEY", "OTHER_KEY"],
    }
    assert {key: plugin[key] for key in expected} == expected

    assert slug in ok(run(api, "plugins", "list", "--namespace", namespace, "--inactive"))
    assert slug in ok(run(api, "plugins", "list", "--namespace", namespace, "--hook-type", "on_response"))
    assert "No plugins match." in ok(run(api, "plugins", "list", "--namespace", namespace, "--active"))

    # PATCH sends only what was given: everything else stays as created.
    ok(run(api, "plugins", "update", slug, "--name", "Renamed", "--timeout-ms", "3000"))
    with api.client() as client:
        stored = client.get(f"/api/v1/plugins/{slug}").json()
    assert (stored["name"], stored["timeout_ms"]) == ("Renamed", 3000)
    assert {key: stored[key] for key in expected if key != "timeout_ms"} == {
        key: value for key, value in expected.items() if key != "timeout_ms"
    }


def test_errors_are_one_line_with_the_api_detail(api: Server) -> None:
    bad_hook = ("plugins", "create", "--name", "x", "--command", COMMAND, "--hook-type", "pre-auth")
    assert error(run(api, *bad_hook)) == (
        "hook_type: hook type 'pre-auth' is invalid; valid hook types: "
        "pre_auth, auth, post_auth, on_response, data_collection, custom_endpoint, scheduled_task, object_hooks, agent"
    )
    assert error(run(api, "plugins", "reload", "no-such-plugin")).startswith(
        "no plugin with id or slug 'no-such-plugin'"
    )
    assert error(run(api, "plugins", "update", "no-such-plugin")).startswith("nothing to change")
    assert "is not valid JSON" in error(run(api, "plugins", "update", "x", "--config", "{nope"))
    assert "must be a JSON object" in error(run(api, "plugins", "update", "x", "--config", "[1]"))
    assert error(run(api, "plugins", "list", "--token", "sol_wrong")) == (
        "the bearer token is invalid or revoked; create one with `solstice tokens create`"
    )


def test_tokens_create_list_revoke(api: Server) -> None:
    name = f"cli-reader-{uuid.uuid4().hex[:6]}"
    created = ok(run(api, "tokens", "create", "--name", name, "--scope", "read"))
    assert "shown this once" in created
    secret = re.search(r"^\s*(sol_\S+)\s*$", created, re.MULTILINE)
    assert secret, created
    reader = secret.group(1)

    assert "total" in json.loads(ok(run(api, "plugins", "list", "--json", token=reader)))
    assert "scope 'read'" in error(run(api, "tokens", "list", token=reader))
    listed = row(ok(run(api, "tokens", "list")), name)
    assert "read" in listed and reader not in listed
    tokens = json.loads(ok(run(api, "tokens", "list", "--json")))
    entry = next(t for t in tokens if t["name"] == name)
    assert "token" not in entry and entry["revoked_at"] is None

    assert f"Revoked token {name}" in ok(run(api, "tokens", "revoke", str(entry["id"])))
    assert error(run(api, "plugins", "list", token=reader)) == (
        "the bearer token is invalid or revoked; create one with `solstice tokens create`"
    )
    assert error(run(api, "tokens", "revoke", "999999")).startswith("no token with id 999999")
    other = json.loads(ok(run(api, "tokens", "create", "--name", f"{name}-2", "--json")))
    assert other["token"].startswith("sol_") and other["scope"] == "read"


def test_unreachable_server_and_missing_token(api: Server) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    expected = (
        f"cannot reach {dead}: connection refused; is `solstice serve` running? (set --url or SOLSTICE_URL)"
    )
    assert error(run(api, "plugins", "list", url=dead)) == expected
    # --url wins over SOLSTICE_URL.
    assert error(run(api, "tokens", "list", "--url", dead)) == expected
    assert "not an http:// or https:// URL" in error(run(api, "plugins", "list", url="localhost:3000"))

    no_token = "no API token; pass --token or set SOLSTICE_TOKEN"
    assert error(run(api, "plugins", "list", token="")) == no_token
    assert error(run(api, "tokens", "create", "--name", "x", token="")) == no_token
    assert "total" in json.loads(ok(run(api, "plugins", "list", "--json", "--token", api.token, token="")))


def test_scopes_are_shown_approved_and_revoked_and_data_cleared(api: Server) -> None:
    services = Path(__file__).parent / "plugins" / "services.py"
    slug = f"svc-{uuid.uuid4().hex[:6]}"
    ok(run(api, "plugins", "create", "--name", slug, "--command", f"file://{services}",
           "--hook-types", "custom_endpoint"))  # fmt: skip
    shown = ok(run(api, "plugins", "scopes", slug))
    assert "kv.readwrite" in shown and "pending" in shown and "read, write and delete" in shown
    pending = next(
        line for line in ok(run(api, "plugins", "get", slug)).splitlines() if "pending scopes" in line
    )
    assert "kv.readwrite" in pending
    approved = ok(run(api, "plugins", "approve", slug, "kv.readwrite", "llms.read"))
    assert approved.startswith(f"Approved kv.readwrite, llms.read for plugin {slug}.")
    state = json.loads(ok(run(api, "plugins", "scopes", slug, "--json")))
    assert [a["scope"] for a in state["approved"]] == ["kv.readwrite", "llms.read"]
    assert "kv.readwrite" not in state["pending"]
    assert error(run(api, "plugins", "approve", slug, "kv.write")).startswith(
        "unknown scope 'kv.write'; valid scopes: kv.read, kv.readwrite"
    )
    revoked = json.loads(ok(run(api, "plugins", "revoke", slug, "llms.read", "--json")))
    assert [a["scope"] for a in revoked["approved"]] == ["kv.readwrite"]
    assert error(run(api, "plugins", "clear-data", slug)).endswith("pass --yes")
    cleared = json.loads(ok(run(api, "plugins", "clear-data", slug, "--yes", "--json")))
    assert cleared == {"plugin": slug, "deleted_keys": 0}
