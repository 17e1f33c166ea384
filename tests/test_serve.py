"""`solstice serve` as a real process: clean start and stop, and no orphans when SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import EXAMPLES, TESTBED, child_pids, pid_alive

SOLSTICE = [sys.executable, "-m", "solstice"]


def _start_serve(*plugins: str) -> subprocess.Popen[str]:
    args = [*SOLSTICE, "serve"]
    for plugin in plugins:
        args += ["--plugin", plugin]
    return subprocess.Popen(
        args, stderr=subprocess.PIPE, text=True, env={**os.environ, "SOLSTICE_LOG_FORMAT": "json"}
    )


def _wait_running(proc: subprocess.Popen[str]) -> list[str]:
    assert proc.stderr is not None
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        lines.append(line)
        if "solstice is running" in line:
            return lines
    proc.kill()
    raise AssertionError(f"serve did not start: {''.join(lines)}")


def test_serve_starts_plugins_and_stops_cleanly_on_sigterm(go_plugin: Path) -> None:
    proc = _start_serve(f"file://{EXAMPLES / 'header-enricher' / 'plugin.py'}", f"guard=file://{go_plugin}")
    try:
        lines = _wait_running(proc)
        assert sum('"plugin started"' in line for line in lines) == 2
        plugins = child_pids(proc.pid)
        assert len(plugins) == 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not any(pid_alive(p) for p in plugins)


def test_sigkill_of_the_host_leaves_no_plugin_process(go_plugin: Path) -> None:
    proc = _start_serve(f"file://{TESTBED}", f"guard=file://{go_plugin}")
    try:
        _wait_running(proc)
        plugins = child_pids(proc.pid)
        assert len(plugins) == 2
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    deadline = time.monotonic() + 10
    while any(pid_alive(p) for p in plugins) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [p for p in plugins if pid_alive(p)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert survivors == []


def test_bad_plugin_option_is_refused() -> None:
    done = subprocess.run(
        [*SOLSTICE, "serve", "--plugin", "file://./x"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "file:///usr/local/bin/x" in done.stderr


def test_failed_plugin_does_not_stop_serve(tmp_path: Path) -> None:
    proc = _start_serve("file:///nonexistent/plugin")
    try:
        lines = _wait_running(proc)
        assert any("does not exist" in line for line in lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_bad_setting_is_one_line_and_exit_2() -> None:
    env = {**os.environ, "SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT": "soon"}
    done = subprocess.run([*SOLSTICE, "serve"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "solstice: SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT='soon' is invalid: "
        "input should be a valid number, unable to parse string as a number; correct or unset it"
    ]
