"""Pulling plugins with Solstice's own client from a real registry, images made by umoci/skopeo."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from solstice.oci.errors import ContentError, PlatformError, RegistryAuthError, RegistryError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.images import (
    push_image_with_umoci,
    push_multi_platform_index,
    skopeo_inspect_raw,
    write_plugin_executable,
)
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
    with pytest.raises(RegistryAuthError, match="requires authentication") as refused:
        await make_puller(tmp_path / "anon").pull(
            parse_reference(f"oci://{basic_registry.host}/plugins/b:v1")
        )
    # The message names the variable prefix that would be read for this host:port.
    assert f"NAME is '127_0_0_1_{basic_registry.port}'" in str(refused.value)
    env = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": basic_registry.user,
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORD": basic_registry.password,
        "OCI_PLUGINS_REGISTRY_LOCAL_HOST": basic_registry.host,
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
        "OCI_PLUGINS_REGISTRY_LOCAL_HOST": token_registry.host,
    }
    pulled = await make_puller(tmp_path, env).pull(
        parse_reference(f"oci://{token_registry.host}/plugins/t:v1?auth=local")
    )
    assert "token" in run_output(pulled.path)


async def test_tls_with_ca_bundle(tls_registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "tls")
    push_image_with_umoci(tls_registry, "plugins/s:v1", exe)
    ref = parse_reference(f"oci://{tls_registry.host}/plugins/s:v1")
    with pytest.raises(RegistryError, match="not trusted"):
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


def registry_blob_file(registry: Registry, digest: str) -> Path:
    """Where CNCF distribution's filesystem driver keeps a blob."""
    hex_digest = digest.removeprefix("sha256:")
    return registry.storage_dir / "docker/registry/v2/blobs/sha256" / hex_digest[:2] / hex_digest / "data"


async def test_tampered_blob_is_rejected_and_the_cache_stays_clean(
    registry: Registry, tmp_path: Path
) -> None:
    exe = write_plugin_executable(tmp_path / "p", "genuine")
    digest = push_image_with_umoci(registry, "plugins/tamper:v1", exe)
    manifest = json.loads(skopeo_inspect_raw(registry, f"plugins/tamper@{digest}"))
    layer = registry_blob_file(registry, manifest["layers"][0]["digest"])
    layer.write_bytes(layer.read_bytes()[:-8] + b"tampered")
    puller = make_puller(tmp_path)

    with pytest.raises(ContentError, match="does not match its digest"):
        await puller.pull(parse_reference(f"oci://{registry.host}/plugins/tamper:v1"))

    assert puller.cache.entries() == []
    assert list(puller.cache.tmp.iterdir()) == []


async def test_a_tag_moved_during_a_pull_does_not_change_what_runs(
    registry: Registry, tmp_path: Path
) -> None:
    first = push_image_with_umoci(
        registry, "plugins/moving:v1", write_plugin_executable(tmp_path / "a", "first")
    )
    second_exe = write_plugin_executable(tmp_path / "b", "second")
    moved: list[str] = []

    async def move_tag_before_first_blob(url: httpx.URL) -> None:
        # Runs before each request: once the digest is resolved, the tag is pushed elsewhere.
        if "/blobs/" in url.path and not moved:
            moved.append(
                await asyncio.to_thread(push_image_with_umoci, registry, "plugins/moving:v1", second_exe)
            )

    options = ClientOptions(retries=0, timeout=5, url_guard=move_tag_before_first_blob)
    pulled = await make_puller(tmp_path, client=options).pull(
        parse_reference(f"oci://{registry.host}/plugins/moving:v1")
    )

    assert moved and moved[0] != first
    assert pulled.digest == first
    assert "first" in run_output(pulled.path)


async def test_registry_down_cached_digests_and_tags_still_load(registry: Registry, tmp_path: Path) -> None:
    digest = push_image_with_umoci(
        registry, "plugins/offline:v1", write_plugin_executable(tmp_path / "p", "offline")
    )
    puller = make_puller(tmp_path)
    await puller.pull(parse_reference(f"oci://{registry.host}/plugins/offline:v1"))
    registry.stop()

    pinned = await puller.pull(parse_reference(f"oci://{registry.host}/plugins/offline@{digest}"))
    tagged = await puller.pull(parse_reference(f"oci://{registry.host}/plugins/offline:v1"))

    assert pinned.cached and not pinned.warnings
    assert tagged.cached and tagged.digest == digest
    assert "unreachable" in tagged.warnings[0]
    with pytest.raises(RegistryError, match="unreachable"):
        await puller.pull(parse_reference(f"oci://{registry.host}/plugins/never-pulled:v1"))
