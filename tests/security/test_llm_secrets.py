"""An LLM's upstream key: never in logs, never echoed, not sent to a host it was not given for."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.conftest import wait_until
from tests.server import Server
from tests.test_edge import Edge

KEY = "sk-upstream-0123456789-secret"


@pytest.fixture(scope="module")
def debug_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(tmp_path_factory.mktemp("secrets"), env={"SOLSTICE_LOG_LEVEL": "debug"}).wait_ready()
    yield server
    server.stop()


def test_debug_logs_never_hold_the_upstream_key(debug_server: Server) -> None:
    with debug_server.client() as client:
        created = client.post(
            "/api/v1/llms",
            json={"name": "logged", "upstream_url": "https://api.example.com/v1", "api_key": KEY},
        )
        assert created.status_code == 201, created.text
        changed = client.patch("/api/v1/llms/logged", json={"api_key": KEY + "-2"})
        assert changed.status_code == 200, changed.text
        assert client.get("/api/v1/llms/logged").json()["has_api_key"] is True
    log = debug_server.log()
    assert '"level": "debug"' in log, "the server logs at debug"
    assert KEY not in log


def test_upstream_url_with_credentials_is_refused(debug_server: Server) -> None:
    with debug_server.client() as client:
        for body in (
            {"name": "cred", "upstream_url": "https://user:hunter2@api.example.com/v1"},
            {"name": "cred", "upstream_url": "https://hunter2@api.example.com/v1"},
        ):
            refused = client.post("/api/v1/llms", json=body)
            assert refused.status_code == 400, refused.text
            assert "hunter2" not in refused.text and "api_key" in refused.json()["detail"]
        client.post("/api/v1/llms", json={"name": "plain", "upstream_url": "https://api.example.com/v1"})
        patched = client.patch(
            "/api/v1/llms/plain", json={"upstream_url": "https://a:hunter2@api.example.com"}
        )
        assert patched.status_code == 400 and "hunter2" not in patched.text
        assert client.get("/api/v1/llms/plain").json()["upstream_url"] == "https://api.example.com/v1"
    assert "hunter2" not in debug_server.log()


def test_a_new_origin_needs_the_key_again(debug_server: Server) -> None:
    with debug_server.client() as client:
        created = client.post(
            "/api/v1/llms",
            json={"name": "moving", "upstream_url": "https://api.example.com/v1", "api_key": KEY},
        )
        assert created.status_code == 201, created.text
        # The same origin keeps the key: only the path changes.
        same = client.patch("/api/v1/llms/moving", json={"upstream_url": "https://API.example.com:443/v2"})
        assert same.status_code == 200, same.text
        for elsewhere in (
            "https://evil.example.net/v1",
            "http://api.example.com/v1",
            "https://api.example.com:8443/v1",
        ):
            refused = client.patch("/api/v1/llms/moving", json={"upstream_url": elsewhere})
            assert refused.status_code == 422, refused.text
            assert "api_key" in refused.json()["detail"]
        assert client.get("/api/v1/llms/moving").json()["upstream_url"] == "https://API.example.com:443/v2"
        moved = client.patch(
            "/api/v1/llms/moving", json={"upstream_url": "https://evil.example.net/v1", "api_key": "sk-other"}
        )
        assert moved.status_code == 200 and moved.json()["upstream_url"] == "https://evil.example.net/v1"
        # Clearing the key is an answer too; an LLM without a key may move freely.
        cleared = client.patch(
            "/api/v1/llms/moving", json={"upstream_url": "https://third.example.org/v1", "api_key": ""}
        )
        assert cleared.status_code == 200 and cleared.json()["has_api_key"] is False
        free = client.patch("/api/v1/llms/moving", json={"upstream_url": "https://fourth.example.org/v1"})
        assert free.status_code == 200, free.text


def test_key_file_is_private(debug_server: Server) -> None:
    key_file = Path(debug_server.log_path).parent / "secret.key"
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600


# -- encryption at rest -----------------------------------------------------------------------------


def _sent_key(server: Server | Edge, slug: str, app_key: str) -> str:
    """The authorization the mock upstream received (it shows the key's last four characters)."""
    answer = httpx.post(
        f"{server.url}/llm/{slug}/v1/echo",
        json={"model": "m", "messages": []},
        headers={"Authorization": f"Bearer {app_key}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["headers"]).get("authorization", "")


def _stored_key(data_dir: Path, slug: str) -> str:
    with sqlite3.connect(data_dir / "solstice.db") as db:
        return db.execute("SELECT api_key FROM llms WHERE slug = ?", (slug,)).fetchone()[0]


def _files_holding(directory: Path, secret: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def test_keys_are_encrypted_at_rest_and_rotated(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            assert (
                client.post(
                    "/api/v1/llms", json={"name": "vault", "vendor": "mock", "api_key": KEY}
                ).status_code
                == 201
            )
            app_key = client.post("/api/v1/apps", json={"name": "vault-app", "llms": ["vault"]}).json()["key"]
        assert _sent_key(server, "vault", app_key) == "Bearer ***cret"
    finally:
        server.stop()
    assert _stored_key(tmp_path, "vault").startswith("enc:v1:")
    assert _files_holding(tmp_path, KEY) == [], "no file of the data directory holds the key"

    # A key stored in plain text before encryption is encrypted at the next start.
    with sqlite3.connect(tmp_path / "solstice.db") as db:
        db.execute("UPDATE llms SET api_key = ? WHERE slug = 'vault'", (KEY,))
    first_key = (tmp_path / "secret.key").read_text().strip()
    new_key = Fernet.generate_key().decode()
    # Rotation: the new key seals, the old one still opens, and every value moves to the new one.
    server = Server(
        tmp_path, env={"SOLSTICE_SECRET_KEY": new_key, "SOLSTICE_SECRET_KEYS_OLD": first_key}
    ).wait_ready()
    try:
        assert _sent_key(server, "vault", app_key) == "Bearer ***cret"
    finally:
        server.stop()
    stored = _stored_key(tmp_path, "vault")
    assert stored.startswith("enc:v1:") and KEY not in stored
    with sqlite3.connect(tmp_path / "solstice.db") as db:
        db.execute("UPDATE llms SET api_key = ? WHERE slug = 'vault'", (stored,))
    # Sealed again under the new key: the old one is no longer needed.
    server = Server(tmp_path, env={"SOLSTICE_SECRET_KEY": new_key}).wait_ready()
    try:
        assert _sent_key(server, "vault", app_key) == "Bearer ***cret"
    finally:
        server.stop()
    # A server with a key that opens nothing still starts and says which LLM lost its key.
    server = Server(tmp_path, env={"SOLSTICE_SECRET_KEY": Fernet.generate_key().decode()}).wait_ready()
    try:
        assert _sent_key(server, "vault", app_key) != "Bearer ***cret"
        assert "SOLSTICE_SECRET_KEYS_OLD" in server.log() and "vault" in server.log()
    finally:
        server.stop()


def test_a_bad_secret_key_stops_the_start_with_one_line(tmp_path: Path) -> None:
    for env, named in (
        ({"SOLSTICE_SECRET_KEY": "not-a-key-hunter2"}, "SOLSTICE_SECRET_KEY is not a usable key"),
        ({"SOLSTICE_SECRET_KEYS_OLD": "hunter2"}, "entry 1 of SOLSTICE_SECRET_KEYS_OLD is not a usable key"),
        (
            {"SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST": "http://x"},
            "SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST entry",
        ),
    ):
        server = Server(tmp_path, env=env)
        assert server.proc.wait(60) == 2
        server.stop()
        last = server.log().strip().splitlines()[-1]
        assert last.startswith(f"solstice: {named}"), server.log()
        assert "hunter2" not in server.log(), "a key is named, never shown"
        server.log_path.unlink()


def test_the_edge_snapshot_file_holds_no_plain_key(tmp_path: Path) -> None:
    (tmp_path / "control").mkdir()
    control = Server(tmp_path / "control").wait_ready()
    try:
        with control.client() as client:
            client.post("/api/v1/llms", json={"name": "edged", "vendor": "mock", "api_key": KEY})
            app_key = client.post("/api/v1/apps", json={"name": "edge-app", "llms": ["edged"]}).json()["key"]
            token = client.post("/api/v1/tokens", json={"name": "edge", "scope": "edge"}).json()["token"]
        edge = Edge(tmp_path / "edge", control, token, "").start()
        try:
            snapshot = tmp_path / "edge" / "edge-snapshot.json"
            wait_until(snapshot.exists, 30, edge.read_log)
            assert _sent_key(edge, "edged", app_key) == "Bearer ***cret"
        finally:
            edge.stop()
    finally:
        control.stop()
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert _files_holding(tmp_path / "edge", KEY) == []
    # Offline, the restarted edge opens its snapshot and still sends the key.
    edge = Edge(tmp_path / "edge", control, token, "").start()
    try:
        assert edge.ready()["config"]["source"] == "disk"  # type: ignore[index]
        assert _sent_key(edge, "edged", app_key) == "Bearer ***cret"
    finally:
        edge.stop()
