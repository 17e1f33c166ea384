"""Numeric ids are never handed out twice: an old id in a script cannot act on a newer row."""

from __future__ import annotations

import uuid

from tests.conftest import TESTBED
from tests.inprocess import InProcess


def _plugin(client: object) -> int:
    body = {"name": "Id", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False}
    response = client.post("/api/v1/plugins", json={**body, "slug": f"id-{uuid.uuid4().hex[:8]}"})  # type: ignore[attr-defined]
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_deleted_ids_are_not_reused(app: InProcess) -> None:
    with app.client() as client:
        for _ in range(2):  # the newest row deleted: the case a rowid reuses
            gone = _plugin(client)
            assert client.delete(f"/api/v1/plugins/{gone}").status_code == 204
            assert _plugin(client) > gone

            llm = client.post(
                "/api/v1/llms", json={"name": f"l-{uuid.uuid4().hex[:8]}", "vendor": "mock"}
            ).json()
            assert client.delete(f"/api/v1/llms/{llm['id']}").status_code == 204
            again = client.post("/api/v1/llms", json={"name": f"l-{uuid.uuid4().hex[:8]}", "vendor": "mock"})
            assert again.json()["id"] > llm["id"]

            older = client.post("/api/v1/apps", json={"name": "a"}).json()
            assert client.delete(f"/api/v1/apps/{older['id']}").status_code == 204
            newer = client.post("/api/v1/apps", json={"name": "b"}).json()
            assert newer["id"] > older["id"]
            assert newer["keys"][0]["id"] > older["keys"][0]["id"]

            token = client.post("/api/v1/tokens", json={"name": "t", "scope": "read"}).json()
            assert client.delete(f"/api/v1/tokens/{token['id']}").status_code == 200
            assert (
                client.post("/api/v1/tokens", json={"name": "u", "scope": "read"}).json()["id"] > token["id"]
            )
