"""Pull edge cases found in review: eviction races, signature policy changes, timeouts, broken bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from solstice.oci import signing
from solstice.oci.errors import ContentError, PlatformError, RegistryError, SignatureRequiredError
from solstice.oci.keys import generate_keypair, load_private_key
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient
from tests.oci.fakes import serving
from tests.oci.images import push_image_with_umoci, write_plugin_executable
from tests.oci.registries import Registry

OPTIONS = ClientOptions(retries=0, timeout=5)


def puller(cache: Path, **config: object) -> Puller:
    return Puller(OciConfig(cache, client=config.pop("client", OPTIONS), **config))  # type: ignore[arg-type]


async def test_concurrent_pulls_never_evict_what_the_other_returns(
    registry: Registry, tmp_path: Path
) -> None:
    for name in ("a", "b"):
        push_image_with_umoci(
            registry, f"plugins/{name}:v1", write_plugin_executable(tmp_path / name, name * 4000)
        )
    small = puller(tmp_path / "cache", cache_max_bytes=6000)
    first, second = await asyncio.gather(
        *(small.pull(parse_reference(f"oci://{registry.host}/plugins/{n}:v1")) for n in ("a", "b"))
    )
    assert first.path.is_file() and second.path.is_file()
    small.unpin(first.key)
    assert [e.key for e in small.cache.evict(small.pinned)] == [first.key]


async def test_a_pull_still_closing_its_client_keeps_its_entry_from_a_concurrent_eviction(
    registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b"):
        push_image_with_umoci(
            registry, f"plugins/{name}:v1", write_plugin_executable(tmp_path / name, name * 4000)
        )
    small = puller(tmp_path / "cache", cache_max_bytes=6000)
    a_closing, b_done = asyncio.Event(), asyncio.Event()
    closing = RegistryClient.aclose
    closes = 0

    async def close_after_b(self: RegistryClient) -> None:
        # a closes first, with its entry committed: b finishes and evicts while a still waits here.
        nonlocal closes
        closes += 1
        if closes == 1:
            a_closing.set()
            await b_done.wait()
        await closing(self)

    async def pull_b_then_signal() -> Path:
        await a_closing.wait()
        pulled = await small.pull(parse_reference(f"oci://{registry.host}/plugins/b:v1"))
        b_done.set()
        return pulled.path

    monkeypatch.setattr(RegistryClient, "aclose", close_after_b)
    first, second = await asyncio.gather(
        small.pull(parse_reference(f"oci://{registry.host}/plugins/a:v1")), pull_b_then_signal()
    )
    assert first.path.is_file() and second.is_file()


async def test_requiring_signatures_later_verifies_once_then_trusts_the_cache(
    registry: Registry, tmp_path: Path
) -> None:
    private_pem, public_pem = generate_keypair(b"pw")
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    digest = push_image_with_umoci(registry, "plugins/s:v1", write_plugin_executable(tmp_path / "p", "s"))
    image = f"oci://{registry.host}/plugins/s:v1"
    async with RegistryClient(registry.host, None, ClientOptions()) as client:
        await signing.sign(client, parse_reference(image), digest, load_private_key(private_pem, b"pw"))
    await puller(tmp_path / "cache").pull(parse_reference(image))  # unverified, cached
    environ = {"OCI_PLUGINS_PUBLIC_KEY_1": str(tmp_path / "cosign.pub")}
    strict = [puller(tmp_path / "cache", require_signature=True, environ=environ) for _ in range(2)]
    assert not (await strict[0].pull(parse_reference(image))).cached  # verified now ...
    assert (await strict[1].pull(parse_reference(image))).cached  # ... and remembered


async def test_a_refused_new_tag_does_not_replace_the_remembered_digest(
    registry: Registry, tmp_path: Path
) -> None:
    private_pem, public_pem = generate_keypair(b"pw")
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    image = f"oci://{registry.host}/plugins/t:v1"
    signed = push_image_with_umoci(registry, "plugins/t:v1", write_plugin_executable(tmp_path / "a", "a"))
    async with RegistryClient(registry.host, None, ClientOptions()) as client:
        await signing.sign(client, parse_reference(image), signed, load_private_key(private_pem, b"pw"))
    environ = {"OCI_PLUGINS_PUBLIC_KEY_1": str(tmp_path / "cosign.pub")}
    strict = puller(tmp_path / "cache", require_signature=True, environ=environ)
    await strict.pull(parse_reference(image))
    push_image_with_umoci(registry, "plugins/t:v1", write_plugin_executable(tmp_path / "b", "unsigned"))
    with pytest.raises(SignatureRequiredError):
        await strict.pull(parse_reference(image))
    registry.stop()
    offline = await strict.pull(parse_reference(image))
    assert offline.digest == signed and offline.warnings


async def test_a_warm_single_platform_image_still_checks_the_platform(
    registry: Registry, tmp_path: Path
) -> None:
    push_image_with_umoci(
        registry, "plugins/amd:v1", write_plugin_executable(tmp_path / "p", "amd"), arch="amd64"
    )
    p = puller(tmp_path / "cache")
    await p.pull(parse_reference(f"oci://{registry.host}/plugins/amd:v1?arch=linux/amd64"))
    with pytest.raises(PlatformError, match="is built for linux/amd64, not linux/arm64"):
        await p.pull(parse_reference(f"oci://{registry.host}/plugins/amd:v1?arch=linux/arm64"))


@pytest.fixture
async def front(registry: Registry) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """host:port of a proxy whose blob answers the test breaks: mode "slow" or "truncate"."""
    session = aiohttp.ClientSession()
    mode: dict[str, str] = {"blobs": "pass"}

    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {k: v for k, v in request.headers.items() if k.lower() == "accept"}
        async with session.request(
            request.method, f"{registry.url}{request.path_qs}", headers=headers
        ) as answer:
            body = await answer.read()
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "docker-content-digest")
            }
        if "/blobs/" in request.path and mode["blobs"] != "pass":
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            response.force_close()  # the connection ends short of Content-Length, not kept alive
            await response.prepare(request)
            if mode["blobs"] == "slow":
                await asyncio.sleep(1.5)
            await response.write(body[: len(body) // 2])
            return response
        return web.Response(status=answer.status, headers=kept, body=body)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    try:
        async with serving(app) as host:
            yield host, mode
    finally:
        await session.close()


async def test_a_body_cut_short_is_a_registry_error(
    registry: Registry, front: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    host, mode = front
    push_image_with_umoci(registry, "plugins/cut:v1", write_plugin_executable(tmp_path / "p", "x" * 5000))
    mode["blobs"] = "truncate"
    p = puller(tmp_path / "cache")
    with pytest.raises(RegistryError, match="broke off"):
        await p.pull(parse_reference(f"oci://{host}/plugins/cut:v1"))
    assert p.cache.entries() == []


async def test_the_total_timeout_bounds_a_whole_pull(
    registry: Registry, front: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    host, mode = front
    push_image_with_umoci(registry, "plugins/slow:v1", write_plugin_executable(tmp_path / "p", "slow"))
    mode["blobs"] = "slow"
    p = puller(tmp_path / "cache", client=ClientOptions(retries=0, timeout=10, total_timeout=1))
    with pytest.raises(RegistryError, match="took longer than 1 s"):
        await p.pull(parse_reference(f"oci://{host}/plugins/slow:v1"))


async def test_an_index_entry_without_a_digest_is_refused(tmp_path: Path) -> None:
    # CNCF distribution refuses such an index, so a few lines of fake registry serve it.
    index = (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":'
        b'[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"v1","size":2,'
        b'"platform":{"os":"linux","architecture":"amd64"}}]}'
    )

    async def manifest(request: web.Request) -> web.Response:
        return web.Response(body=index, content_type="application/vnd.oci.image.index.v1+json")

    app = web.Application()
    app.router.add_route("*", "/v2/plugins/bad/manifests/{ref}", manifest)
    async with serving(app) as host:
        reference = parse_reference(f"oci://{host}/plugins/bad:v1?arch=linux/amd64")
        with pytest.raises(ContentError, match="has the digest 'v1'"):
            await puller(tmp_path / "cache").pull(reference)
