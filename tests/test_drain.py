"""SIGTERM on either runtime: a request in flight is answered in full, plugins stop, exit status 0.

The request is a streamed completion whose chunks arrive every 250 ms; the signal is sent after
the first chunk has been read, so the request is provably in flight when the stop begins.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.conftest import TESTBED, child_pids, pid_alive
from tests.server import Server
from tests.test_edge import PLUGINS_YAML, Edge

PROMPT = "one two three four five six"
CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}


def stream_across_a_sigterm(url: str, llm: str, key: str, send_sigterm: Callable[[], None]) -> str:
    """Start a streamed completion, signal the server after its first chunk, return the whole text."""
    text = []
    with httpx.stream(
        "POST", f"{url}/llm/{llm}/v1/chat/completions", json=CHAT,
        headers={"Authorization": f"Bearer {key}"}, timeout=30,
    ) as answer:  # fmt: skip
        assert answer.status_code == 200, answer.read()
        lines = answer.iter_lines()
        for line in lines:
            if line.startswith("data: {"):
                text.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
                break
        send_sigterm()
        for line in lines:
            if line.startswith("data: {"):
                text.append(json.loads(line[6:])["choices"][0]["delta"].get("content", ""))
            elif line == "data: [DONE]":
                text.append("[DONE]")
    return "".join(text)


def test_serve_drains_a_request_in_flight_then_stops_plugins(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            plugin = {"name": "guard", "command": f"file://{TESTBED}", "hook_type": "pre_auth"}
            assert client.post("/api/v1/plugins", json=plugin).status_code == 201
            llm = {"name": "slow", "vendor": "mock", "options": {"chunk_delay_ms": 250}}
            assert client.post("/api/v1/llms", json=llm).status_code == 201
            chain = {"plugins": [{"plugin": "guard"}]}
            assert client.put("/api/v1/llms/slow/plugins", json=chain).status_code == 200
            app = client.post("/api/v1/apps", json={"name": "demo", "llms": ["slow"]})
            assert app.status_code == 201, app.text
        plugins = server.plugin_pids()
        assert plugins, server.log()
        text = stream_across_a_sigterm(
            server.url, "slow", app.json()["key"], lambda: server.proc.send_signal(signal.SIGTERM)
        )
    finally:
        code = server.stop()
    assert text == f"echo: {PROMPT}[DONE]"
    assert code == 0, server.log()
    assert not any(pid_alive(pid) for pid in plugins)


def test_edge_drains_a_request_in_flight_then_stops_plugins(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(PLUGINS_YAML.format(plugin=TESTBED, options="{chunk_delay_ms: 250}"))
    edge = Edge(tmp_path / "edge", None, "", "", env={"DEMO_KEY": "sk-demo-123"}, config=config).start()
    assert edge.proc is not None
    proc = edge.proc
    try:
        plugins = child_pids(proc.pid)
        assert plugins, edge.read_log()
        text = stream_across_a_sigterm(
            edge.url, "mock", "sk-demo-123", lambda: proc.send_signal(signal.SIGTERM)
        )
        code = proc.wait(30)
    finally:
        edge.stop()
    assert text == f"echo: {PROMPT}[DONE]"
    assert code == 0, edge.read_log()
    assert not any(pid_alive(pid) for pid in plugins)
