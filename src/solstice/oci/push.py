"""Pushing plugin executables to a registry, as an artifact, an image or a multi-platform index.

What is pushed depends only on the files and their modification time, so pushing the same file
twice gives the same digest; image layers are built on disk, never in memory.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import re
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from solstice.oci import media
from solstice.oci.errors import OciError
from solstice.oci.platform import host_platform
from solstice.oci.registry import Progress, RegistryClient, sha256_digest

PushFormat = Literal["image", "artifact"]
FORMATS: tuple[PushFormat, ...] = ("image", "artifact")

GZIP_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
ENTRYPOINT = "/plugin"
EMPTY_JSON = b"{}"
_CHUNK = 1 << 20
_PLATFORM = re.compile(r"([a-z0-9]+)/([a-z0-9_]+)(?:/([a-z0-9]+))?")


class PushError(OciError, ValueError):
    """What to push is unusable: a missing file, a bad platform, files without platforms."""


@dataclass(frozen=True)
class Blob:
    """Content to upload: bytes in memory, or a file streamed from disk."""

    digest: str
    size: int
    source: bytes | Path
    media_type: str

    def descriptor(self, annotations: dict[str, str] | None = None) -> dict[str, Any]:
        """The OCI descriptor of this blob."""
        found: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if annotations:
            found["annotations"] = annotations
        return found


@dataclass(frozen=True)
class Built:
    """One manifest ready to push, with the blobs it references."""

    manifest: bytes
    blobs: tuple[Blob, ...]
    platform: str | None
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        """The digest the registry will store the manifest under."""
        return sha256_digest(self.manifest)

    @property
    def upload_size(self) -> int:
        """Bytes of every blob and the manifest."""
        return sum(blob.size for blob in self.blobs) + len(self.manifest)


@dataclass(frozen=True)
class LayerFile:
    """A gzip tar layer written to disk: its digest, size and the digest of the uncompressed tar."""

    path: Path
    digest: str
    size: int
    diff_id: str


def parse_platform(text: str) -> dict[str, str]:
    """`os/arch[/variant]` as an OCI platform object; PushError for anything else."""
    match = _PLATFORM.fullmatch(text)
    if match is None:
        raise PushError(f"platform {text!r} is not os/arch[/variant]; write it as e.g. linux/amd64")
    found = {"architecture": match.group(2), "os": match.group(1)}
    if match.group(3):
        found["variant"] = match.group(3)
    return found


def rfc3339(moment: datetime) -> str:
    """A UTC timestamp to the second, as OCI annotations and image configs carry it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def manifest_json(document: dict[str, Any]) -> bytes:
    """Compact JSON in the order the document was built: the same document, the same digest."""
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def file_blob(path: Path, media_type: str) -> Blob:
    """A blob for a file on disk, hashed by streaming it."""
    hasher = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return Blob("sha256:" + hasher.hexdigest(), size, path, media_type)


def bytes_blob(data: bytes, media_type: str) -> Blob:
    """A blob held in memory (configs, signatures)."""
    return Blob(sha256_digest(data), len(data), data, media_type)


EMPTY_CONFIG = bytes_blob(EMPTY_JSON, media.OCI_EMPTY)


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...


class _HashingWriter:
    """A write-only file object that hashes what passes through it on the way to `target`."""

    def __init__(self, target: _Sink) -> None:
        self.target = target
        self.hasher = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hasher.update(data)
        self.size += len(data)
        return self.target.write(data)

    def flush(self) -> None:
        self.target.flush()

    # tarfile's stub asks any file object for the whole file interface, though its stream mode
    # ("w|") only writes; these answer as a write-only stream does.
    def tell(self) -> int:
        return self.size

    def read(self, size: int, /) -> bytes:
        raise io.UnsupportedOperation("write-only stream")

    def seek(self, pos: int, /) -> int:
        raise io.UnsupportedOperation("not seekable")

    def close(self) -> None:
        """Leaves `target` open: whoever opened it closes it."""

    @property
    def digest(self) -> str:
        return "sha256:" + self.hasher.hexdigest()


def write_image_layer(executable: Path, dest: Path) -> LayerFile:
    """Write the layer of `COPY executable /plugin` to `dest`: one gzip tar, streamed, reproducible."""
    member = tarfile.TarInfo(ENTRYPOINT.lstrip("/"))
    member.size = executable.stat().st_size
    # Fixed owner, mode and time: the layer depends only on the file's content.
    member.mode, member.mtime, member.uid, member.gid = 0o755, 0, 0, 0
    member.uname = member.gname = ""
    with dest.open("xb") as raw:
        compressed = _HashingWriter(raw)
        # filename="" and mtime=0 keep the gzip header free of the temp file's name and the time.
        with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
            plain = _HashingWriter(gz)
            with (
                tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as archive,
                executable.open("rb") as source,
            ):
                archive.addfile(member, source)
    return LayerFile(dest, compressed.digest, compressed.size, plain.digest)


def image_config(platform: dict[str, str], diff_id: str, created: str, name: str) -> bytes:
    """The OCI image config of a one-layer image whose Entrypoint is /plugin."""
    config = {
        **platform,
        "created": created,
        "config": {"Entrypoint": [ENTRYPOINT]},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": created, "created_by": f"COPY {name} {ENTRYPOINT}"}],
    }
    return manifest_json(config)


def build_image(executable: Path, platform: str | None, created: str, layer_path: Path) -> Built:
    """The image `FROM scratch / COPY exe /plugin / ENTRYPOINT ["/plugin"]`, its layer at `layer_path`."""
    target = platform or host_platform()
    spec = parse_platform(target)
    layer = write_image_layer(executable, layer_path)
    config = bytes_blob(image_config(spec, layer.diff_id, created, executable.name), media.OCI_IMAGE_CONFIG)
    layer_blob = Blob(layer.digest, layer.size, layer.path, GZIP_LAYER)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [layer_blob.descriptor()],
        "annotations": {media.CREATED_ANNOTATION: created},
    }
    return Built(manifest_json(manifest), (config, layer_blob), target)


def build_artifact(executable: Path, platform: str | None, created: str) -> Built:
    """The artifact whose only layer is the executable itself (what `oras push` makes)."""
    if platform is not None:
        parse_platform(platform)
    layer = file_blob(executable, media.PLUGIN_BINARY)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": media.PLUGIN_ARTIFACT_TYPE,
        "config": EMPTY_CONFIG.descriptor(),
        "layers": [layer.descriptor({media.TITLE_ANNOTATION: executable.name})],
        "annotations": {media.CREATED_ANNOTATION: created},
    }
    return Built(manifest_json(manifest), (EMPTY_CONFIG, layer), platform, media.PLUGIN_ARTIFACT_TYPE)


def build_index(manifests: Sequence[Built], created: str) -> bytes:
    """An OCI image index with one platform entry per manifest."""
    entries = []
    for built in manifests:
        assert built.platform is not None
        entry: dict[str, Any] = {
            "mediaType": media.OCI_MANIFEST,
            "digest": built.digest,
            "size": len(built.manifest),
            "platform": parse_platform(built.platform),
        }
        if built.artifact_type:
            entry["artifactType"] = built.artifact_type
        entries.append(entry)
    index = {
        "schemaVersion": 2,
        "mediaType": media.OCI_INDEX,
        "manifests": entries,
        "annotations": {media.CREATED_ANNOTATION: created},
    }
    return manifest_json(index)


def push_format(value: str) -> PushFormat:
    """`value` as a push format; PushError when it is not one."""
    for known in FORMATS:
        if value == known:
            return known
    raise PushError(f"format {value!r} is unknown; use image or artifact")


def check_files(files: Sequence[tuple[Path, str | None]], fmt: str) -> None:
    """Refuse, in one sentence, what cannot be pushed: unknown format, missing files, platforms."""
    push_format(fmt)
    if not files:
        raise PushError("nothing to push; name at least one executable file")
    for path, platform in files:
        if not path.is_file():
            raise PushError(f"{path} is not a readable file; name the plugin executable to push")
        if platform is not None:
            parse_platform(platform)
    if len(files) > 1:
        platforms = [platform for _, platform in files]
        if None in platforms:
            raise PushError(
                f"{len(files)} files need one --platform each (os/arch), in the same order as the files"
            )
        repeated = sorted({p for p in platforms if p is not None and platforms.count(p) > 1})
        if repeated:
            raise PushError(f"platform {repeated[0]} is given twice; each file needs its own platform")


def default_created(files: Sequence[tuple[Path, str | None]]) -> datetime:
    """When the newest file was last modified: reproducible, unlike the time of the push."""
    newest = max(path.stat().st_mtime for path, _ in files)
    return datetime.fromtimestamp(int(newest), UTC)


async def push(
    client: RegistryClient,
    repository: str,
    tag: str,
    files: Sequence[tuple[Path, str | None]],
    *,
    fmt: PushFormat = "image",
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    created: datetime | None = None,
) -> str:
    """Push executables (with optional os/arch platforms) under `tag`; returns the tagged digest.

    Several files, or an artifact with a platform, become an index; `on_total` learns the bytes to send.
    """
    check_files(files, fmt)
    stamp = rfc3339(created or default_created(files))
    with tempfile.TemporaryDirectory(prefix="solstice-push-") as work:
        built = [
            await _build(path, platform, fmt, stamp, Path(work) / f"layer-{number}.tar.gz")
            for number, (path, platform) in enumerate(files)
        ]
        # An artifact has no config to hold its platform; only an index entry can carry it.
        as_index = len(built) > 1 or (fmt == "artifact" and built[0].platform is not None)
        index = build_index(built, stamp) if as_index else None
        if on_total:
            on_total(sum(b.upload_size for b in built) + (len(index) if index else 0))
        for item in built:
            await _push_one(client, repository, item, None if as_index else tag, progress)
    if index is None:
        return built[0].digest
    digest = await client.put_manifest(repository, tag, index, media.OCI_INDEX)
    if progress:
        progress(len(index))
    return digest


async def _build(path: Path, platform: str | None, fmt: PushFormat, created: str, layer_path: Path) -> Built:
    # Hashing and compressing are blocking file work: keep them off the event loop.
    if fmt == "image":
        return await asyncio.to_thread(build_image, path, platform, created, layer_path)
    return await asyncio.to_thread(build_artifact, path, platform, created)


async def _push_one(
    client: RegistryClient, repository: str, built: Built, tag: str | None, progress: Progress | None
) -> None:
    for blob in built.blobs:
        await client.push_blob(repository, blob.digest, blob.source, progress)
    await client.put_manifest(repository, tag or built.digest, built.manifest, media.OCI_MANIFEST)
    if progress:
        progress(len(built.manifest))
