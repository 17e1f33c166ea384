"""Signature policy at pull time: verified before anything is downloaded or run, against real registries."""

from __future__ import annotations

from pathlib import Path

import pytest

from solstice.oci import signing
from solstice.oci.errors import RegistryError, SignatureRequiredError
from solstice.oci.keys import generate_keypair, load_private_key
from solstice.oci.puller import OciConfig, Pulled, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient
from solstice.oci.signatures import signature_tag
from tests.oci.images import push_image_with_umoci, push_multi_platform_index, write_plugin_executable
from tests.oci.registries import Registry

PASSWORD = b"test-password"


def keypair(directory: Path, name: str) -> tuple[object, Path]:
    """A cosign key pair: the private key object and the path of cosign.pub."""
    private_pem, public_pem = generate_keypair(PASSWORD)
    public = directory / f"{name}.pub"
    public.write_bytes(public_pem)
    return load_private_key(private_pem, PASSWORD), public


def puller(cache: Path, **keys: Path) -> Puller:
    environ = {f"OCI_PLUGINS_PUBLIC_KEY_{name}": str(path) for name, path in keys.items()}
    config = OciConfig(
        cache, require_signature=True, client=ClientOptions(retries=0, timeout=5), environ=environ
    )
    return Puller(config)


async def sign(registry: Registry, image: str, digest: str, key: object, fmt: str) -> None:
    async with RegistryClient(registry.host, None, ClientOptions()) as client:
        await signing.sign(client, parse_reference(image), digest, key, fmt=fmt)  # type: ignore[arg-type]


async def pull(p: Puller, image: str) -> Pulled:
    return await p.pull(parse_reference(image))


@pytest.mark.parametrize("fmt", ["bundle", "legacy"])
async def test_signed_plugins_load_in_both_formats(registry: Registry, tmp_path: Path, fmt: str) -> None:
    key, public = keypair(tmp_path, "signer")
    digest = push_image_with_umoci(
        registry, "plugins/signed:v1", write_plugin_executable(tmp_path / "p", fmt)
    )
    image = f"oci://{registry.host}/plugins/signed:v1"
    await sign(registry, image, digest, key, fmt)

    pulled = await pull(puller(tmp_path / "cache", **{"1": public}), image)

    assert pulled.digest == digest and pulled.verified_key


async def test_unsigned_plugin_is_refused_and_nothing_is_cached(registry: Registry, tmp_path: Path) -> None:
    _, public = keypair(tmp_path, "signer")
    push_image_with_umoci(registry, "plugins/unsigned:v1", write_plugin_executable(tmp_path / "p", "u"))
    p = puller(tmp_path / "cache", **{"1": public})
    with pytest.raises(SignatureRequiredError, match="has no cosign signature"):
        await pull(p, f"oci://{registry.host}/plugins/unsigned:v1")
    assert p.cache.entries() == []


async def test_signature_by_another_key_is_refused(registry: Registry, tmp_path: Path) -> None:
    _, trusted = keypair(tmp_path, "trusted")
    stranger, _ = keypair(tmp_path, "stranger")
    digest = push_image_with_umoci(registry, "plugins/other:v1", write_plugin_executable(tmp_path / "p", "o"))
    image = f"oci://{registry.host}/plugins/other:v1"
    await sign(registry, image, digest, stranger, "bundle")
    with pytest.raises(SignatureRequiredError, match="no valid signature") as info:
        await pull(puller(tmp_path / "cache", **{"1": trusted}), image)
    assert "1" in str(info.value)


async def test_signature_for_another_digest_is_refused(registry: Registry, tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "signer")
    signed = push_image_with_umoci(registry, "plugins/swap:v1", write_plugin_executable(tmp_path / "a", "a"))
    image = f"oci://{registry.host}/plugins/swap:v1"
    await sign(registry, image, signed, key, "legacy")
    unsigned = push_image_with_umoci(
        registry, "plugins/swap:v1", write_plugin_executable(tmp_path / "b", "b")
    )
    # An attacker copies the valid signature of `signed` to where `unsigned`'s would be.
    async with RegistryClient(registry.host, None, ClientOptions()) as client:
        sig = await client.manifest("plugins/swap", signature_tag(signed))
        await client.put_manifest("plugins/swap", signature_tag(unsigned), sig.raw, sig.media_type)
    with pytest.raises(SignatureRequiredError, match=f"signature is for {signed}"):
        await pull(puller(tmp_path / "cache", **{"1": public}), image)


async def test_pubkey_option_selects_one_key(registry: Registry, tmp_path: Path) -> None:
    prod, prod_pub = keypair(tmp_path, "prod")
    _, dev_pub = keypair(tmp_path, "dev")
    digest = push_image_with_umoci(registry, "plugins/pick:v1", write_plugin_executable(tmp_path / "p", "p"))
    image = f"oci://{registry.host}/plugins/pick:v1"
    await sign(registry, image, digest, prod, "bundle")
    p = puller(tmp_path / "cache", PROD=prod_pub, DEV=dev_pub)
    with pytest.raises(SignatureRequiredError):
        await pull(p, image + "?pubkey=DEV")
    assert (await pull(p, image + "?pubkey=PROD")).digest == digest
    with pytest.raises(SignatureRequiredError, match="OCI_PLUGINS_PUBLIC_KEY_NOPE"):
        await pull(p, image + "?pubkey=NOPE")


async def test_signed_index_verifies_before_choosing_a_platform(registry: Registry, tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "signer")
    executables = {
        "linux/amd64": write_plugin_executable(tmp_path / "amd", "amd"),
        "linux/arm64": write_plugin_executable(tmp_path / "arm", "arm"),
    }
    index = push_multi_platform_index(registry, "plugins/multi:v1", executables)
    image = f"oci://{registry.host}/plugins/multi:v1"
    await sign(registry, image, index, key, "legacy")
    pulled = await pull(puller(tmp_path / "cache", **{"1": public}), image + "?arch=linux/arm64")
    assert pulled.digest == index and pulled.manifest_digest != index


async def test_cached_plugin_needs_a_key_that_is_still_trusted(registry: Registry, tmp_path: Path) -> None:
    key, public = keypair(tmp_path, "old")
    _, rotated = keypair(tmp_path, "new")
    digest = push_image_with_umoci(
        registry, "plugins/rotate:v1", write_plugin_executable(tmp_path / "p", "r")
    )
    image = f"oci://{registry.host}/plugins/rotate@{digest}"
    await sign(registry, image, digest, key, "bundle")
    assert not (await pull(puller(tmp_path / "cache", **{"1": public}), image)).cached
    assert (await pull(puller(tmp_path / "cache", **{"1": public}), image)).cached
    registry.stop()
    # The key that verified the cached copy is no longer configured: it must be verified again.
    with pytest.raises(RegistryError, match="unreachable"):
        await pull(puller(tmp_path / "cache", **{"1": rotated}), image)
