"""JSON a client sends is bounded (finite numbers, nesting, strict types); a bad stored row breaks nobody."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from solstice.settings import Settings
from solstice.store.database import database_url
from tests.api.problems import problem_detail
from tests.conftest import TESTBED
from tests.inprocess import InProcess


def _slug() -> str:
    return f"j-{uuid.uuid4().hex[:10]}"


def _plugin_body(config: str) -> bytes:
    """A plugin creation body with `config` spliced in as raw JSON text."""
    return (
        f'{{"name": "J", "command": "file://{TESTBED}", "hook_type": "pre_auth", '
        f'"slug": "{_slug()}", "is_active": false, "config": {config}}}'
    ).encode()


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


def _post(app: InProcess, path: str, body: bytes) -> httpx.Response:
    with app.client() as client:
        return client.post(path, content=body, headers={"content-type": "application/json"})


def test_non_finite_numbers_are_refused(app: InProcess) -> None:
    for spelling in ("NaN", "Infinity", "-Infinity", "1e999"):
        detail = problem_detail(_post(app, "/api/v1/plugins", _plugin_body(f'{{"a": {spelling}}}')), 422)
        assert detail.startswith("config.a: ") and "finite" in detail, detail
    with app.client() as client:
        assert client.get("/api/v1/plugins").status_code == 200


def test_deep_values_are_refused_naming_the_field_and_the_limit(app: InProcess) -> None:
    detail = problem_detail(_post(app, "/api/v1/plugins", _plugin_body(_nested(900))), 422)
    assert "config" in detail and "64" in detail, detail
    assert _post(app, "/api/v1/plugins", _plugin_body(_nested(40))).status_code == 201
    with app.client() as client:
        assert client.get("/api/v1/plugins", params={"limit": 500}).status_code == 200
        llm = f"l-{uuid.uuid4().hex[:8]}"
        assert client.post("/api/v1/llms", json={"name": llm, "vendor": "mock"}).status_code == 201
        plugin = client.post(
            "/api/v1/plugins",
            json={"name": "J", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False},
        ).json()["slug"]
        chain = f'{{"plugins": [{{"plugin": "{plugin}", "config_override": {_nested(900)}}}]}}'
        response = client.put(
            f"/api/v1/llms/{llm}/plugins", content=chain, headers={"content-type": "application/json"}
        )
        detail = problem_detail(response, 422)
        assert "config_override" in detail and "64" in detail, detail
        assert client.get(f"/api/v1/llms/{llm}/plugins").status_code == 200


def test_bodies_nested_past_the_parser_get_400(app: InProcess) -> None:
    for body in ("[" * 5000 + "]" * 5000, '{"a": ' * 3000 + "1" + "}" * 3000):
        detail = problem_detail(_post(app, "/api/v1/plugins", body.encode()), 400)
        assert "nested" in detail and "64" in detail, detail
    with app.client() as client:
        llm = f"l-{uuid.uuid4().hex[:8]}"
        assert client.post("/api/v1/llms", json={"name": llm, "vendor": "mock"}).status_code == 201
    # Media types are case-insensitive: application/JSON is JSON too.
    for content_type in ("application/json", "Application/JSON; charset=utf-8"):
        with app.client(token="") as anonymous:
            response = anonymous.post(
                f"/llm/{llm}/v1/chat/completions",
                content=("[" * 5000 + "]" * 5000).encode(),
                headers={"content-type": content_type},
            )
        assert response.status_code == 400, response.text
        message = response.json()["error"]["message"]
        assert "nested" in message and "\n" not in message


def test_booleans_and_strings_are_not_numbers(app: InProcess) -> None:
    with app.client() as client:
        base = {"name": "J", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False}
        for field, value in (("timeout_ms", True), ("timeout_ms", "100"), ("timeout_ms", 2.5)):
            response = client.post("/api/v1/plugins", json={**base, "slug": _slug(), field: value})
            assert field in problem_detail(response, 422)
        response = client.post("/api/v1/plugins", json={**base, "slug": _slug(), "is_active": 1})
        assert "is_active" in problem_detail(response, 422)
        created = client.post("/api/v1/plugins", json={**base, "slug": _slug(), "timeout_ms": 250})
        assert created.status_code == 201 and created.json()["timeout_ms"] == 250
        slug = created.json()["slug"]
        assert "timeout_ms" in problem_detail(
            client.patch(f"/api/v1/plugins/{slug}", json={"timeout_ms": False}), 422
        )
        llm = f"l-{uuid.uuid4().hex[:8]}"
        assert "is_active" in problem_detail(
            client.post("/api/v1/llms", json={"name": llm, "vendor": "mock", "is_active": "yes"}), 422
        )
        assert client.post("/api/v1/llms", json={"name": llm, "vendor": "mock"}).status_code == 201
        chain = {"plugins": [{"plugin": slug, "timeout_ms": True}]}
        assert "timeout_ms" in problem_detail(client.put(f"/api/v1/llms/{llm}/plugins", json=chain), 422)
        assert "plugin" in problem_detail(
            client.put(f"/api/v1/llms/{llm}/plugins", json={"plugins": [{"plugin": True}]}), 422
        )
        assert "llms" in problem_detail(client.post("/api/v1/apps", json={"name": "a", "llms": [True]}), 422)


async def _write_raw(url: str, sql: str, config: str, row_id: int) -> None:
    """Store `config` as written, past every check of the API."""
    engine = create_async_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.execute(text(sql), {"config": config, "id": row_id})
    finally:
        await engine.dispose()


def test_a_bad_stored_row_is_flagged_and_listing_still_works(
    app: InProcess, database: tuple[Path, str]
) -> None:
    data_dir, url = database
    url = database_url(Settings(data_dir=data_dir, database_url=url))
    cast = "CAST(:config AS jsonb)" if url.startswith("postgresql") else ":config"
    with app.client() as client:
        good = client.post(
            "/api/v1/plugins",
            json={"name": "G", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False},
        ).json()
        bad = client.post(
            "/api/v1/plugins",
            json={"name": "B", "command": f"file://{TESTBED}", "hook_type": "pre_auth", "is_active": False},
        ).json()
        llm = f"l-{uuid.uuid4().hex[:8]}"
        assert client.post("/api/v1/llms", json={"name": llm, "vendor": "mock"}).status_code == 201
        chain = {"plugins": [{"plugin": bad["slug"]}]}
        assert client.put(f"/api/v1/llms/{llm}/plugins", json=chain).status_code == 200
    # As written before inputs were checked: nested too deep (PostgreSQL cannot store NaN at all).
    stored = _nested(900) if url.startswith("postgresql") else '{"a": NaN}'
    asyncio.run(_write_raw(url, f"UPDATE plugins SET config = {cast} WHERE id = :id", stored, bad["id"]))
    override = f"UPDATE llm_plugins SET config_override = {cast} WHERE plugin_id = :id"
    asyncio.run(_write_raw(url, override, _nested(900), bad["id"]))
    with app.client() as client:
        listed = client.get("/api/v1/plugins", params={"limit": 500})
        assert listed.status_code == 200, listed.text
        by_slug = {p["slug"]: p for p in listed.json()["data"]}
        assert not any("cannot be read" in w for w in by_slug[good["slug"]]["warnings"])
        flagged = by_slug[bad["slug"]]
        assert flagged["config"] == {}
        assert any("config" in w and "cannot be read" in w for w in flagged["warnings"]), flagged
        one = client.get(f"/api/v1/plugins/{bad['slug']}")
        assert one.status_code == 200
        entries = client.get(f"/api/v1/llms/{llm}/plugins")
        assert entries.status_code == 200, entries.text
        assert entries.json()[0]["config_override"] == {}
        assert any("cannot be read" in w for w in entries.json()[0]["warnings"])
        edge = client.post("/api/v1/tokens", json={"name": "edge-j", "scope": "edge"}).json()["token"]
    with app.client(token=edge) as edge_client:
        synced = edge_client.get("/api/v1/sync", headers={"X-Solstice-Edge-Id": "edge-json"})
    assert synced.status_code == 200, synced.text
    plugins = {p["slug"]: p for p in synced.json()["plugins"]}
    # An edge must fail the plugin rather than run a guard without its rules.
    assert "cannot be read" in plugins[bad["slug"]]["unusable"]
    assert "unusable" not in plugins[good["slug"]]
    with app.client() as client:
        activated = client.patch(f"/api/v1/plugins/{bad['slug']}", json={"is_active": True})
        assert activated.status_code == 200, activated.text
        assert activated.json()["status"] == "failed", activated.json()
        assert "cannot be read" in activated.json()["last_error"]


def test_mock_delay_options_are_bounded_numbers(app: InProcess) -> None:
    slug = f"l-{uuid.uuid4().hex[:8]}"
    with app.client() as client:
        for options in ({"delay_ms": "abc"}, {"delay_ms": [1]}, {"delay_ms": True}, {"chunk_delay_ms": 1e20}):
            refused = client.post("/api/v1/llms", json={"name": slug, "vendor": "mock", "options": options})
            detail = problem_detail(refused, 422)
            assert "options." in detail and "0 to 60000" in detail, detail
        created = client.post(
            "/api/v1/llms", json={"name": slug, "vendor": "mock", "options": {"delay_ms": 5}}
        )
        assert created.status_code == 201, created.text
        patched = client.patch(f"/api/v1/llms/{slug}", json={"options": {"delay_ms": "abc"}})
        assert "0 to 60000" in problem_detail(patched, 422)
        assert client.get(f"/api/v1/llms/{slug}").json()["options"] == {"delay_ms": 5}
