"""A real HTTP upstream (`solstice mock-llm`), global plugins, and upstream failures."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.gateway.conftest import Route, echo_headers, plugin
from tests.server import Server, free_port


@pytest.fixture(scope="module")
def mock_llm() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "solstice", "mock-llm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/models", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "mock-llm did not start"
        time.sleep(0.1)
    yield url
    proc.terminate()
    proc.wait(10)


def test_openai_vendor_through_real_http(gw: Server, mock_llm: str) -> None:
    route = Route(gw, vendor="openai", upstream_url=mock_llm, api_key="upstream-secret")
    ok = route.call("chat/completions")
    assert ok.status_code == 200 and ok.json()["usage"]["total_tokens"] == 4
    headers = echo_headers(route.call("echo"))
    # The LLM's key replaces the app key (the mock shows only its ends).
    assert headers["authorization"] == "Bearer ***cret"
    with httpx.stream(
        "POST", f"{gw.url}/llm/{route.slug}/chat/completions",
        json={"stream": True, "messages": [{"role": "user", "content": "a b c"}]},
        headers={"Authorization": f"Bearer {route.key}"}, timeout=60,
    ) as streamed:  # fmt: skip
        assert streamed.headers["content-type"].startswith("text/event-stream")
        chunks = list(streamed.iter_bytes())
    assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
    with gw.client() as client:
        llm = client.get(f"/api/v1/llms/{route.slug}").json()
    assert llm["has_api_key"] is True and "api_key" not in llm
    assert "upstream-secret" not in gw.log()


def test_upstream_unreachable_is_502(gw: Server) -> None:
    down = Route(gw, vendor="openai", upstream_url=f"http://127.0.0.1:{free_port()}/v1")
    unreachable = down.call("chat/completions")
    assert unreachable.status_code == 502 and unreachable.json()["error"]["type"] == "upstream_error"


def test_global_plugin_runs_before_every_chain(gw: Server) -> None:
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


def test_upstream_timeout_is_504(tmp_path) -> None:
    port = free_port()
    slow = subprocess.Popen(
        [sys.executable, "-m", "solstice", "mock-llm", "--port", str(port), "--delay-ms", "3000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = Server(tmp_path, env={"SOLSTICE_UPSTREAM_TIMEOUT": "0.5"}).wait_ready()
    try:
        route = Route(server, vendor="openai", upstream_url=f"http://127.0.0.1:{port}/v1")
        deadline = time.monotonic() + 30
        while True:  # wait for the slow mock to listen
            try:
                httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        timed_out = route.call("chat/completions")
        assert timed_out.status_code == 504
        assert timed_out.json()["error"]["type"] == "upstream_timeout"
    finally:
        server.stop()
        slow.terminate()
        slow.wait(10)
