"""Slow and oversized clients against real `solstice serve` and `solstice edge` processes, over raw sockets.

The limits are set low (8 KiB heads, 1 s deadlines) so each test waits briefly; a server without them
keeps such connections open, and the tests fail at their generous deadlines.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import terminate, wait_until
from tests.server import Server, free_port

LIMITS = {
    "SOLSTICE_HTTP_MAX_HEADER_BYTES": "8192",
    "SOLSTICE_HTTP_HEADER_TIMEOUT": "1",
    "SOLSTICE_HTTP_BODY_TIMEOUT": "1",
}
KEY = "sk-limits-demo-123"
EDGE_CONFIG = """
llms:
  - slug: slow
    vendor: mock
    options: {delay_ms: 1500, chunk_delay_ms: 250}
apps:
  - name: demo
    llms: [slow]
    keys_env: [DEMO_KEY]
"""
DEADLINE_S = 30.0


class Edge:
    """`solstice edge --config` with the low limits; stopped by PID."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        config = root / "plugins.yaml"
        config.write_text(EDGE_CONFIG)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ, **LIMITS, "DEMO_KEY": KEY, "SOLSTICE_DATA_DIR": str(root),
            "OCI_PLUGINS_CACHE_DIR": str(root / "oci"), "SOLSTICE_LOG_FORMAT": "json",
            "SOLSTICE_PORT": str(self.port),
        }  # fmt: skip
        self._log = open(root / "edge.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "solstice", "edge", "--config", str(config)],
            env=env, stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log = (root / "edge.log").read_text

        def up() -> bool:
            assert self.proc.poll() is None, log()
            return _ready(self.url)

        wait_until(up, 60, log, what=f"solstice edge to be ready on {self.url}")

    def stop(self) -> None:
        terminate(self.proc)
        self._log.close()


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Edge]:
    running = Edge(tmp_path_factory.mktemp("edge"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("serve"), env=LIMITS).wait_ready()
    yield running
    running.stop()


@pytest.fixture(params=["serve", "edge"])
def port(request: pytest.FixtureRequest) -> int:
    """The port of each runtime in turn."""
    return request.getfixturevalue(request.param).port


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection; fails if it never does."""
    received = b""
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; it sent {received[:200]!r}")


def _trickle(sock: socket.socket, parts: Iterator[bytes], pause: float = 0.3) -> None:
    """Send `parts` slowly until the server closes or answers."""
    sock.settimeout(pause)
    for part in parts:
        try:
            sock.sendall(part)
            if sock.recv(65536, socket.MSG_PEEK):
                return
        except TimeoutError:
            continue
        except OSError:
            return
        else:
            return  # recv returned b"": closed
    sock.settimeout(DEADLINE_S)


def _forever(part: bytes, limit_s: float = DEADLINE_S) -> Iterator[bytes]:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        yield part


def test_a_huge_unfinished_header_gets_431_and_a_closed_connection(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 32768)
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert b"8192 byte limit" in answer


def test_a_huge_complete_header_gets_431(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer


def test_a_header_sent_a_line_at_a_time_gets_408(port: int) -> None:
    with _connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        _trickle(sock, _forever(b"X-Slow: 1\r\n"))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_connection_that_sends_nothing_is_closed(port: int) -> None:
    with _connect(port) as sock:
        assert _read_until_closed(sock) == b""


def test_a_body_trickled_a_byte_at_a_time_gets_408(edge: Edge) -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (
        f"POST /llm/slow/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with _connect(edge.port) as sock:
        sock.sendall(head)
        _trickle(sock, (body[i : i + 1] for i in range(len(body))))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_trickled_api_body_gets_408(serve: Server) -> None:
    head = (
        f"POST /api/v1/tokens HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {serve.token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
    ).encode()
    with _connect(serve.port) as sock:
        sock.sendall(head)
        _trickle(sock, _forever(b" "))
        answer = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_slow_answers_and_long_streams_are_not_cut(edge: Edge) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}
    with httpx.Client(base_url=edge.url, headers=headers, timeout=DEADLINE_S) as client:
        # The upstream takes longer than both deadlines to answer: the client is not the one waiting.
        slow = client.post(
            "/llm/slow/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}
        )
        assert slow.status_code == 200, slow.text
        # Then a stream that outlasts them several times over, on the same kept-alive connection.
        prompt = {"role": "user", "content": "one two three four five six seven eight"}
        payload = {"stream": True, "messages": [prompt]}
        with client.stream("POST", "/llm/slow/v1/chat/completions", json=payload) as streamed:
            assert streamed.status_code == 200
            text = "".join(streamed.iter_text())
    assert text.rstrip().endswith("data: [DONE]"), text
    assert text.count("data: ") >= 8
