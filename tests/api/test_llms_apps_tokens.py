"""LLMs, apps and their keys, tokens and the audit log through the API, in process, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from tests.api.problems import problem_detail
from tests.inprocess import InProcess


def _slug() -> str:
    return f"l-{uuid.uuid4().hex[:8]}"


def test_llm_lifecycle_and_errors(app: InProcess) -> None:
    slug = _slug()
    with app.client() as client:
        created = client.post("/api/v1/llms", json={"name": "Mock", "slug": slug, "vendor": "mock"})
        assert created.status_code == 201, created.text
        llm = created.json()
        assert (llm["vendor"], llm["has_api_key"], llm["is_active"], llm["options"]) == (
            "mock",
            False,
            True,
            {},
        )
        assert client.get(f"/api/v1/llms/{llm['id']}").json()["slug"] == slug
        assert client.get(f"/api/v1/llms/{slug}").json()["id"] == llm["id"]
        assert slug in {row["slug"] for row in client.get("/api/v1/llms").json()}
        again = client.post("/api/v1/llms", json={"name": "Other", "slug": slug, "vendor": "mock"})
        assert f"an LLM with slug {slug!r} already exists" in problem_detail(again, 409)
        assert "needs upstream_url" in problem_detail(
            client.post("/api/v1/llms", json={"name": "o", "slug": _slug(), "vendor": "openai"}), 422
        )
        assert "cannot be null" in problem_detail(
            client.patch(f"/api/v1/llms/{slug}", json={"name": None}), 422
        )
        assert "slug cannot be changed" in problem_detail(
            client.patch(f"/api/v1/llms/{slug}", json={"slug": _slug()}), 422
        )
        patched = client.patch(f"/api/v1/llms/{slug}", json={"is_active": False, "name": "Renamed"})
        assert (patched.json()["is_active"], patched.json()["name"]) == (False, "Renamed")
        assert client.get(f"/api/v1/llms/{slug}").json()["is_active"] is False
        assert client.delete(f"/api/v1/llms/{slug}").status_code == 204
        assert f"no LLM with id or slug {slug!r}" in problem_detail(client.get(f"/api/v1/llms/{slug}"), 404)
        problem_detail(client.delete(f"/api/v1/llms/{slug}"), 404)
        entries = client.get("/api/v1/audit", params={"target": slug}).json()
    assert [(e["action"], e["detail"]) for e in entries][:3] == [
        ("llm.delete", ""),
        ("llm.update", "is_active, name"),
        ("llm.create", ""),
    ]


def test_an_upstream_key_is_never_shown_and_stays_with_its_origin(app: InProcess) -> None:
    slug = _slug()
    body = {"name": "O", "slug": slug, "vendor": "openai", "upstream_url": "https://api.example.com/v1"}
    with app.client() as client:
        created = client.post("/api/v1/llms", json={**body, "api_key": "sk-upstream-secret"})
        assert created.status_code == 201, created.text
        assert created.json()["has_api_key"] is True and "api_key" not in created.json()
        assert "sk-upstream-secret" not in client.get("/api/v1/llms").text
        moved = client.patch(f"/api/v1/llms/{slug}", json={"upstream_url": "https://other.example.com/v1"})
        assert "stored api_key is not sent to another host" in problem_detail(moved, 422)
        same_origin = client.patch(
            f"/api/v1/llms/{slug}", json={"upstream_url": "https://api.example.com/v2"}
        )
        assert same_origin.status_code == 200 and same_origin.json()["has_api_key"] is True
        with_key = client.patch(
            f"/api/v1/llms/{slug}", json={"upstream_url": "https://other.example.com/v1", "api_key": ""}
        )
        assert with_key.status_code == 200 and with_key.json()["has_api_key"] is False
        refused = client.post(
            "/api/v1/llms", json={**body, "slug": _slug(), "upstream_url": "https://u:hunter2@x.example/v1"}
        )
        assert "hunter2" not in problem_detail(refused, 400)
        scheme = client.post(
            "/api/v1/llms", json={**body, "slug": _slug(), "upstream_url": "ftp://x.example"}
        )
        assert "must start with http:// or https://" in problem_detail(scheme, 422)
    assert "sk-upstream-secret" not in app.log()


def test_apps_their_keys_and_llms(app: InProcess) -> None:
    with app.client() as client:
        llm = client.post("/api/v1/llms", json={"name": "m", "slug": _slug(), "vendor": "mock"}).json()
        unknown = client.post("/api/v1/apps", json={"name": "a", "llms": ["no-such-llm"]})
        assert "no LLM with id or slug 'no-such-llm'" in problem_detail(unknown, 422)
        created = client.post("/api/v1/apps", json={"name": "a", "llms": [llm["slug"], llm["id"]]})
        assert created.status_code == 201, created.text
        client_app = created.json()
        assert client_app["llm_ids"] == [llm["id"]], "an LLM named twice is listed once"
        assert [k["name"] for k in client_app["keys"]] == ["initial"]
        assert client_app["key"].startswith(client_app["keys"][0]["prefix"])
        shown = client.get(f"/api/v1/apps/{client_app['id']}")
        assert client_app["key"] not in shown.text and "key" not in shown.json()
        extra = client.post(f"/api/v1/apps/{client_app['id']}/keys", json={"name": "second"}).json()
        assert extra["key"] != client_app["key"] and extra["revoked_at"] is None
        revoked = client.delete(f"/api/v1/apps/{client_app['id']}/keys/{extra['id']}").json()
        assert revoked["revoked_at"] is not None
        keys = client.get(f"/api/v1/apps/{client_app['id']}").json()["keys"]
        assert {k["name"]: k["revoked_at"] is not None for k in keys} == {"initial": False, "second": True}
        assert f"has no key {10**9}" in problem_detail(
            client.delete(f"/api/v1/apps/{client_app['id']}/keys/{10**9}"), 404
        )
        assert "cannot be null" in problem_detail(
            client.patch(f"/api/v1/apps/{client_app['id']}", json={"name": None}), 422
        )
        patched = client.patch(f"/api/v1/apps/{client_app['id']}", json={"llms": [], "is_active": False})
        assert (patched.json()["llm_ids"], patched.json()["is_active"]) == ([], False)
        assert client.delete(f"/api/v1/apps/{client_app['id']}").status_code == 204
        assert "no app with id" in problem_detail(client.get(f"/api/v1/apps/{client_app['id']}"), 404)
        entries = client.get("/api/v1/audit", params={"target": f"app:{client_app['id']}"}).json()
    assert [(e["action"], e["detail"]) for e in entries] == [
        ("app.delete", ""),
        ("app.update", ""),
        ("app.key.revoke", str(extra["id"])),
        ("app.key.create", "second"),
        ("app.create", ""),
    ]


def test_token_scopes(app: InProcess) -> None:
    with app.client() as admin:
        edge = admin.post("/api/v1/tokens", json={"name": "edge-s", "scope": "edge"}).json()
        reader = admin.post("/api/v1/tokens", json={"name": "reader-s", "scope": "read"}).json()
        assert edge["token"].startswith(edge["prefix"]) and edge["scope"] == "edge"
        assert "scope" in problem_detail(
            admin.post("/api/v1/tokens", json={"name": "x", "scope": "root"}), 422
        )
        problem_detail(admin.delete(f"/api/v1/tokens/{10**9}"), 404)
        problem_detail(admin.delete("/api/v1/tokens/0"), 422)
    with app.client(token=edge["token"]) as edge_client:
        assert "may only call GET /api/v1/sync" in problem_detail(edge_client.get("/api/v1/llms"), 403)
    with app.client(token=reader["token"]) as read_client:
        assert read_client.get("/api/v1/llms").status_code == 200
        assert read_client.get("/api/v1/apps").status_code == 200
        assert read_client.get("/api/v1/audit").status_code == 200
        denied = read_client.post("/api/v1/llms", json={"name": "r", "vendor": "mock"})
        assert "changes need an admin token" in problem_detail(denied, 403)
        assert "syncing needs an edge token" in problem_detail(read_client.get("/api/v1/sync"), 403)
        created = read_client.post("/api/v1/apps", json={"name": "r"})
        assert "scope 'read'" in problem_detail(created, 403)
    with app.client() as admin:
        entries = admin.get("/api/v1/audit", params={"target": "token:reader-s"}).json()
    assert [(e["action"], e["detail"], e["actor"]) for e in entries] == [
        ("token.create", "read", "SOLSTICE_ADMIN_TOKEN")
    ]


def test_audit_pages_newest_first(app: InProcess) -> None:
    slug = _slug()
    with app.client() as client:
        client.post("/api/v1/llms", json={"name": "a", "slug": slug, "vendor": "mock"})
        for value in ("one", "two", "three"):
            client.patch(f"/api/v1/llms/{slug}", json={"name": value})
        everything = client.get("/api/v1/audit", params={"target": slug}).json()
        page = client.get("/api/v1/audit", params={"target": slug, "limit": 2, "offset": 1}).json()
        assert "limit" in problem_detail(client.get("/api/v1/audit", params={"limit": 0}), 422)
    assert [e["action"] for e in everything] == ["llm.update"] * 3 + ["llm.create"]
    assert [e["id"] for e in everything] == sorted((e["id"] for e in everything), reverse=True)
    assert page == everything[1:3]
