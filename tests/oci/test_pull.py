"""Pulling plugins with Solstice's own client from a real registry, images made by umoci/skopeo."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from solstice.oci.errors import ContentError, PlatformError, RegistryAuthError, RegistryError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.images import push_image_with_umoci, push_multi_platform_index, write_plugin_executable
from tests.oci.registries import Registry


def make_puller(tmp_path: Path, environ: dict[str, str] | None = None, **options: object) -> Puller:
    client = options.pop("client", ClientOptions(retries=0, timeout=5))
    config = OciConfig(cache_dir=tmp_path / "cache", client=client, environ=environ or {}, **options)  # type: ignore[arg-type]
    return Puller(config)


def run_output(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, timeout=10, check=True).stdout


async def test_pulls_an_image_built_by_umoci_and_runs_its_entrypoint(
    registry: Registry, tmp_path: Path
) -> None:
    exe = write_plugin_executable(tmp_path / "p", "umoci-image")
    digest = push_image_with_umoci(registry, "plugins/echo:v1", exe)
    puller = make_puller(tmp_path)

    pulled = await puller.pull(parse_reference(f"oci://{registry.host}/plugins/echo:v1"))

    assert pulled.digest == digest
    assert not pulled.cached
    assert "umoci-image" in run_output(pulled.path)
    again = await puller.pull(parse_reference(f"oci://{registry.host}/plugins/echo:v1"))
    assert again.cached and again.path == pulled.path


async def test_multi_platform_index_selects_arch(registry: Registry, tmp_path: Path) -> None:
    amd = write_plugin_executable(tmp_path / "amd", "built-for-amd64")
    arm = write_plugin_executable(tmp_path / "arm", "built-for-arm64")
    push_multi_platform_index(registry, "plugins/multi:v1", {"linux/amd64": amd, "linux/arm64": arm})
    puller = make_puller(tmp_path)

    pulled = await puller.pull(parse_reference(f"oci://{registry.host}/plugins/multi:v1?arch=linux/arm64"))
    assert "built-for-arm64" in run_output(pulled.path)
    with pytest.raises(PlatformError, match="offers: linux/amd64, linux/arm64"):
        await puller.pull(parse_reference(f"oci://{registry.host}/plugins/multi:v1?arch=linux/s390x"))


async def test_basic_auth_from_environment(basic_registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "basic")
    push_image_with_umoci(basic_registry, "plugins/b:v1", exe)
    ref = parse_reference(f"oci://{basic_registry.host}/plugins/b:v1?auth=LOCAL")
    with pytest.raises(RegistryAuthError, match="requires authentication"):
        await make_puller(tmp_path / "anon").pull(
            parse_reference(f"oci://{basic_registry.host}/plugins/b:v1")
        )
    env = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": basic_registry.user,
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORD": basic_registry.password,
    }
    pulled = await make_puller(tmp_path, env).pull(ref)
    assert "basic" in run_output(pulled.path)


async def test_token_auth(token_registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "token")
    push_image_with_umoci(token_registry, "plugins/t:v1", exe)
    env = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": token_registry.user,
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORDENV": "SECRET",
        "SECRET": token_registry.password,
    }
    pulled = await make_puller(tmp_path, env).pull(
        parse_reference(f"oci://{token_registry.host}/plugins/t:v1?auth=local")
    )
    assert "token" in run_output(pulled.path)


async def test_tls_with_ca_bundle(tls_registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "tls")
    push_image_with_umoci(tls_registry, "plugins/s:v1", exe)
    ref = parse_reference(f"oci://{tls_registry.host}/plugins/s:v1")
    with pytest.raises(RegistryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        await make_puller(tmp_path / "system-cas").pull(ref)
    options = ClientOptions(retries=0, timeout=5, ca_bundle=str(tls_registry.ca_path))
    pulled = await make_puller(tmp_path, client=options).pull(ref)
    assert "tls" in run_output(pulled.path)


async def test_concurrent_loads_download_once(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "x" * 1000)
    push_image_with_umoci(registry, "plugins/c:v1", exe)
    puller = make_puller(tmp_path)
    ref = parse_reference(f"oci://{registry.host}/plugins/c:v1")
    results = await asyncio.gather(*(puller.pull(ref) for _ in range(8)))
    assert sum(not r.cached for r in results) == 1


async def test_truncated_umoci_insert_layer_is_refused(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "insert")
    push_image_with_umoci(registry, "plugins/i:v1", exe, layer="insert")
    with pytest.raises(ContentError):
        await make_puller(tmp_path).pull(parse_reference(f"oci://{registry.host}/plugins/i:v1"))
