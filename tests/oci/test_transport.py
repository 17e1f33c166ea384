"""The registry transport: blob redirects keep credentials home, retries, size limits.

Blob redirects are tested as object-storage-backed registries send them: a front server proxies a
real registry (Basic auth) and answers blob GETs with a 307 to a "storage" server on another port,
which records the headers it receives.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from solstice.oci.errors import ContentError, RegistryError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.fakes import serving
from tests.oci.images import push_image_with_umoci, write_plugin_executable
from tests.oci.registries import Registry
from tests.server import free_port

HOP_BY_HOP = {"connection", "transfer-encoding", "content-encoding", "content-length", "host"}


@dataclass
class Storage:
    """What the storage server saw."""

    url: str = ""
    authorization_seen: list[str | None] = field(default_factory=list)


@pytest.fixture
async def redirecting(basic_registry: Registry) -> AsyncIterator[tuple[str, Storage]]:
    """(front host:port, storage record): the front redirects blob downloads to the storage server."""
    storage = Storage()
    session = aiohttp.ClientSession()
    creds = base64.b64encode(f"{basic_registry.user}:{basic_registry.password}".encode()).decode()
    upstream = basic_registry.url

    async def blob_from_storage(request: web.Request) -> web.Response:
        storage.authorization_seen.append(request.headers.get("Authorization"))
        async with session.get(
            f"{upstream}{request.path_qs.removeprefix('/storage')}",
            headers={"Authorization": f"Basic {creds}"},
        ) as answer:
            return web.Response(status=answer.status, body=await answer.read())

    async def front(request: web.Request) -> web.StreamResponse:
        if (
            request.method == "GET"
            and "/blobs/sha256:" in request.path
            and "Authorization" in request.headers
        ):
            raise web.HTTPTemporaryRedirect(f"{storage.url}/storage{request.path_qs}")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session.request(
            request.method, f"{upstream}{request.path_qs}", headers=headers, data=await request.read()
        ) as answer:
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, headers=out, body=await answer.read())

    storage_port, front_port = free_port(), free_port()
    storage.url = f"http://127.0.0.1:{storage_port}"
    storage_app, front_app = web.Application(), web.Application()
    storage_app.router.add_route("GET", "/storage/{tail:.*}", blob_from_storage)
    front_app.router.add_route("*", "/{tail:.*}", front)
    try:
        async with serving(storage_app, storage_port), serving(front_app, front_port) as front_host:
            yield front_host, storage
    finally:
        await session.close()


async def test_blob_redirects_are_followed_without_credentials(
    basic_registry: Registry, redirecting: tuple[str, Storage], tmp_path: Path
) -> None:
    front, storage = redirecting
    push_image_with_umoci(
        basic_registry, "plugins/redirected:v1", write_plugin_executable(tmp_path / "p", "far")
    )
    environ = {
        "OCI_PLUGINS_REGISTRY_FRONT_USERNAME": basic_registry.user or "",
        "OCI_PLUGINS_REGISTRY_FRONT_PASSWORD": basic_registry.password or "",
        "OCI_PLUGINS_REGISTRY_FRONT_HOST": front,
    }
    config = OciConfig(tmp_path / "cache", client=ClientOptions(retries=0, timeout=5), environ=environ)

    pulled = await Puller(config).pull(parse_reference(f"oci://{front}/plugins/redirected:v1?auth=FRONT"))

    assert pulled.path.read_text().endswith("exec echo far\n")
    assert storage.authorization_seen, "the storage server was never asked for a blob"
    assert set(storage.authorization_seen) == {None}


@pytest.fixture
async def flaky(registry: Registry) -> AsyncIterator[tuple[str, list[int]]]:
    """(front host:port, statuses sent): the front answers 503 to the first two manifest requests."""
    session = aiohttp.ClientSession()
    sent: list[int] = []

    async def front(request: web.Request) -> web.StreamResponse:
        if "/manifests/" in request.path and sent.count(503) < 2:
            sent.append(503)
            return web.Response(status=503, text='{"errors":[{"code":"UNAVAILABLE","message":"busy"}]}')
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with session.request(
            request.method, f"{registry.url}{request.path_qs}", headers=headers, data=await request.read()
        ) as answer:
            sent.append(answer.status)
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, headers=out, body=await answer.read())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front)
    try:
        async with serving(app) as host:
            yield host, sent
    finally:
        await session.close()


async def test_transient_failures_are_retried_within_the_bound(
    registry: Registry, flaky: tuple[str, list[int]], tmp_path: Path
) -> None:
    front, sent = flaky
    push_image_with_umoci(registry, "plugins/flaky:v1", write_plugin_executable(tmp_path / "p", "flaky"))
    reference = parse_reference(f"oci://{front}/plugins/flaky:v1")

    no_retries = OciConfig(tmp_path / "c1", client=ClientOptions(retries=0, timeout=5))
    with pytest.raises(RegistryError, match="answered 503"):
        await Puller(no_retries).pull(reference)

    sent.clear()
    retrying = OciConfig(tmp_path / "c2", client=ClientOptions(retries=3, timeout=5))
    pulled = await Puller(retrying).pull(reference)
    assert sent[:2] == [503, 503] and pulled.digest


@pytest.mark.parametrize(
    ("content", "refusal"),
    [
        # Random text stays large compressed: the download itself stops at the limit.
        (secrets.token_hex(4096), "larger than the limit of 512 bytes"),
        # A small compressed layer that expands past the limit: refused before extraction.
        ("x" * 8192, "over the limit of 512"),
    ],
)
async def test_content_over_the_size_limit_is_refused(
    registry: Registry, tmp_path: Path, content: str, refusal: str
) -> None:
    push_image_with_umoci(registry, "plugins/big:v1", write_plugin_executable(tmp_path / "p", content))
    config = OciConfig(tmp_path / "cache", max_blob_bytes=512, client=ClientOptions(retries=0, timeout=5))
    puller = Puller(config)
    with pytest.raises(ContentError, match=refusal):
        await puller.pull(parse_reference(f"oci://{registry.host}/plugins/big:v1"))
    assert puller.cache.entries() == []
