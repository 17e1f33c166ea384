"""The custom endpoint examples as users run them: webhook-inbox (KV, app keys) and llm-stream (SSE
from llms.call on the mock vendor), as file:// and grpc:// plugins of a control plane, and on an edge."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLES, Standalone, wait_until
from tests.gateway.conftest import Route
from tests.server import Server
from tests.test_edge import Edge

INBOX = EXAMPLES / "webhook-inbox" / "plugin.py"
STREAM = EXAMPLES / "llm-stream" / "plugin.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("examples")).wait_ready()
    yield running
    running.stop()


def register(server: Server, command: str, scopes: list[str], **fields: object) -> str:
    slug = f"ex-{uuid.uuid4().hex[:8]}"
    with server.client() as client:
        created = client.post("/api/v1/plugins", json={
            "name": slug, "command": command, "hook_types": ["custom_endpoint"], **fields,
        })  # fmt: skip
        assert created.status_code == 201 and created.json()["status"] == "healthy", created.text
        assert (
            client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": scopes}).status_code == 200
        )
    return slug


def app_key(server: Server) -> str:
    with server.client() as client:
        created = client.post("/api/v1/apps", json={"name": f"app-{uuid.uuid4().hex[:6]}", "llms": []})
    return str(created.json()["key"])


def check_inbox(base: str, key: str, other_key: str) -> None:
    """A delivery kept and served back to its app only."""
    assert httpx.post(f"{base}/hooks", json={"event": "push"}).status_code == 401
    mine = {"Authorization": f"Bearer {key}"}
    posted = httpx.post(f"{base}/hooks", json={"event": "push"}, headers=mine)
    assert posted.status_code == 202, posted.text
    delivery = posted.json()["id"]
    assert httpx.get(f"{base}/hooks", headers=mine).json() == {"ids": [delivery], "next_page": None}
    back = httpx.get(f"{base}/hooks/{delivery}", headers=mine)
    assert back.json() == {"event": "push"} and back.headers["content-type"] == "application/json"
    theirs = {"Authorization": f"Bearer {other_key}"}
    assert httpx.get(f"{base}/hooks", headers=theirs).json()["ids"] == []
    assert httpx.get(f"{base}/hooks/{delivery}", headers=theirs).status_code == 404


def check_stream(base: str, key: str) -> None:
    """The mock LLM's answer, token by token, as server-sent events, to an app only."""
    assert httpx.get(f"{base}/ask", params={"q": "hello there"}).status_code == 401
    mine = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", f"{base}/ask", params={"q": "hello there"}, headers=mine, timeout=30) as answer:
        assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/event-stream")
        events = "".join(answer.iter_text()).split("\n\n")
    tokens = [e.removeprefix("data: ") for e in events if e.startswith("data: ")]
    assert "".join(tokens) == "echo: hello there" and len(tokens) >= 3
    assert events[-2] == "event: done\ndata: "


@pytest.mark.parametrize("deployment", ["file", "grpc"])
def test_webhook_inbox(server: Server, standalone: type[Standalone], deployment: str) -> None:
    command = f"file://{INBOX}" if deployment == "file" else standalone(INBOX).command
    slug = register(server, command, ["kv.readwrite"], config={"max_bytes": 100})
    check_inbox(f"{server.url}/plugins/{slug}", app_key(server), app_key(server))
    key = app_key(server)
    too_big = httpx.post(
        f"{server.url}/plugins/{slug}/hooks", content=b"x" * 101, headers={"Authorization": f"Bearer {key}"}
    )
    assert too_big.status_code == 413


@pytest.mark.parametrize("deployment", ["file", "grpc"])
def test_llm_stream(server: Server, standalone: type[Standalone], deployment: str) -> None:
    route = Route(server, options={"chunk_delay_ms": 20})
    command = f"file://{STREAM}" if deployment == "file" else standalone(STREAM).command
    slug = register(server, command, ["llms.call"], config={"llm": route.slug})
    key = app_key(server)
    check_stream(f"{server.url}/plugins/{slug}", key)
    missing = httpx.get(f"{server.url}/plugins/{slug}/ask", headers={"Authorization": f"Bearer {key}"})
    assert missing.status_code == 400 and missing.text == "ask with ?q=your+question\n"


def test_an_unapproved_example_says_how_to_approve_it(server: Server) -> None:
    with server.client() as client:
        created = client.post("/api/v1/plugins", json={
            "name": "unapproved-inbox", "command": f"file://{INBOX}", "hook_types": ["custom_endpoint"],
        })  # fmt: skip
    slug = created.json()["slug"]
    assert created.json()["pending_scopes"] == ["kv.readwrite"]
    refused = httpx.post(
        f"{server.url}/plugins/{slug}/hooks",
        content=b"x",
        headers={"Authorization": f"Bearer {app_key(server)}"},
    )
    assert refused.status_code == 503
    assert "may not use kv.readwrite until an operator approves it" in refused.json()["error"]


EDGE_YAML = """
plugins:
  - slug: inbox
    command: file://{inbox}
    hook_types: [custom_endpoint]
    scopes: [kv.readwrite]
  - slug: ask
    command: file://{stream}
    hook_types: [custom_endpoint]
    config: {{llm: mock}}
    scopes: [llms.call]
llms:
  - slug: mock
    vendor: mock
apps:
  - name: one
    llms: []
    keys_env: [ONE_KEY]
  - name: two
    llms: []
    keys_env: [TWO_KEY]
"""


def test_both_examples_on_an_edge(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    config.write_text(EDGE_YAML.format(inbox=INBOX, stream=STREAM))
    keys = {"ONE_KEY": "sk-one-123", "TWO_KEY": "sk-two-456"}
    edge = Edge(tmp_path / "edge", None, "", "", env=keys, config=config).start()
    try:
        wait_until(lambda: httpx.get(f"{edge.url}/plugins/ask/ask").status_code == 401, 30, edge.read_log)
        check_inbox(f"{edge.url}/plugins/inbox", keys["ONE_KEY"], keys["TWO_KEY"])
        check_stream(f"{edge.url}/plugins/ask", keys["ONE_KEY"])
    finally:
        edge.stop()
