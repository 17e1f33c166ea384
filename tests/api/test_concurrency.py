"""Many clients at once: concurrent creates and reloads leave store and processes consistent."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx

from tests.conftest import pid_alive
from tests.inprocess import InProcess

COUNT = 50


async def _all(requests: list[object]) -> list[httpx.Response]:
    return await asyncio.gather(*requests)  # type: ignore[arg-type]


def test_fifty_concurrent_creates_and_reloads(app: InProcess, go_plugin: Path) -> None:
    prefix = f"c{uuid.uuid4().hex[:6]}"
    namespace = prefix
    before = set(app.plugin_pids())

    async def run() -> tuple[list[httpx.Response], list[httpx.Response], list[httpx.Response]]:
        async with app.async_client() as client:
            bodies = [
                {
                    "name": f"{prefix}-{i}",
                    "command": f"file://{go_plugin}",
                    "hook_type": "pre_auth",
                    "namespace": namespace,
                }
                for i in range(COUNT - 3)
            ]
            # The same explicit slug twice at once: exactly one create may win.
            bodies += [{**bodies[0], "slug": f"{prefix}-x"}, {**bodies[0], "slug": f"{prefix}-x"}]
            # The same name twice with no slug: both are created, with different derived slugs.
            bodies += [{**bodies[0], "name": f"{prefix} same"}, {**bodies[0], "name": f"{prefix} same"}]
            created = await _all([client.post("/api/v1/plugins", json=b) for b in bodies])
            slugs = [r.json()["slug"] for r in created if r.status_code == 201]
            reloads = await _all([client.post(f"/api/v1/plugins/{s}/reload") for s in slugs * 2])
            listed = await _all(
                [client.get("/api/v1/plugins", params={"namespace": namespace, "limit": 500})]
            )
            return created, reloads, listed

    created, reloads, listed = asyncio.run(run())
    codes = sorted(r.status_code for r in created)
    assert codes == [201] * COUNT + [409], [r.text for r in created if r.status_code not in (201, 409)]
    derived = sorted(r.json()["slug"] for r in created if r.json().get("name") == f"{prefix} same")
    assert derived == [f"{prefix}-same", f"{prefix}-same-2"]
    assert all(r.status_code == 200 for r in reloads), [r.text for r in reloads if r.status_code != 200]
    page = listed[0].json()
    assert page["total"] == COUNT
    assert {p["status"] for p in page["data"]} == {"healthy"}
    with app.client() as client:
        pids = {client.get(f"/api/v1/plugins/{p['slug']}/health").json()["pid"] for p in page["data"]}
    assert len(pids) == COUNT and all(pid_alive(p) for p in pids)
    # Exactly one process per plugin: reloads left no stray instance behind.
    ours = set(app.plugin_pids()) - before
    assert ours == pids
    with app.client() as client:
        for plugin in page["data"]:
            assert client.delete(f"/api/v1/plugins/{plugin['slug']}").status_code == 204
    assert not (set(app.plugin_pids()) - before)
