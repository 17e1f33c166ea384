"""oci:// plugins through a real `solstice serve`: load, digest, reload after a tag moves, offline cache."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import httpx

from tests.conftest import EXAMPLES, TESTBED, wait_until
from tests.oci.images import push_image_with_umoci
from tests.oci.registries import Registry
from tests.server import Server


def copy_testbed(tmp_path: Path, marker: str) -> Path:
    """The testbed plugin with a marker comment, so each push has its own digest."""
    path = tmp_path / f"testbed-{marker}"
    shutil.copyfile(TESTBED, path)
    with path.open("a") as out:
        out.write(f"# build {marker}\n")
    path.chmod(0o755)
    return path


def wait_status(client: httpx.Client, slug: str, wanted: str, timeout: float = 30) -> dict:
    """The plugin `slug` once the API reports it `wanted`."""

    def reached() -> dict | None:
        plugin = client.get(f"/api/v1/plugins/{slug}").json()
        return plugin if plugin["status"] == wanted else None

    return wait_until(reached, timeout, what=f"{slug}: {wanted}")


def test_oci_plugin_lifecycle(registry: Registry, tmp_path: Path) -> None:
    first = push_image_with_umoci(registry, "plugins/testbed:v1", copy_testbed(tmp_path, "one"))
    server = Server(tmp_path).wait_ready()
    try:
        slug = f"oci-{uuid.uuid4().hex[:8]}"
        image = f"{registry.host}/plugins/testbed:v1"
        with server.client() as client:
            created = client.post(
                "/api/v1/plugins",
                json={
                    "name": "OCI testbed", "slug": slug, "command": f"oci://{image}",
                    "oci_reference": image, "hook_type": "pre_auth", "is_active": True,
                },
            )  # fmt: skip
            assert created.status_code == 201, created.text
            plugin = wait_status(client, slug, "healthy")
            assert plugin["status"] == "healthy", plugin
            assert plugin["digest"] == first
            health = client.get(f"/api/v1/plugins/{slug}/health").json()
            assert health["digest"] == first and health["pid"]

            # The tag moves: a reload re-resolves it and runs the new digest.
            second = push_image_with_umoci(registry, "plugins/testbed:v1", copy_testbed(tmp_path, "two"))
            assert second != first
            reloaded = client.post(f"/api/v1/plugins/{slug}/reload")
            assert reloaded.status_code == 200, reloaded.text
            assert client.get(f"/api/v1/plugins/{slug}").json()["digest"] == second

            # Registry down: the last digest of the tag still loads from the cache, with a warning.
            registry.stop()
            reloaded = client.post(f"/api/v1/plugins/{slug}/reload")
            assert reloaded.status_code == 200, reloaded.text
            plugin = client.get(f"/api/v1/plugins/{slug}").json()
            assert plugin["digest"] == second and plugin["status"] == "healthy"
            assert any("unreachable" in w and second in w for w in plugin["warnings"]), plugin

            metrics = client.get("/metrics").text
        assert f'solstice_oci_pulls_total{{registry="{registry.host}",result="pulled"}} 2.0' in metrics
        assert f'solstice_oci_cache_hits_total{{registry="{registry.host}"}} 1.0' in metrics
        assert "oci-cache" in server.log()
    finally:
        server.stop()


def test_mismatched_oci_reference_and_bad_references_are_refused(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            mismatch = client.post(
                "/api/v1/plugins",
                json={
                    "name": "x", "command": "oci://r.example.com/p/a:v1",
                    "oci_reference": "r.example.com/p/a:v2", "hook_type": "pre_auth",
                },
            )  # fmt: skip
            assert mismatch.status_code == 422, mismatch.text
            assert "does not match" in mismatch.json()["detail"]
            bad = client.post(
                "/api/v1/plugins",
                json={"name": "y", "command": "oci://r.example.com/Upper/a:v1", "hook_type": "pre_auth"},
            )
            assert bad.status_code == 400, bad.text
            assert "lowercase" in bad.json()["detail"]
    finally:
        server.stop()


def test_an_oci_plugin_serves_endpoints_and_keeps_data(registry: Registry, tmp_path: Path) -> None:
    inbox = tmp_path / "webhook-inbox"
    shutil.copyfile(EXAMPLES / "webhook-inbox" / "plugin.py", inbox)
    inbox.chmod(0o755)
    push_image_with_umoci(registry, "plugins/inbox:v1", inbox)
    server = Server(tmp_path).wait_ready()
    try:
        with server.client() as client:
            created = client.post("/api/v1/plugins", json={
                "name": "inbox", "command": f"oci://{registry.host}/plugins/inbox:v1",
                "hook_types": ["custom_endpoint"],
            })  # fmt: skip
            assert created.status_code == 201, created.text
            assert wait_status(client, "inbox", "healthy")["pending_scopes"] == ["kv.readwrite"]
            assert client.post(
                "/api/v1/plugins/inbox/scopes/approve", json={"scopes": ["kv.readwrite"]}
            ).is_success
            key = client.post("/api/v1/apps", json={"name": "ci", "llms": []}).json()["key"]
        headers = {"Authorization": f"Bearer {key}"}
        posted = httpx.post(f"{server.url}/plugins/inbox/hooks", content=b"from oci", headers=headers)
        assert posted.status_code == 202, posted.text
        back = httpx.get(f"{server.url}/plugins/inbox/hooks/{posted.json()['id']}", headers=headers)
        assert back.content == b"from oci"
    finally:
        server.stop()
