"""PLUGIN_BLOCK_INTERNAL_URLS with a real registry: the registry, and every URL the client is sent to."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from solstice.host.oci_config import config_from_settings, policy_backend
from solstice.oci.errors import OciDisabledError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from solstice.security.addresses import IPAddress
from solstice.security.allowlist import parse_allowlist
from solstice.security.policy import Policy
from solstice.security.resolve import ResolveError
from tests.conftest import fast_settings
from tests.oci.fakes import serving
from tests.oci.images import push_image_with_umoci, write_plugin_executable
from tests.oci.registries import Registry


def puller(tmp_path: Path, allowlist: str) -> Puller:
    settings = fast_settings(
        data_dir=tmp_path, plugin_block_internal_urls=True, plugin_command_allowlist=allowlist, oci_retries=0
    )
    return Puller(config_from_settings(settings))


async def test_an_allowlisted_internal_registry_is_pulled_from(registry: Registry, tmp_path: Path) -> None:
    push_image_with_umoci(registry, "plugins/ok:v1", write_plugin_executable(tmp_path / "p", "ok"))
    pulled = await puller(tmp_path, f"oci://{registry.host}/*").pull(
        parse_reference(f"oci://{registry.host}/plugins/ok:v1")
    )
    assert pulled.digest


async def test_a_registry_not_listed_is_refused_before_any_request(
    registry: Registry, tmp_path: Path
) -> None:
    push_image_with_umoci(registry, "plugins/no:v1", write_plugin_executable(tmp_path / "p", "no"))
    with pytest.raises(OciDisabledError, match="PLUGIN_BLOCK_INTERNAL_URLS=true refuses it"):
        await puller(tmp_path, "oci://registry.example.com/*").pull(
            parse_reference(f"oci://{registry.host}/plugins/no:v1")
        )


@pytest.fixture
async def redirect_to_other_loopback(registry: Registry) -> AsyncIterator[str]:
    """host:port of a front that proxies manifests and redirects blobs to 127.0.0.2 (internal)."""
    session = aiohttp.ClientSession()

    async def front(request: web.Request) -> web.StreamResponse:
        if "/blobs/" in request.path:
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.2:9/{request.path_qs}")
        headers = {k: v for k, v in request.headers.items() if k.lower() in ("accept",)}
        async with session.request(
            request.method, f"{registry.url}{request.path_qs}", headers=headers
        ) as answer:
            kept = {
                k: v
                for k, v in answer.headers.items()
                if k.lower() in ("content-type", "docker-content-digest")
            }
            return web.Response(status=answer.status, headers=kept, body=await answer.read())

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", front)
    try:
        async with serving(app) as host:
            yield host
    finally:
        await session.close()


async def test_a_redirect_to_an_internal_host_is_refused(
    registry: Registry, redirect_to_other_loopback: str, tmp_path: Path
) -> None:
    push_image_with_umoci(registry, "plugins/far:v1", write_plugin_executable(tmp_path / "p", "far"))
    front = redirect_to_other_loopback
    with pytest.raises(OciDisabledError, match=r"sent to 127\.0\.0\.2, an internal network address"):
        await puller(tmp_path, "oci://127.0.0.1:*/*").pull(parse_reference(f"oci://{front}/plugins/far:v1"))


class PinnedResolver:
    """A resolver that knows a name the system resolver does not."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.lookups: list[str] = []

    async def resolve(self, host: str) -> list[IPAddress]:
        self.lookups.append(host)
        if host not in self.answers:
            raise ResolveError(f"{host} does not resolve")
        return [ipaddress.ip_address(self.answers[host])]


async def test_connections_go_to_the_checked_address_without_a_second_lookup(
    registry: Registry, tmp_path: Path
) -> None:
    # `registry.test` exists only for the policy's resolver: the pull can only work if the
    # connection uses the address the policy checked, never a fresh lookup by the HTTP client.
    push_image_with_umoci(registry, "plugins/pin:v1", write_plugin_executable(tmp_path / "p", "pin"))
    resolver = PinnedResolver({"registry.test": "127.0.0.1"})
    policy = Policy(parse_allowlist("oci://registry.test:*/*"), block_internal_urls=True, resolver=resolver)
    name = f"registry.test:{registry.port}"
    options = ClientOptions(
        retries=0, timeout=5, insecure_registries=frozenset({name}), network_backend=policy_backend(policy)
    )
    pulled = await Puller(OciConfig(tmp_path / "cache", client=options)).pull(
        parse_reference(f"oci://{name}/plugins/pin:v1")
    )
    assert pulled.digest and "registry.test" in resolver.lookups
