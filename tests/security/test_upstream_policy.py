"""LLM upstream URLs under the internal-address rules: at the API and at every connection."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from solstice.security.upstreams import UpstreamAllowlistError, parse_upstream_allowlist
from tests.conftest import wait_until
from tests.server import Server, free_port

STRICT = {"ALLOW_INTERNAL_NETWORK_ACCESS": "false"}


@pytest.fixture(scope="module")
def mock_llm() -> Iterator[int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "solstice", "mock-llm", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def up() -> bool:
        assert proc.poll() is None, f"mock-llm exited with {proc.returncode}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(up, 30, what=f"mock-llm to answer on port {port}")
    yield port
    proc.terminate()
    proc.wait(10)


def _create(server: Server, slug: str, url: str) -> httpx.Response:
    with server.client() as client:
        return client.post("/api/v1/llms", json={"name": slug, "slug": slug, "upstream_url": url})


def _call(server: Server, slug: str) -> httpx.Response:
    with server.client() as client:
        app = client.post("/api/v1/apps", json={"name": f"app-{slug}", "llms": [slug]})
        assert app.status_code == 201, app.text
    return httpx.post(
        f"{server.url}/llm/{slug}/chat/completions",
        json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {app.json()['key']}"},
        timeout=60,
    )


def test_internal_upstreams_are_refused_at_the_api(tmp_path: Path) -> None:
    server = Server(tmp_path, env=STRICT).wait_ready()
    try:
        for number, url in enumerate(
            (
                "http://169.254.169.254/latest",
                "http://10.1.2.3/v1",
                "http://2130706433:8080/v1",
                "http://[::ffff:127.0.0.1]/v1",
                "http://localhost:8400/v1",
                "https://metadata.localhost/v1",
            )
        ):
            refused = _create(server, f"in-{number}", url)
            assert refused.status_code == 400, (url, refused.text)
            detail = refused.json()["detail"]
            assert "internal network address" in detail and "SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST" in detail
        assert _create(server, "public", "https://203.0.113.7/v1").status_code == 201
        with server.client() as client:
            moved = client.patch("/api/v1/llms/public", json={"upstream_url": "http://192.168.1.1/v1"})
        assert moved.status_code == 400 and "192.168.0.0/16" in moved.json()["detail"]
    finally:
        server.stop()


def test_a_listed_local_model_server_is_permitted(tmp_path: Path, mock_llm: int) -> None:
    env = {**STRICT, "SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST": f"127.0.0.1:{mock_llm}"}
    server = Server(tmp_path, env=env).wait_ready()
    try:
        assert _create(server, "local", f"http://127.0.0.1:{mock_llm}/v1").status_code == 201
        assert _call(server, "local").status_code == 200
        assert _create(server, "other-port", f"http://127.0.0.1:{free_port()}/v1").status_code == 400
    finally:
        server.stop()


def test_upstreams_are_checked_again_at_each_connection(tmp_path: Path, mock_llm: int) -> None:
    # Stored while internal access was allowed (as in development), served after it is not.
    server = Server(tmp_path).wait_ready()
    try:
        for slug, host in (("literal", "127.0.0.1"), ("named", "localhost")):
            assert _create(server, slug, f"http://{host}:{mock_llm}/v1").status_code == 201
            assert _call(server, slug).status_code == 200
    finally:
        server.stop()
    server = Server(tmp_path, env=STRICT).wait_ready()
    try:
        for slug in ("literal", "named"):
            refused = _call(server, slug)
            assert refused.status_code == 502, refused.text
            assert "security policy" in refused.text and "127.0.0.1" not in refused.text
        assert "targets an internal network address" in server.log()
    finally:
        server.stop()


def test_a_bad_allowlist_entry_is_named() -> None:
    assert parse_upstream_allowlist(" 127.0.0.1:8400 , llm.internal, 10.0.0.0/8,[::1]:9000").raw
    for entry in ("http://x", "10.0.0.0/40", "host:99999", "a b"):
        with pytest.raises(UpstreamAllowlistError, match="SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST entry"):
            parse_upstream_allowlist(entry)
