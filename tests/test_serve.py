"""`solstice serve` as a real process: start, restart with its data, clean stop, no orphans."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, TESTBED, pid_alive, wait_until
from tests.server import Server

SOLSTICE = [sys.executable, "-m", "solstice"]


def _wait_plugins(server: Server, count: int, timeout: float = 30) -> list[int]:
    """The pids of the server's plugin processes, once there are `count` of them."""

    def started() -> list[int]:
        pids = server.plugin_pids()
        return pids if len(pids) == count else []

    return wait_until(started, timeout, server.log, what=f"{count} plugin processes")


def test_serve_starts_plugins_and_stops_cleanly_on_sigterm(tmp_path: Path, go_plugin: Path) -> None:
    enricher = f"file://{EXAMPLES / 'header-enricher' / 'plugin.py'}"
    server = Server(tmp_path, plugins=(enricher, f"guard=file://{go_plugin}")).wait_ready()
    try:
        plugins = _wait_plugins(server, 2)
        with server.client() as client:
            listed = {p["slug"]: p for p in client.get("/api/v1/plugins").json()["data"]}
        assert listed["header-enricher"]["status"] == "healthy"
        # Hooks were learned from the plugin itself, since --plugin does not name them.
        assert listed["header-enricher"]["hook_types"] == ["post_auth"]
        assert listed["guard"]["hook_type"] == "pre_auth"
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.log()
    assert not any(pid_alive(p) for p in plugins)


def test_restart_keeps_plugins_and_starts_the_active_ones(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    with server.client() as client:
        active = client.post(
            "/api/v1/plugins", json={"name": "a", "command": f"file://{TESTBED}", "hook_type": "pre_auth"}
        ).json()
        idle = client.post(
            "/api/v1/plugins",
            json={"name": "b", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False},
        ).json()
    first = _wait_plugins(server, 1)
    assert server.stop() == 0
    again = Server(tmp_path).wait_ready()
    try:
        second = _wait_plugins(again, 1)
        assert second != first
        with again.client() as client:
            assert client.get(f"/api/v1/plugins/{active['id']}").json()["status"] == "healthy"
            assert client.get(f"/api/v1/plugins/{idle['id']}").json()["status"] == "inactive"
    finally:
        again.stop()


def test_sigkill_of_the_host_leaves_no_plugin_process(tmp_path: Path, go_plugin: Path) -> None:
    server = Server(tmp_path, plugins=(f"file://{TESTBED}", f"guard=file://{go_plugin}")).wait_ready()
    try:
        plugins = _wait_plugins(server, 2)
    finally:
        server.stop(signal.SIGKILL)
    try:
        wait_until(lambda: not any(pid_alive(p) for p in plugins), 10, server.log, what="the plugins to exit")
    finally:
        for pid in filter(pid_alive, plugins):
            os.kill(pid, signal.SIGKILL)  # they are ours: none outlives the test


def test_generated_admin_token_is_printed_once_and_only_its_hash_stored(tmp_path: Path) -> None:
    server = Server(tmp_path, admin_token=None).wait_ready()
    server.stop()
    printed = [line for line in server.log().splitlines() if line.strip().startswith("SOLSTICE_TOKEN=")]
    assert len(printed) == 1
    token = printed[0].strip().removeprefix("SOLSTICE_TOKEN=")
    assert token.startswith("sol_") and len(token) > 40
    database = (tmp_path / "solstice.db").read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("solstice.db-*")
    )
    assert token.encode() not in database
    stored = sqlite3.connect(tmp_path / "solstice.db").execute("SELECT scope FROM api_tokens").fetchall()
    assert stored == [("admin",)]
    again = Server(tmp_path, admin_token=None)
    again.token = token
    again.wait_ready()
    try:
        with again.client() as client:
            assert client.get("/api/v1/plugins").status_code == 200
    finally:
        again.stop()
    assert "SOLSTICE_TOKEN=" not in again.log(), "only the first start prints a token"


def test_bad_plugin_option_is_refused() -> None:
    done = subprocess.run(
        [*SOLSTICE, "serve", "--plugin", "file://./x"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "file:///usr/local/bin/x" in done.stderr


def test_duplicate_plugin_slugs_are_refused() -> None:
    done = subprocess.run(
        [*SOLSTICE, "serve", "--plugin", "file:///a/guard", "--plugin", "file:///b/guard"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "file:///a/guard" in done.stderr and "file:///b/guard" in done.stderr


def test_failed_plugin_does_not_stop_serve(tmp_path: Path) -> None:
    server = Server(tmp_path, plugins=("broken=file:///nonexistent/plugin",)).wait_ready()
    try:
        with server.client() as client:
            plugin = client.get("/api/v1/plugins/broken").json()
        assert plugin["status"] == "failed"
        assert "does not exist" in plugin["last_error"]
    finally:
        assert server.stop(signal.SIGINT) == 0


def test_bad_setting_is_one_line_and_exit_2() -> None:
    env = {**os.environ, "SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT": "soon"}
    done = subprocess.run([*SOLSTICE, "serve"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "solstice: SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT='soon' is invalid: "
        "input should be a valid number, unable to parse string as a number; correct or unset it"
    ]
