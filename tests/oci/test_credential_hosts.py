"""A credential set is tied to its registry: `?auth=NAME` never carries it to another host, and
Basic credentials go only to the registry or the token realm it names, over HTTPS unless local."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web

from solstice.oci.errors import RegistryAuthError, RegistryError
from solstice.oci.puller import OciConfig, Pulled, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.fakes import serving
from tests.oci.images import push_image_with_umoci, write_plugin_executable
from tests.oci.registries import Registry
from tests.server import free_port


async def pull(tmp_path: Path, reference: str, environ: dict[str, str]) -> Pulled:
    config = OciConfig(tmp_path / "cache", client=ClientOptions(retries=0, timeout=5), environ=environ)
    return await Puller(config).pull(parse_reference(reference))


def corp(registry: Registry, *, host: str | None = None) -> dict[str, str]:
    environ = {
        "OCI_PLUGINS_REGISTRY_CORP_USERNAME": registry.user or "",
        "OCI_PLUGINS_REGISTRY_CORP_PASSWORD": registry.password or "",
        "OCI_PLUGINS_REGISTRY_CORP_TOKEN": "",
    }
    if host is not None:
        environ["OCI_PLUGINS_REGISTRY_CORP_HOST"] = host
    return environ


@asynccontextmanager
async def recorder(
    challenge: str = 'Basic realm="fake"', ip: str = "127.0.0.1"
) -> AsyncIterator[tuple[str, list[str | None]]]:
    """A fake registry that answers 401 `challenge` to everything and records Authorization."""
    seen: list[str | None] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    try:
        await web.TCPSite(runner, ip, port).start()
        yield f"{ip}:{port}", seen
    finally:
        await runner.cleanup()


async def test_a_named_set_with_its_host_pulls_from_that_registry(
    basic_registry: Registry, tmp_path: Path
) -> None:
    reference = f"oci://{basic_registry.host}/plugins/c:v1"
    push_image_with_umoci(basic_registry, "plugins/c:v1", write_plugin_executable(tmp_path / "p", "c"))
    pulled = await pull(tmp_path, reference + "?auth=CORP", corp(basic_registry, host=basic_registry.host))
    assert pulled.digest.startswith("sha256:")


@pytest.mark.parametrize("kind", ["basic", "token", "entitlement"])
async def test_a_named_set_is_never_sent_to_another_registry(
    basic_registry: Registry, tmp_path: Path, kind: str
) -> None:
    environ = corp(basic_registry, host=basic_registry.host)
    if kind == "token":
        environ["OCI_PLUGINS_REGISTRY_CORP_TOKEN"] = "corp-token-secret"
    if kind == "entitlement":
        environ["OCI_PLUGINS_REGISTRY_CORP_ENTITLEMENT"] = "corp-entitlement-secret"
    async with recorder() as (other, seen):
        with pytest.raises(RegistryAuthError) as caught:
            await pull(tmp_path, f"oci://{other}/plugins/c:v1?auth=CORP", environ)
    message = str(caught.value)
    assert "OCI_PLUGINS_REGISTRY_CORP_" in message and other in message
    assert basic_registry.password not in message
    assert all(header is None for header in seen), seen


async def test_a_named_set_without_a_host_is_refused(basic_registry: Registry, tmp_path: Path) -> None:
    async with recorder() as (other, seen):
        with pytest.raises(RegistryAuthError, match="OCI_PLUGINS_REGISTRY_CORP_HOST"):
            await pull(tmp_path, f"oci://{other}/plugins/c:v1?auth=CORP", corp(basic_registry))
    assert all(header is None for header in seen), seen


async def test_a_host_named_set_with_another_host_is_refused(tmp_path: Path) -> None:
    async with recorder() as (other, seen):
        name = other.replace(".", "_").replace(":", "_")
        environ = {
            f"OCI_PLUGINS_REGISTRY_{name}_TOKEN": "tok-secret",
            f"OCI_PLUGINS_REGISTRY_{name}_HOST": "registry.example.com",
        }
        with pytest.raises(RegistryAuthError, match=r"registry\.example\.com"):
            await pull(tmp_path, f"oci://{other}/plugins/c:v1", environ)
    assert all(header is None for header in seen), seen


async def test_basic_credentials_never_go_to_a_plain_http_realm_elsewhere(
    basic_registry: Registry, tmp_path: Path
) -> None:
    # 127.0.0.2 is neither this registry nor "localhost": the realm would get the password in clear.
    async with recorder(ip="127.0.0.2") as (realm, realm_seen):
        challenge = f'Bearer realm="http://{realm}/token",service="fake"'
        async with recorder(challenge) as (registry_host, _seen):
            environ = corp(basic_registry, host=registry_host)
            with pytest.raises(RegistryError, match="https"):
                await pull(tmp_path, f"oci://{registry_host}/plugins/c:v1?auth=CORP", environ)
    assert realm_seen == [], realm_seen


async def test_a_challenge_from_a_redirect_target_gets_no_credentials(
    basic_registry: Registry, tmp_path: Path
) -> None:
    async with recorder() as (realm, realm_seen):
        challenge = f'Bearer realm="http://{realm}/token",service="fake"'
        async with recorder(challenge) as (storage, storage_seen):

            async def front(request: web.Request) -> web.Response:
                raise web.HTTPTemporaryRedirect(f"http://{storage}{request.path}")

            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", front)
            async with serving(app) as registry_host:
                environ = corp(basic_registry, host=registry_host)
                with pytest.raises(RegistryError):
                    await pull(tmp_path, f"oci://{registry_host}/plugins/c:v1?auth=CORP", environ)
    assert all(header is None for header in storage_seen), storage_seen
    assert realm_seen == [], realm_seen
