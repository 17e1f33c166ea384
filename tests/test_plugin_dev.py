"""`solstice plugin dev PATH`: an edit of the plugin file reloads the plugin on a real server."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.conftest import TESTBED
from tests.server import ADMIN_TOKEN, Server


def health(server: Server, slug: str) -> dict:
    with server.client() as client:
        return client.get(f"/api/v1/plugins/{slug}/health").json()


def test_an_edit_reloads_the_plugin(tmp_path: Path) -> None:
    plugin = tmp_path / "guard.py"
    plugin.write_bytes(TESTBED.read_bytes())
    plugin.chmod(0o755)
    server = Server(tmp_path).wait_ready()
    watcher = None
    try:
        with server.client() as client:
            body = {"name": "guard", "command": f"file://{plugin}", "hook_type": "pre_auth"}
            assert client.post("/api/v1/plugins", json=body).status_code == 201
        first = health(server, "guard")["pid"]
        env = {**os.environ, "SOLSTICE_URL": server.url, "SOLSTICE_TOKEN": ADMIN_TOKEN}
        watcher = subprocess.Popen(
            [sys.executable, "-m", "solstice", "plugin", "dev", str(plugin), "--interval", "0.2"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith(f"watching {plugin} for guard")
        with plugin.open("a") as out:
            out.write("# an edit\n")
        # The server may switch instances before its reload answer reaches the watcher, so wait
        # for the watcher's own line rather than the new pid, then interrupt it.
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True).start()
        assert lines.get(timeout=30).strip() == "reloaded guard: healthy"
        assert health(server, "guard")["pid"] != first
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=20)
        assert watcher.returncode == 0
        assert lines.get(timeout=5).strip() == "stopped"
    finally:
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        server.stop()


def test_a_file_no_plugin_uses_is_an_error(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        env = {**os.environ, "SOLSTICE_URL": server.url, "SOLSTICE_TOKEN": ADMIN_TOKEN}
        done = subprocess.run(
            [sys.executable, "-m", "solstice", "plugin", "dev", str(tmp_path / "nothing.py")],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 1
        assert f"no plugin has the command file://{tmp_path / 'nothing.py'}" in done.stderr
    finally:
        server.stop()
