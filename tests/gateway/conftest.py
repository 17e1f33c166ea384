"""Gateway fixtures: the app in this process (SQLite) per module, and a helper that sets up an LLM route."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TESTBED
from tests.inprocess import InProcess, app_settings
from tests.server import Server

# A route works the same against the app in this process and a `solstice serve` process.
Running = InProcess | Server


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    app = InProcess(app_settings(tmp_path_factory.mktemp("gateway"), gateway_max_body_bytes=65536)).start()
    yield app
    app.stop()


class Route:
    """An LLM with a chain and an app key, created through the API."""

    def __init__(self, server: Running, chain: list[dict[str, Any]] | None = None, **llm: Any) -> None:
        self.server = server
        self.slug = f"llm-{uuid.uuid4().hex[:8]}"
        with server.client() as client:
            created = client.post("/api/v1/llms", json={"name": self.slug, "vendor": "mock", **llm})
            assert created.status_code == 201, created.text
            if chain is not None:
                response = client.put(f"/api/v1/llms/{self.slug}/plugins", json={"plugins": chain})
                assert response.status_code == 200, response.text
            app = client.post("/api/v1/apps", json={"name": f"app-{self.slug}", "llms": [self.slug]})
            assert app.status_code == 201, app.text
        self.app_id = app.json()["id"]
        self.key = app.json()["key"]

    def call(
        self, path: str = "v1/chat/completions", key: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        body = kwargs.pop("json", {"model": "m", "messages": [{"role": "user", "content": "hello there"}]})
        secret = self.key if key is None else key
        headers = {**({"Authorization": f"Bearer {secret}"} if secret else {}), **kwargs.pop("headers", {})}
        with self.server.client(token="") as client:
            return client.post(f"/llm/{self.slug}/{path}", json=body, headers=headers, **kwargs)


def plugin(server: Running, hook: str | list[str], command: str | None = None, **fields: Any) -> str:
    """Register a plugin (the testbed by default) and return its slug."""
    hooks = {"hook_types": hook} if isinstance(hook, list) else {"hook_type": hook}
    slug = f"p-{uuid.uuid4().hex[:8]}"
    body = {"name": slug, "slug": slug, "command": command or f"file://{TESTBED}", **hooks, **fields}
    with server.client() as client:
        response = client.post("/api/v1/plugins", json=body)
    assert response.status_code == 201 and response.json()["status"] == "healthy", response.text
    return slug


def echo_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return dict(response.json()["headers"])


@pytest.fixture
def record_file(tmp_path: Path) -> Path:
    return tmp_path / "records.txt"
