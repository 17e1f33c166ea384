"""What in a manifest is the plugin: a raw executable layer, or the Entrypoint of an image.

Image layers are read as an overlay (upper layers shadow lower ones, whiteouts delete), symlinks
are followed inside the image root only, and exactly one regular file is extracted, so no path in
an image can write outside the cache or create a device file.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from solstice.oci import media
from solstice.oci.errors import ContentError
from solstice.oci.tarstream import CHUNK, Budget, Member, TarStream

MAX_CONFIG_BYTES = 4 << 20
DEFAULT_MAX_DECOMPRESSED_BYTES = 2 << 30
MAX_SYMLINK_HOPS = 16
_WHITEOUT = ".wh."
_OPAQUE = ".wh..wh..opq"


@dataclass(frozen=True)
class Layer:
    """One layer descriptor: digest, size and how it is compressed (None: plain tar or raw)."""

    digest: str
    size: int
    media_type: str

    @property
    def compression(self) -> str | None:
        """gzip, zstd or None."""
        return media.TAR_LAYERS.get(self.media_type)


@dataclass(frozen=True)
class Plan:
    """How to get the executable out of one manifest."""

    kind: str  # "artifact" (the layer is the executable) or "image" (a file in tar layers)
    layers: tuple[Layer, ...]
    entrypoint: str = ""


def is_image(manifest: dict[str, Any]) -> bool:
    """True for a container image (image config, tar layers), False for an artifact."""
    config = manifest.get("config")
    config_type = config.get("mediaType", "") if isinstance(config, dict) else ""
    layers = manifest.get("layers") or []
    return (
        config_type in media.IMAGE_CONFIGS
        and isinstance(layers, list)
        and all(isinstance(layer, dict) and layer.get("mediaType") in media.TAR_LAYERS for layer in layers)
    )


def _layer(descriptor: Any, where: str) -> Layer:
    try:
        return Layer(str(descriptor["digest"]), int(descriptor["size"]), str(descriptor["mediaType"]))
    except (KeyError, TypeError, ValueError):
        raise ContentError(f"{where} has a layer without digest, size or mediaType") from None


def artifact_plan(manifest: dict[str, Any], where: str) -> Plan:
    """The single executable layer of an artifact (as `oras push` or `solstice oci push` make it)."""
    layers = [_layer(d, where) for d in manifest.get("layers") or []]
    if len(layers) > 1:
        binaries = [layer for layer in layers if layer.media_type == media.PLUGIN_BINARY]
        layers = binaries if len(binaries) == 1 else layers
    if len(layers) != 1:
        raise ContentError(
            f"{where} is an artifact with {len(layers)} layers; a plugin artifact has exactly one, "
            "the executable (push it with `solstice oci push FILE oci://…`)"
        )
    return Plan("artifact", tuple(layers))


def image_plan(manifest: dict[str, Any], config_raw: bytes, where: str) -> Plan:
    """The image's Entrypoint (or Cmd) and its layers, bottom first."""
    try:
        config = json.loads(config_raw).get("config") or {}
        argv = config.get("Entrypoint") or config.get("Cmd") or []
    except (ValueError, AttributeError):
        raise ContentError(f"the image config of {where} is not valid JSON") from None
    if not isinstance(argv, list):
        raise ContentError(
            f"the Entrypoint in the image config of {where} is not a list; build the image with "
            'ENTRYPOINT ["/plugin"]'
        )
    if not argv or not isinstance(argv[0], str):
        raise ContentError(
            f'image {where} has no Entrypoint; build it with ENTRYPOINT ["/plugin"] so Solstice '
            "knows which file is the plugin"
        )
    entrypoint = argv[0]
    if not entrypoint.startswith("/"):
        raise ContentError(
            f"the Entrypoint {entrypoint!r} of {where} is not an absolute path; use e.g. /plugin"
        )
    layers = tuple(_layer(d, where) for d in manifest.get("layers") or [])
    return Plan("image", layers, _normal(entrypoint))


def _normal(path: str) -> str:
    """A tar member name or absolute path as a clean path relative to the image root."""
    return posixpath.normpath("/" + path).lstrip("/")


@dataclass(frozen=True)
class _Entry:
    layer: int
    kind: str  # "file", "directory", "symlink", "hardlink", "device", "fifo", "special file"
    target: str = ""
    size: int = 0
    position: int = 0  # the member's index in its layer's tar, to extract exactly that member


@contextmanager
def _open_tar(path: Path, layer: Layer, budget: Budget, where: str) -> Iterator[TarStream]:
    with path.open("rb") as raw:
        yield TarStream(raw, layer.compression, budget, where, path.name)


@dataclass
class _Capture:
    """The Entrypoint copied out during the header scan, so the usual case reads each layer once."""

    path: Path
    max_bytes: int
    found: tuple[int, int] | None = None  # (layer, position) of the copied member

    def offer(self, archive: TarStream, member: Member, layer: int, position: int) -> None:
        """Copy `member` if it may be the answer: the top-most layer holding the name wins."""
        if self.found is not None and self.found[0] != layer:
            return
        if member.kind != "file" or member.size > self.max_bytes:
            return
        with self.path.open("wb") as out:
            archive.copy_to(out)
        self.found = (layer, position)


def _overlay(
    plan: Plan, files: list[Path], budget: Budget, where: str, capture: _Capture | None = None
) -> dict[str, _Entry]:
    """The merged view of every layer's headers, top layer first, whiteouts applied."""
    merged: dict[str, _Entry] = {}
    hidden: set[str] = set()
    opaque: set[str] = set()
    for index in reversed(range(len(plan.layers))):
        layer_hidden: set[str] = set()
        layer_opaque: set[str] = set()
        layer: dict[str, _Entry] = {}
        with _open_tar(files[index], plan.layers[index], budget, where) as archive:
            for position, member in enumerate(archive):
                name = _normal(member.name)
                directory, base = posixpath.split(name)
                if base == _OPAQUE:
                    layer_opaque.add(directory)
                    continue
                if base.startswith(_WHITEOUT):
                    layer_hidden.add(posixpath.join(directory, base[len(_WHITEOUT) :]))
                    continue
                kind = member.kind
                if kind != "directory":
                    # A non-directory replaces a lower directory of its name and all it held.
                    layer_hidden.add(name)
                target = member.linkname if kind in ("symlink", "hardlink") else ""
                # Within one layer the last member of a name wins, as when the tar is unpacked.
                layer[name] = _Entry(index, kind, target, member.size, position)
                if capture is not None and name == plan.entrypoint:
                    capture.offer(archive, member, index, position)
        for name, entry in layer.items():
            if name not in merged and not _shadowed(name, hidden, opaque):
                merged[name] = entry
        hidden |= layer_hidden
        opaque |= layer_opaque
    return merged


def _shadowed(name: str, hidden: set[str], opaque: set[str]) -> bool:
    path = name
    while path:
        if path in hidden:
            return True
        path = posixpath.dirname(path)
        if path in opaque or (not path and "" in opaque):
            return True
    return False


def _resolve(merged: dict[str, _Entry], path: str, where: str, hops: int = 0) -> tuple[str, _Entry]:
    """Follow symlinks (in every component) and hard links inside the image root to a regular file."""
    parts = path.split("/")
    done: list[str] = []
    while parts:
        current = "/".join([*done, parts[0]])
        entry = merged.get(current)
        if entry is not None and entry.kind == "symlink":
            hops += 1
            if hops > MAX_SYMLINK_HOPS:
                raise ContentError(f"the Entrypoint of {where} is a symlink loop")
            base = "" if entry.target.startswith("/") else "/".join(done)
            # Normalising against the root keeps `..` from climbing out of the image.
            target = _normal(posixpath.join("/" + base, entry.target))
            parts = (target.split("/") if target else []) + parts[1:]
            done = []
            continue
        if entry is not None and entry.kind != "directory" and len(parts) > 1:
            # Nothing lies below a file: the path does not exist in the unpacked image.
            raise ContentError(f"image {where} has no file at its Entrypoint /{path}")
        done.append(parts.pop(0))
    final = "/".join(done)
    entry = merged.get(final)
    if entry is not None and entry.kind == "hardlink":
        if hops >= MAX_SYMLINK_HOPS:
            raise ContentError(f"the Entrypoint of {where} is a hard link loop")
        return _resolve(merged, _normal(entry.target), where, hops + 1)
    if entry is None:
        raise ContentError(f"image {where} has no file at its Entrypoint /{path}")
    if entry.kind != "file":
        raise ContentError(
            f"the Entrypoint /{path} of {where} is a {entry.kind}, not a regular file; it was not used"
        )
    return final, entry


def extract(
    plan: Plan, files: list[Path], dest: Path, max_bytes: int, where: str, budget: Budget | None = None
) -> None:
    """Write the plugin executable to `dest` (mode 0755); `files` are the verified layer blobs.

    `budget` bounds the bytes decompressed and stops the work (Cancelled) when its flag is set.
    """
    budget = budget or Budget(DEFAULT_MAX_DECOMPRESSED_BYTES)
    if plan.kind == "artifact":
        _copy(files[0], dest, budget)
        dest.chmod(0o755)
        return
    capture = _Capture(dest.with_name(dest.name + ".scan"), max_bytes)
    try:
        merged = _overlay(plan, files, budget, where, capture)
        name, entry = _resolve(merged, plan.entrypoint, where)
        if entry.size > max_bytes:
            raise ContentError(
                f"the Entrypoint of {where} is {entry.size} bytes, over the limit of {max_bytes}; "
                "raise OCI_PLUGINS_MAX_BLOB_BYTES if this is expected"
            )
        if capture.found == (entry.layer, entry.position):
            os.link(capture.path, dest)  # fails if dest exists, like the "xb" open below
            dest.chmod(0o755)
            return
    finally:
        capture.path.unlink(missing_ok=True)
    # The Entrypoint is reached through links: read its layer again for that member. That layer
    # was read within the limit once, so the second read has a limit of its own.
    again = Budget(budget.limit, budget.stop)
    with _open_tar(files[entry.layer], plan.layers[entry.layer], again, where) as archive:
        for position, member in enumerate(archive):
            if position == entry.position and _normal(member.name) == name and member.kind == "file":
                with dest.open("xb") as out:
                    archive.copy_to(out)
                dest.chmod(0o755)
                return
            if position > entry.position:
                break
    raise ContentError(f"layer {plan.layers[entry.layer].digest} of {where} lost its Entrypoint file")


def _copy(source: Path, dest: Path, budget: Budget) -> None:
    """Copy an artifact's executable, checking the stop flag between chunks."""
    with source.open("rb") as reader, dest.open("xb") as out:
        while True:
            budget.check()
            chunk = reader.read(CHUNK)
            if not chunk:
                return
            out.write(chunk)
