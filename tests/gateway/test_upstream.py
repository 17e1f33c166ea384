"""A real HTTP upstream (`solstice mock-llm`), global plugins, and upstream failures."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import wait_until
from tests.gateway.conftest import Route, echo_headers, plugin
from tests.inprocess import InProcess, app_settings
from tests.server import free_port


def _mock_llm(*options: str) -> tuple[subprocess.Popen[bytes], str]:
    """A `solstice mock-llm` process on a free port, once it accepts connections; and its /v1 URL."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "solstice", "mock-llm", "--port", str(port), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def listening() -> bool:
        assert proc.poll() is None, f"mock-llm exited with {proc.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    wait_until(listening, 30, what="mock-llm to listen")
    return proc, f"http://127.0.0.1:{port}/v1"


@pytest.fixture(scope="module")
def mock_llm() -> Iterator[str]:
    proc, url = _mock_llm()
    assert httpx.get(f"{url}/models", timeout=10).status_code == 200
    yield url
    proc.terminate()
    proc.wait(10)


def test_openai_vendor_through_real_http(gw: InProcess, mock_llm: str) -> None:
    route = Route(gw, vendor="openai", upstream_url=mock_llm, api_key="upstream-secret")
    ok = route.call("chat/completions")
    assert ok.status_code == 200 and ok.json()["usage"]["total_tokens"] == 4
    headers = echo_headers(route.call("echo"))
    # The LLM's key replaces the app key (the mock shows only its ends).
    assert headers["authorization"] == "Bearer ***cret"
    streamed = route.call(
        "chat/completions", json={"stream": True, "messages": [{"role": "user", "content": "a b c"}]}
    )
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert streamed.content.endswith(b"data: [DONE]\n\n")
    with gw.client() as client:
        llm = client.get(f"/api/v1/llms/{route.slug}").json()
    assert llm["has_api_key"] is True and "api_key" not in llm
    assert "upstream-secret" not in gw.log()


def test_upstream_unreachable_is_502(gw: InProcess) -> None:
    down = Route(gw, vendor="openai", upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    unreachable = down.call("chat/completions")
    assert unreachable.status_code == 502 and unreachable.json()["error"]["type"] == "upstream_error"


def test_global_plugin_runs_before_every_chain(gw: InProcess) -> None:
    first = plugin(gw, "post_auth", config={"header": "X-Order", "value": "global"})
    with gw.client() as client:
        assert client.patch(f"/api/v1/plugins/{first}", json={"global": True}).json()["global"] is True
    try:
        local = plugin(gw, "post_auth", config={"header": "X-Local", "value": "local"})
        route = Route(gw, chain=[{"plugin": local}])
        headers = echo_headers(route.call("v1/echo"))
        assert headers["x-order"] == "global" and headers["x-seen-metadata"] == "x-order=global"
        assert echo_headers(Route(gw).call("v1/echo"))["x-order"] == "global", "even on LLMs with no chain"
    finally:
        with gw.client() as client:
            client.patch(f"/api/v1/plugins/{first}", json={"global": False})


def test_upstream_timeout_is_504(tmp_path: Path) -> None:
    slow, url = _mock_llm("--delay-ms", "1500")
    server = InProcess(app_settings(tmp_path, upstream_timeout=0.5)).start()
    try:
        route = Route(server, vendor="openai", upstream_url=url)
        timed_out = route.call("chat/completions")
        assert timed_out.status_code == 504
        assert timed_out.json()["error"]["type"] == "upstream_timeout"
    finally:
        server.stop()
        slow.terminate()
        slow.wait(10)
