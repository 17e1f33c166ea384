"""The edge sync API of a real `solstice serve`: snapshots by namespace, long-poll by ETag, heartbeats, reloads."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TESTBED, wait_until
from tests.server import Server


@pytest.fixture(scope="module")
def control(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("sync")).wait_ready()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def edge_token(control: Server) -> str:
    with control.client() as client:
        created = client.post("/api/v1/tokens", json={"name": "edges", "scope": "edge"})
    assert created.status_code == 201, created.text
    return created.json()["token"]


def sync(
    server: Server, token: str, edge: str, namespace: str, etag: str = "", wait: float = 0
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}", "X-Solstice-Edge-Id": edge, "X-Solstice-Edge-Name": edge}
    if etag:
        headers["If-None-Match"] = etag
        headers["X-Solstice-Edge-Version"] = etag.strip('"')
    with httpx.Client(base_url=server.url, timeout=90) as client:
        return client.get("/api/v1/sync", params={"namespace": namespace, "wait": wait}, headers=headers)


def create_plugin(server: Server, namespace: str, **fields: Any) -> dict[str, Any]:
    body = {
        "name": "p", "slug": f"p-{uuid.uuid4().hex[:8]}", "command": f"file://{TESTBED}",
        "hook_type": "pre_auth", "namespace": namespace, "is_active": False, **fields,
    }  # fmt: skip
    with server.client() as client:
        answer = client.post("/api/v1/plugins", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def edge_ids(server: Server) -> list[str]:
    with server.client() as client:
        return [edge["id"] for edge in client.get("/api/v1/edges").json()]


def slugs(snapshot: dict[str, Any]) -> set[str]:
    return {p["slug"] for p in snapshot["plugins"]}


def test_only_edge_tokens_sync_and_edge_tokens_only_sync(control: Server, edge_token: str) -> None:
    with control.client() as admin:
        refused = admin.get("/api/v1/sync", headers={"X-Solstice-Edge-Id": "e"})
        assert refused.status_code == 403 and "edge token" in refused.json()["detail"]
    with control.client(edge_token) as edge:
        assert edge.get("/api/v1/plugins").status_code == 403
        assert edge.get("/api/v1/sync").status_code == 400  # no edge id


def test_a_namespace_sees_global_items_and_its_own(control: Server, edge_token: str) -> None:
    global_plugin = create_plugin(control, "")
    mine = create_plugin(control, "team-a")
    theirs = create_plugin(control, "team-b")
    with control.client() as client:
        llm = client.post("/api/v1/llms", json={"name": "A only", "vendor": "mock", "namespace": "team-a"})
        assert llm.status_code == 201, llm.text
    snapshot = sync(control, edge_token, "edge-a1", "team-a").json()
    assert {global_plugin["slug"], mine["slug"]} <= slugs(snapshot)
    assert theirs["slug"] not in slugs(snapshot)
    assert "a-only" in {llm["slug"] for llm in snapshot["llms"]}
    other = sync(control, edge_token, "edge-b1", "team-b").json()
    assert mine["slug"] not in slugs(other) and "a-only" not in {llm["slug"] for llm in other["llms"]}


def test_long_poll_answers_304_when_nothing_changed_and_200_as_soon_as_something_did(
    control: Server, edge_token: str
) -> None:
    first = sync(control, edge_token, "edge-c1", "team-c")
    etag = first.headers["etag"]
    began = time.monotonic()
    unchanged = sync(control, edge_token, "edge-c1", "team-c", etag, wait=1)
    assert unchanged.status_code == 304 and time.monotonic() - began >= 0.9

    # Unwoken, the server re-reads the snapshot only every 10 s (its heartbeat) or at the 30 s wait's
    # end: an answer within 5 s of the change is the wake-up's.
    answers: list[tuple[float, httpx.Response]] = []

    def long_poll() -> None:
        answer = sync(control, edge_token, "edge-c2", "team-c", etag, wait=30)
        answers.append((time.monotonic(), answer))

    poll = threading.Thread(target=long_poll, daemon=True)
    poll.start()
    # Each sync is first a heartbeat: once edge-c2 is listed, its request is on the server, held.
    wait_until(lambda: "edge-c2" in edge_ids(control), what="the long-poll's heartbeat")
    assert not answers and poll.is_alive(), "nothing changed, yet the long-poll answered"
    changed_at = time.monotonic()
    plugin = create_plugin(control, "team-c")
    poll.join(timeout=40)
    assert answers, "the long-poll did not answer within its 30 s wait"
    answered_at, answer = answers[0]
    assert answer.status_code == 200, answer.text
    assert answered_at - changed_at < 5, f"answered {answered_at - changed_at:.1f} s after the change"
    assert plugin["slug"] in slugs(answer.json())
    assert answer.headers["etag"] != etag
    assert answer.headers["etag"] == sync(control, edge_token, "edge-c1", "team-c").headers["etag"]


def test_edges_are_listed_with_the_version_they_run(control: Server, edge_token: str) -> None:
    current = sync(control, edge_token, "edge-d1", "team-d").headers["etag"]
    sync(control, edge_token, "edge-d1", "team-d", current)  # reports the applied version
    with control.client() as client:
        edges = {e["id"]: e for e in client.get("/api/v1/edges").json()}
    edge = edges["edge-d1"]
    assert edge["namespace"] == "team-d" and edge["online"]
    assert edge["applied_version"] == current.strip('"') and edge["in_sync"]


def test_an_edge_silent_for_longer_than_its_heartbeat_allows_is_offline(
    control: Server, edge_token: str
) -> None:
    sync(control, edge_token, "edge-gone", "team-g")
    sync(control, edge_token, "edge-here", "team-g")
    # As if edge-gone stopped 30 s ago: its last heartbeat is that old (the rule allows 25 s).
    with sqlite3.connect(control.data_dir / "solstice.db") as db:
        aged = db.execute(
            "UPDATE edges SET last_seen = datetime(last_seen, '-30 seconds') WHERE id = 'edge-gone'"
        )
        assert aged.rowcount == 1
    with control.client() as client:
        online = {e["id"]: e["online"] for e in client.get("/api/v1/edges").json()}
    assert online["edge-gone"] is False and online["edge-here"] is True
    sync(control, edge_token, "edge-gone", "team-g")  # back: its next sync is a heartbeat
    with control.client() as client:
        assert {e["id"]: e["online"] for e in client.get("/api/v1/edges").json()}["edge-gone"] is True


def test_reload_requests_wake_only_the_edges_asked(control: Server, edge_token: str) -> None:
    tags = {
        edge: sync(control, edge_token, edge, "team-e").headers["etag"] for edge in ("edge-e1", "edge-e2")
    }
    with control.client() as client:
        assert client.post("/api/v1/edges/edge-e1/reload").status_code == 202
        assert client.post("/api/v1/edges/nope/reload").status_code == 404
    woken = sync(control, edge_token, "edge-e1", "team-e", tags["edge-e1"], wait=5)
    assert woken.status_code == 200 and woken.json()["reload_generation"] == 1
    assert sync(control, edge_token, "edge-e2", "team-e", tags["edge-e2"], wait=0.2).status_code == 304
    with control.client() as client:
        answer = client.post("/api/v1/namespaces/team-e/reload")
    assert answer.status_code == 202 and answer.json()["edges"] == 2
    assert sync(control, edge_token, "edge-e2", "team-e", tags["edge-e2"]).json()["reload_generation"] == 1


def test_snapshots_carry_what_an_edge_needs_to_serve(
    control: Server, edge_token: str, tmp_path: Path
) -> None:
    plugin = create_plugin(control, "team-f", config={"header": "X-From"})
    with control.client() as client:
        client.post(
            "/api/v1/llms", json={"name": "F", "vendor": "mock", "namespace": "team-f", "api_key": "sk-up"}
        )
        client.put("/api/v1/llms/f/plugins", json={"plugins": [{"plugin": plugin["slug"]}]})
        client.post("/api/v1/apps", json={"name": "f-app", "llms": ["f"], "namespace": "team-f"})
    snapshot = sync(control, edge_token, "edge-f1", "team-f").json()
    llm = next(item for item in snapshot["llms"] if item["slug"] == "f")
    assert llm["api_key"] == "sk-up" and [e["plugin"] for e in llm["chain"]] == [plugin["slug"]]
    app = next(item for item in snapshot["apps"] if item["name"] == "f-app")
    assert app["llm_ids"] == [llm["id"]] and len(app["key_hashes"]) == 1
    entry = next(p for p in snapshot["plugins"] if p["slug"] == plugin["slug"])
    assert entry["config"] == {"header": "X-From"} and entry["command"] == f"file://{TESTBED}"


def test_the_edge_token_variable_is_an_edge_token_on_the_control_plane(tmp_path: Path) -> None:
    """One Secret, SOLSTICE_EDGE_TOKEN, configures both sides (docker-compose, Kubernetes)."""
    shared = "sol_edge_shared_secret_0123456789"
    server = Server(tmp_path, env={"SOLSTICE_EDGE_TOKEN": shared}).wait_ready()
    try:
        assert sync(server, shared, "e1", "").status_code == 200
        assert sync(server, shared + "x", "e1", "").status_code == 401
        listed = httpx.get(f"{server.url}/api/v1/plugins", headers={"Authorization": f"Bearer {shared}"})
        assert listed.status_code == 403
        with server.client() as client:
            edges = client.get("/api/v1/edges").json()
        assert [edge["id"] for edge in edges] == ["e1"]
    finally:
        server.stop()


def test_stopping_the_control_plane_answers_long_polls_at_once(tmp_path: Path) -> None:
    """A long-poll would hold the drain for its whole wait; the stop answers it with 304 instead."""
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            token = client.post("/api/v1/tokens", json={"name": "e", "scope": "edge"}).json()["token"]
        version = sync(server, token, "poller", "").headers["etag"]
        answers: list[httpx.Response] = []
        poll = threading.Thread(target=lambda: answers.append(sync(server, token, "waiter", "", version, 60)))
        poll.start()
        # The heartbeat comes first: once listed, the poll is waiting.
        wait_until(lambda: "waiter" in edge_ids(server), what="the long-poll's heartbeat", log=server.log)
        # Well under the poll's 60 s: a stop that waited for the poll would be killed and not exit 0.
        code = server.stop(timeout=30)
        poll.join(30)
    finally:
        server.stop()
    assert code == 0, server.log()
    assert [answer.status_code for answer in answers] == [304]
