"""The plugins API against a real server: statuses, errors, lifecycle, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import uuid

import httpx

from tests.api.problems import problem_detail
from tests.conftest import EXAMPLES, TESTBED, pid_alive, wait_until
from tests.inprocess import InProcess


def _slug() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


def _create(app: InProcess, **fields: object) -> httpx.Response:
    body = {
        "name": "Testbed",
        "command": f"file://{TESTBED}",
        "hook_type": "pre_auth",
        "slug": _slug(),
        **fields,
    }
    with app.client() as client:
        return client.post("/api/v1/plugins", json=body)


def _pid(app: InProcess, ref: object) -> int:
    with app.client() as client:
        health = client.get(f"/api/v1/plugins/{ref}/health").json()
    assert health["status"] == "healthy", health
    return health["pid"]


def test_auth_is_required_and_scoped(app: InProcess) -> None:
    with app.client(token="") as anonymous:
        response = anonymous.get("/api/v1/plugins")
    assert "missing bearer token" in problem_detail(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    with app.client(token="sol_wrong") as wrong:
        assert "invalid or revoked" in problem_detail(wrong.get("/api/v1/plugins"), 401)
    with app.client() as admin:
        created = admin.post("/api/v1/tokens", json={"name": "viewer", "scope": "read"})
    assert created.status_code == 201
    secret = created.json()["token"]
    with app.client(token=secret) as reader:
        assert reader.get("/api/v1/plugins").status_code == 200
        refused = reader.post(
            "/api/v1/plugins", json={"name": "x", "command": "file:///x", "hook_type": "auth"}
        )
        assert "scope 'read'" in problem_detail(refused, 403)
        assert "scope 'read'" in problem_detail(reader.get("/api/v1/tokens"), 403)
    with app.client() as admin:
        listed = admin.get("/api/v1/tokens").json()
        assert all("token" not in t for t in listed)
        viewer = next(t for t in listed if t["name"] == "viewer")
        assert admin.delete(f"/api/v1/tokens/{viewer['id']}").json()["revoked_at"] is not None
    with app.client(token=secret) as revoked:
        problem_detail(revoked.get("/api/v1/plugins"), 401)
    assert secret not in app.log()
    assert app.token not in app.log()


def test_validation_errors(app: InProcess) -> None:
    detail = problem_detail(_create(app, hook_type="pre-auth"), 422)
    assert detail == (
        "hook_type: hook type 'pre-auth' is invalid; valid hook types: "
        "pre_auth, auth, post_auth, on_response, data_collection, custom_endpoint, scheduled_task, object_hooks, agent"
    )
    assert problem_detail(_create(app, hok_type="auth"), 422).startswith("unknown field 'hok_type'")
    assert "hook_type is required" in problem_detail(_create(app, hook_type=None), 422)
    assert "plugin_type" in problem_detail(_create(app, plugin_type="sidecar"), 422)
    assert "is one of Solstice's own settings" in problem_detail(
        _create(app, env=["SOLSTICE_ADMIN_TOKEN"]), 422
    )
    with app.client() as client:
        assert "not valid JSON" in problem_detail(client.post("/api/v1/plugins", content=b"{nope"), 400)
        assert problem_detail(client.post("/api/v1/plugins", content=b"[1]"), 422).startswith(
            "request body must be"
        )
    assert "name contains a NUL character" in problem_detail(_create(app, name="a\x00b"), 422)
    assert "config.k[0] contains a NUL character" in problem_detail(_create(app, config={"k": ["\x00"]}), 422)
    with app.client() as client:
        assert "NUL" in problem_detail(client.get("/api/v1/plugins/a%00b"), 400)
    mismatch = _create(app, command="oci://r.example/a:v1", oci_reference="r.example/b:v1", is_active=False)
    assert "does not match command" in problem_detail(mismatch, 422)


def test_refused_commands_are_400_with_the_reason(app: InProcess) -> None:
    assert "write it as file:///usr/local/bin/my-plugin" in problem_detail(
        _create(app, command="file://./my-plugin"), 400
    )
    assert "write it as file:///usr/local/bin/my-plugin" in problem_detail(
        _create(app, command="/usr/local/bin/my-plugin"), 400
    )
    detail = problem_detail(_create(app, command="grpc://admin:hunter2@host:1"), 400)
    assert "hunter2" not in detail


def test_duplicate_slug_is_409_and_derived_slugs_are_unique(app: InProcess) -> None:
    slug = _slug()
    assert _create(app, slug=slug, is_active=False).status_code == 201
    assert "already exists" in problem_detail(_create(app, slug=slug, is_active=False), 409)
    name = f"Derived {uuid.uuid4().hex[:6]}"
    first = _create(app, slug=None, name=name, is_active=False).json()
    second = _create(app, slug=None, name=name, is_active=False).json()
    assert first["slug"] == name.lower().replace(" ", "-")
    assert second["slug"] == f"{first['slug']}-2"


def test_failed_start_is_stored_with_its_error(app: InProcess) -> None:
    response = _create(app, command="file:///nonexistent/my-plugin")
    assert response.status_code == 201
    plugin = response.json()
    assert plugin["status"] == "failed"
    assert plugin["last_error"].startswith("plugin executable /nonexistent/my-plugin does not exist")
    with app.client() as client:
        assert client.get(f"/api/v1/plugins/{plugin['slug']}").json()["status"] == "failed"


def test_get_by_id_or_slug_and_404(app: InProcess) -> None:
    plugin = _create(app, is_active=False).json()
    with app.client() as client:
        assert client.get(f"/api/v1/plugins/{plugin['id']}").json()["slug"] == plugin["slug"]
        assert client.get(f"/api/v1/plugins/{plugin['slug']}").json()["id"] == plugin["id"]
        assert "no plugin with id or slug 'nope-404'" in problem_detail(
            client.get("/api/v1/plugins/nope-404"), 404
        )
        assert "no route" in problem_detail(client.get("/api/v1/nothing"), 404)


def test_list_filters_and_pagination(app: InProcess) -> None:
    namespace = f"ns{uuid.uuid4().hex[:6]}"
    for hooks in (["pre_auth"], ["post_auth", "on_response"], ["on_response"]):
        assert (
            _create(app, namespace=namespace, hook_type=None, hook_types=hooks, is_active=False).status_code
            == 201
        )
    with app.client() as client:
        everything = client.get("/api/v1/plugins", params={"namespace": namespace}).json()
        assert everything["total"] == 3
        on_response = client.get(
            "/api/v1/plugins", params={"namespace": namespace, "hook_type": "on_response"}
        )
        assert on_response.json()["total"] == 2
        page = client.get("/api/v1/plugins", params={"namespace": namespace, "limit": 2, "offset": 2}).json()
        assert (page["total"], len(page["data"]), page["limit"], page["offset"]) == (3, 1, 2, 2)
        inactive = client.get("/api/v1/plugins", params={"namespace": namespace, "is_active": "false"}).json()
        assert inactive["total"] == 3
        data = everything["data"][1]
        assert (data["hook_type"], data["hook_types"]) == ("post_auth", ["post_auth", "on_response"])
        assert data["failure_policy"] == "fail_closed"
        assert everything["data"][2]["failure_policy"] == "fail_open"


def test_patch_config_reloads_and_rejected_config_keeps_the_old(app: InProcess) -> None:
    plugin = _create(app).json()
    before = _pid(app, plugin["id"])
    with app.client() as client:
        patched = client.patch(f"/api/v1/plugins/{plugin['id']}", json={"config": {"slow_ms": 5}})
        assert patched.status_code == 200, patched.text
        assert patched.json()["config"] == {"slow_ms": 5}
        after = _pid(app, plugin["id"])
        assert after != before and not pid_alive(before)
        rejected = client.patch(f"/api/v1/plugins/{plugin['id']}", json={"config": {"reject": "bad"}})
        assert "config asked to be rejected: bad" in problem_detail(rejected, 422)
        assert client.get(f"/api/v1/plugins/{plugin['id']}").json()["config"] == {"slow_ms": 5}
        assert _pid(app, plugin["id"]) == after
        assert "cannot be null" in problem_detail(
            client.patch(f"/api/v1/plugins/{plugin['id']}", json={"name": None}), 422
        )
        assert "slug cannot be changed" in problem_detail(
            client.patch(f"/api/v1/plugins/{plugin['id']}", json={"slug": "other-slug"}), 422
        )


def test_schema_mismatch_is_422_and_keeps_the_running_plugin(app: InProcess) -> None:
    plugin = _create(
        app, command=f"file://{EXAMPLES / 'header-enricher' / 'plugin.py'}", hook_type="post_auth"
    ).json()
    pid = _pid(app, plugin["id"])
    with app.client() as client:
        bad = client.patch(f"/api/v1/plugins/{plugin['id']}", json={"config": {"headers": {"X": 5}}})
    detail = problem_detail(bad, 422)
    assert "does not match the plugin's schema at /headers/X" in detail
    assert _pid(app, plugin["id"]) == pid


def test_put_replaces_and_deactivation_stops(app: InProcess) -> None:
    plugin = _create(app, description="old", namespace="a").json()
    pid = _pid(app, plugin["id"])
    with app.client() as client:
        body = {
            "name": "Replaced",
            "command": f"file://{TESTBED}",
            "hook_types": ["auth"],
            "is_active": False,
        }
        replaced = client.put(f"/api/v1/plugins/{plugin['slug']}", json=body).json()
    assert (replaced["name"], replaced["description"], replaced["namespace"]) == ("Replaced", "", "")
    assert (replaced["hook_type"], replaced["status"], replaced["slug"]) == (
        "auth",
        "inactive",
        plugin["slug"],
    )
    assert not pid_alive(pid)


def test_delete_stops_the_plugin(app: InProcess) -> None:
    plugin = _create(app).json()
    pid = _pid(app, plugin["id"])
    with app.client() as client:
        assert client.delete(f"/api/v1/plugins/{plugin['id']}").status_code == 204
        problem_detail(client.get(f"/api/v1/plugins/{plugin['id']}"), 404)
        problem_detail(client.delete(f"/api/v1/plugins/{plugin['id']}"), 404)
    assert not pid_alive(pid)


def test_reload_switches_and_failed_reload_keeps_the_old(app: InProcess, tmp_path) -> None:
    script = tmp_path / "plugin"
    script.write_text(f"#!/bin/sh\nexec {TESTBED}\n")
    script.chmod(0o755)
    plugin = _create(app, command=f"file://{script}").json()
    first = _pid(app, plugin["id"])
    with app.client() as client:
        reloaded = client.post(f"/api/v1/plugins/{plugin['id']}/reload")
        assert reloaded.status_code == 200 and reloaded.json()["status"] == "healthy"
        second = _pid(app, plugin["id"])
        assert second != first
        script.chmod(0o644)
        failed = client.post(f"/api/v1/plugins/{plugin['id']}/reload")
        detail = problem_detail(failed, 502)
        assert f"run chmod +x {script}" in detail and "keeps serving" in detail
        assert _pid(app, plugin["id"]) == second
        inactive = _create(app, is_active=False).json()
        assert "is inactive" in problem_detail(client.post(f"/api/v1/plugins/{inactive['id']}/reload"), 409)


def test_health_of_one_and_all(app: InProcess) -> None:
    plugin = _create(app).json()
    os.kill(_pid(app, plugin["id"]), signal.SIGKILL)
    with app.client() as client:

        def restarted() -> dict[str, object] | None:
            health = client.get(f"/api/v1/plugins/{plugin['id']}/health").json()
            return health if health["restarts"] == 1 and health["status"] == "healthy" else None

        health = wait_until(restarted, 20, app.log, what="the killed plugin to be restarted once")
        assert health["uptime_s"] >= 0 and health["last_error"] is None
        report = client.get("/api/v1/plugins/health").json()
        assert report["summary"]["total"] == len(report["plugins"])
        assert sum(report["summary"]["by_status"].values()) == report["summary"]["total"]
        metrics = client.get("/metrics").text
    assert f'solstice_plugin_restarts_total{{plugin="{plugin["slug"]}"}} 1.0' in metrics
    assert "solstice_http_requests_total" in metrics


def test_audit_log_records_operations(app: InProcess) -> None:
    plugin = _create(app, is_active=False).json()
    with app.client() as client:
        client.patch(f"/api/v1/plugins/{plugin['id']}", json={"description": "changed"})
        client.delete(f"/api/v1/plugins/{plugin['id']}")
        entries = client.get("/api/v1/audit", params={"target": plugin["slug"]}).json()
    assert [e["action"] for e in entries] == ["plugin.delete", "plugin.update", "plugin.create"]
    assert {e["actor"] for e in entries} == {"SOLSTICE_ADMIN_TOKEN"}
    assert entries[1]["detail"] == "description"


def test_operational_endpoints(app: InProcess) -> None:
    with app.client(token="") as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        ready = client.get("/readyz").json()
        assert ready == {"status": "ready", "checks": {"database": "ok", "plugins": "ok"}}
        spec = client.get("/openapi.json").json()
        assert "/api/v1/plugins/{ref}/reload" in spec["paths"]
        # Every reference resolves: client generators and schemathesis read the whole document.
        references = set(re.findall(r'"\$ref": "([^"]+)"', json.dumps(spec)))
        defined = {f"#/components/schemas/{name}" for name in spec["components"]["schemas"]}
        assert references <= defined, references - defined
        chain = spec["paths"]["/api/v1/llms/{ref}/plugins"]["put"]["requestBody"]["content"]
        entry = chain["application/json"]["schema"]["properties"]["plugins"]["items"]
        assert "failure_policy" in entry["properties"]
        response = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        assert response.headers["x-request-id"] == "abc-123"


def test_reloads_under_api_load_fail_no_request(app: InProcess) -> None:
    import asyncio

    plugin = _create(app, config={"slow_ms": 1}).json()

    async def run() -> list[httpx.Response]:
        async with app.async_client() as client:

            async def reads() -> list[httpx.Response]:
                return [await client.get(f"/api/v1/plugins/{plugin['id']}/health") for _ in range(60)]

            async def reloads() -> list[httpx.Response]:
                return [await client.post(f"/api/v1/plugins/{plugin['id']}/reload") for _ in range(5)]

            results = await asyncio.gather(reads(), reads(), reads(), reloads())
            return [r for batch in results for r in batch]

    responses = asyncio.run(run())
    assert [r.status_code for r in responses if r.status_code != 200] == []
    statuses = {r.json()["status"] for r in responses if r.request.method == "GET"}
    assert statuses == {"healthy"}, "the old instance serves until the new one took over"
