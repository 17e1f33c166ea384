"""`solstice.oci.push` against a real registry, checked by skopeo and by pulling and running the result."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from solstice.oci import credentials, media
from solstice.oci.errors import RegistryAuthError
from solstice.oci.platform import host_platform
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.push import PushError, push, write_image_layer
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient
from tests.oci.conftest import RegistryFactory
from tests.oci.images import (
    layout_files,
    pull_with_skopeo,
    sha256_digest,
    skopeo_inspect_raw,
    write_plugin_executable,
)
from tests.oci.registries import Registry

OPTIONS = ClientOptions(retries=0, timeout=5)


def client_for(registry: Registry, environ: dict[str, str] | None = None) -> RegistryClient:
    credential = credentials.resolve(registry.host, environ or {}, "LOCAL" if environ else None)
    return RegistryClient(registry.host, credential, OPTIONS)


def blob(registry: Registry, repository: str, digest: str) -> bytes:
    with registry.client() as http:
        answer = http.get(f"/v2/{repository}/blobs/{digest}")
    answer.raise_for_status()
    return answer.content


async def pull_and_run(registry: Registry, tmp_path: Path, reference: str) -> str:
    """Pull with Solstice's puller (a consumer independent of the pusher) and run the executable."""
    puller = Puller(OciConfig(cache_dir=tmp_path / "cache", client=OPTIONS))
    pulled = await puller.pull(parse_reference(f"oci://{registry.host}/{reference}"))
    done = subprocess.run([str(pulled.path)], capture_output=True, text=True, timeout=10, check=True)
    return done.stdout


async def test_artifact_has_the_oci_11_layout_and_runs_after_a_pull(
    registry: Registry, tmp_path: Path
) -> None:
    exe = write_plugin_executable(tmp_path / "my-plugin", "artifact payload")
    async with client_for(registry) as client:
        digest = await push(client, "plugins/art", "v1", [(exe, None)], fmt="artifact")

    raw = skopeo_inspect_raw(registry, "plugins/art:v1")
    assert sha256_digest(raw) == digest
    manifest = json.loads(raw)
    assert manifest["mediaType"] == media.OCI_MANIFEST
    assert manifest["artifactType"] == media.PLUGIN_ARTIFACT_TYPE
    assert manifest["config"] == {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_JSON_DIGEST, "size": 2}
    assert blob(registry, "plugins/art", media.EMPTY_JSON_DIGEST) == b"{}"
    [layer] = manifest["layers"]
    assert layer["mediaType"] == media.PLUGIN_BINARY
    assert layer["annotations"] == {media.TITLE_ANNOTATION: "my-plugin"}
    assert blob(registry, "plugins/art", layer["digest"]) == exe.read_bytes()
    assert media.CREATED_ANNOTATION in manifest["annotations"]

    layout = pull_with_skopeo(registry, "plugins/art:v1", tmp_path / "layout")
    stored = layout / "blobs" / "sha256" / layer["digest"].removeprefix("sha256:")
    assert stored.read_bytes() == exe.read_bytes()
    assert await pull_and_run(registry, tmp_path, "plugins/art:v1") == "artifact payload\n"


async def test_image_is_what_from_scratch_copy_entrypoint_builds(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "my-plugin", "image payload")
    sent: list[int] = []
    totals: list[int] = []
    async with client_for(registry) as client:
        digest = await push(
            client, "plugins/img", "v1", [(exe, None)], progress=sent.append, on_total=totals.append
        )

    raw = skopeo_inspect_raw(registry, "plugins/img:v1")
    assert sha256_digest(raw) == digest
    manifest = json.loads(raw)
    assert manifest["config"]["mediaType"] == media.OCI_IMAGE_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert totals == [sum(sent)] and totals[0] > exe.stat().st_size

    config = json.loads(blob(registry, "plugins/img", manifest["config"]["digest"]))
    os_name, arch = host_platform().split("/")[:2]
    assert (config["os"], config["architecture"]) == (os_name, arch)
    assert config["config"]["Entrypoint"] == ["/plugin"]
    compressed = blob(registry, "plugins/img", layer["digest"])
    # Reproducible gzip: no file name (FLG.FNAME unset) and MTIME 0 in the header.
    assert compressed[3] & 0x08 == 0 and compressed[4:8] == b"\0\0\0\0"
    plain = gzip.decompress(compressed)
    assert config["rootfs"] == {"type": "layers", "diff_ids": [sha256_digest(plain)]}
    with tarfile.open(fileobj=io.BytesIO(plain)) as archive:
        [member] = archive.getmembers()
        assert (member.name, member.mode, member.uid, member.gid, member.mtime) == ("plugin", 0o755, 0, 0, 0)
        assert member.isreg()

    layout = pull_with_skopeo(registry, "plugins/img:v1", tmp_path / "layout")
    assert layout_files(layout) == {"plugin": exe.read_bytes()}
    assert await pull_and_run(registry, tmp_path, "plugins/img:v1") == "image payload\n"


@pytest.mark.parametrize("fmt", ["image", "artifact"])
async def test_the_same_file_pushed_twice_has_the_same_digest(
    registry: Registry, tmp_path: Path, fmt: Any
) -> None:
    exe = write_plugin_executable(tmp_path / "p", "same")
    async with client_for(registry) as client:
        first = await push(client, "plugins/same", "v1", [(exe, None)], fmt=fmt)
        again = await push(client, "plugins/same", "v2", [(exe, None)], fmt=fmt)
        elsewhere = await push(client, "other/repo", "v1", [(exe, None)], fmt=fmt)
        # A copy made later has another mtime, hence another created time, but the same layer.
        copy = tmp_path / "copy" / "p"
        copy.parent.mkdir()
        shutil.copyfile(exe, copy)
        os.utime(copy, (1_000_000_000, 1_000_000_000))
        copied = await push(client, "plugins/same", "v3", [(copy, None)], fmt=fmt)
        manifests = [await client.manifest("plugins/same", tag) for tag in ("v1", "v3")]
    assert first == again == elsewhere != copied
    assert manifests[0].data["layers"] == manifests[1].data["layers"]
    assert manifests[1].data["annotations"][media.CREATED_ANNOTATION] == "2001-09-09T01:46:40Z"


@pytest.mark.parametrize("fmt", ["image", "artifact"])
async def test_several_platforms_make_an_index(registry: Registry, tmp_path: Path, fmt: Any) -> None:
    amd = write_plugin_executable(tmp_path / "amd" / "p", "built for amd64")
    arm = write_plugin_executable(tmp_path / "arm" / "p", "built for arm64")
    files = [(amd, "linux/amd64"), (arm, "linux/arm64/v8")]
    async with client_for(registry) as client:
        digest = await push(client, "plugins/multi", "v1", files, fmt=fmt)

    raw = skopeo_inspect_raw(registry, "plugins/multi:v1")
    assert sha256_digest(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == media.OCI_INDEX
    platforms = [entry["platform"] for entry in index["manifests"]]
    assert platforms == [
        {"architecture": "amd64", "os": "linux"},
        {"architecture": "arm64", "os": "linux", "variant": "v8"},
    ]
    for entry in index["manifests"]:
        child = skopeo_inspect_raw(registry, f"plugins/multi@{entry['digest']}")
        assert (sha256_digest(child), len(child)) == (entry["digest"], entry["size"])
        assert entry.get("artifactType") == (media.PLUGIN_ARTIFACT_TYPE if fmt == "artifact" else None)
    arm_run = await pull_and_run(registry, tmp_path / "a", "plugins/multi:v1?arch=linux/arm64")
    assert arm_run == "built for arm64\n"
    amd_run = await pull_and_run(registry, tmp_path / "b", "plugins/multi:v1?arch=linux/amd64")
    assert amd_run == "built for amd64\n"


async def test_an_artifact_with_a_platform_is_an_index_of_one(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "arm only")
    async with client_for(registry) as client:
        await push(client, "plugins/one", "v1", [(exe, "linux/arm64")], fmt="artifact")
        top = await client.manifest("plugins/one", "v1")
    assert top.is_index
    assert [entry["platform"] for entry in top.data["manifests"]] == [
        {"architecture": "arm64", "os": "linux"}
    ]
    assert await pull_and_run(registry, tmp_path, "plugins/one:v1?arch=linux/arm64") == "arm only\n"


@pytest.mark.parametrize("mode", ["basic", "token"])
async def test_push_with_credentials_from_the_environment(
    make_registry: RegistryFactory, tmp_path: Path, mode: Any
) -> None:
    registry = make_registry(mode)
    exe = write_plugin_executable(tmp_path / "p", f"{mode} push")
    async with client_for(registry) as anonymous:
        with pytest.raises(RegistryAuthError, match="requires authentication"):
            await push(anonymous, "plugins/auth", "v1", [(exe, None)])
    environ = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": str(registry.user),
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORD": str(registry.password),
        "OCI_PLUGINS_REGISTRY_LOCAL_HOST": registry.host,
    }
    async with client_for(registry, environ) as client:
        digest = await push(client, "plugins/auth", "v1", [(exe, None)])
    assert sha256_digest(skopeo_inspect_raw(registry, "plugins/auth:v1")) == digest


async def test_refuses_what_cannot_be_pushed(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "p", "x")
    cases: list[tuple[list[tuple[Path, str | None]], str, str]] = [
        ([], "image", "nothing to push"),
        ([(tmp_path / "missing", None)], "image", "is not a readable file"),
        ([(exe, "linux/amd64"), (exe, None)], "image", "need one --platform each"),
        ([(exe, "linux/amd64"), (exe, "linux/amd64")], "artifact", "linux/amd64 is given twice"),
        ([(exe, "amd64")], "image", "is not os/arch"),
        ([(exe, None)], "tarball", "format 'tarball' is unknown"),
    ]
    async with client_for(registry) as client:
        for files, fmt, message in cases:
            with pytest.raises(PushError, match=message):
                await push(client, "plugins/bad", "v1", files, fmt=fmt)  # type: ignore[arg-type]
        assert not await client.exists("plugins/bad", "v1")


def test_image_layer_is_streamed_not_held_in_memory(tmp_path: Path) -> None:
    big = tmp_path / "big-plugin"
    with big.open("wb") as out:
        out.truncate(48 << 20)
    tracemalloc.start()
    try:
        layer = write_image_layer(big, tmp_path / "layer.tar.gz")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"writing a 48 MiB layer peaked at {peak} bytes"
    assert layer.size == (tmp_path / "layer.tar.gz").stat().st_size
    assert layer.digest == "sha256:" + hashlib.sha256((tmp_path / "layer.tar.gz").read_bytes()).hexdigest()
