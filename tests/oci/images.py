"""Test artifacts built and pushed by independent producers (umoci + skopeo), not by our client."""

from __future__ import annotations

import hashlib
import io
import json
import shlex
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tests.oci.registries import Registry, require_tool

TIMEOUT = 60.0
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
LayerMethod = Literal["repack", "insert"]


def run(args: Sequence[str], *, timeout: float = TIMEOUT) -> bytes:
    """Run a tool with a timeout; raise with its stderr when it fails or hangs."""
    try:
        done = subprocess.run(list(args), capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        stderr = (exc.stderr or b"").decode(errors="replace")
        raise RuntimeError(f"`{shlex.join(args)}` timed out after {timeout}s\nstderr:\n{stderr}") from None
    if done.returncode != 0:
        raise RuntimeError(
            f"`{_redact(args)}` exited with {done.returncode}\nstderr:\n{done.stderr.decode(errors='replace')}"
        )
    return done.stdout


def _redact(args: Sequence[str]) -> str:
    """The command line with credential arguments masked, for error messages."""
    shown: list[str] = []
    for arg in args:
        flag, sep, _value = arg.partition("=")
        shown.append(f"{flag}=***" if sep and flag.endswith("creds") else arg)
    return shlex.join(shown)


def sha256_digest(data: bytes) -> str:
    """`sha256:<hex>` of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def write_plugin_executable(path: Path, text: str) -> Path:
    """Write a tiny distinct `#!/bin/sh` script at `path`, mode 0755, and return `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n# {text}\nexec echo {shlex.quote(text)}\n")
    path.chmod(0o755)
    return path


def _skopeo(*args: str, timeout: float = TIMEOUT) -> bytes:
    # --insecure-policy: don't depend on /etc/containers/policy.json existing on the test host.
    return run([require_tool("skopeo"), "--insecure-policy", *args], timeout=timeout)


def _transport_flags(registry: Registry, prefix: str, *, anonymous: bool = False) -> list[str]:
    """skopeo TLS/credential flags for `registry`; `prefix` is "src-", "dest-" or "" (inspect)."""
    if registry.tls:
        assert registry.cert_dir is not None
        flags = [f"--{prefix}tls-verify=true", f"--{prefix}cert-dir={registry.cert_dir}"]
    else:
        # tls-verify=false lets containers/image fall back from https to plain http.
        flags = [f"--{prefix}tls-verify=false"]
    if registry.creds and not anonymous:
        flags.append(f"--{prefix}creds={registry.creds}")
    else:
        # Without creds skopeo would read ~/.docker or $XDG_RUNTIME_DIR auth files; be explicit.
        flags.append(f"--{prefix}no-creds")
    return flags


def _split_tag(repo_tag: str) -> tuple[str, str]:
    """("plugins/echo", "v1") from "plugins/echo:v1"."""
    repo, sep, tag = repo_tag.rpartition(":")
    if not sep or "/" in tag:
        raise ValueError(f"expected <repo>:<tag>, got {repo_tag!r}")
    return repo, tag


def _umoci_image(
    layout: Path,
    tag: str,
    executable: Path,
    *,
    entrypoint: str,
    os: str,
    arch: str,
    layer: LayerMethod,
) -> None:
    """Add image `layout:tag` holding `executable` at `entrypoint`, with the platform in its config."""
    umoci = require_tool("umoci")
    image = f"{layout}:{tag}"
    run([umoci, "new", "--image", image])
    if layer == "insert":
        # umoci 0.4.7 `insert` never closes its tar writer: the layer lacks the last block's padding
        # and the end-of-archive marker (umoci#436, fixed by umoci#534). GNU tar and Python's
        # tarfile report "unexpected end of data"; keep this path to test tolerant extraction.
        # --rootless: no chown/mknod, so it behaves the same for root and non-root test runners.
        run([umoci, "insert", "--rootless", "--image", image, str(executable), entrypoint])
    else:
        # unpack + copy + repack goes through umoci's GenerateLayer, which writes a complete tar.
        bundle = layout.parent / f"bundle-{tag}"
        run([umoci, "unpack", "--rootless", "--image", image, str(bundle)])
        target = bundle / "rootfs" / entrypoint.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(executable, target)
        run([umoci, "repack", "--image", image, str(bundle)])
    run(
        [
            umoci,
            "config",
            "--image",
            image,
            "--config.entrypoint",
            entrypoint,
            "--os",
            os,
            "--architecture",
            arch,
        ]
    )


def _read_digestfile(path: Path) -> str:
    digest = path.read_text().strip()
    if not digest.startswith("sha256:"):
        raise RuntimeError(f"skopeo wrote an unexpected digest {digest!r}")
    return digest


def push_image_with_umoci(
    registry: Registry,
    repo_tag: str,
    executable: Path,
    *,
    entrypoint: str = "/plugin",
    os: str = "linux",
    arch: str = "amd64",
    layer: LayerMethod = "repack",
) -> str:
    """Build a one-file OCI image with umoci and push it with skopeo; return the manifest digest.

    `layer="insert"` uses `umoci insert`, whose 0.4.7 layers are truncated tars (see _umoci_image).
    """
    _split_tag(repo_tag)
    with tempfile.TemporaryDirectory(prefix="umoci-") as work:
        layout = Path(work) / "layout"
        run([require_tool("umoci"), "init", "--layout", str(layout)])
        _umoci_image(layout, "image", executable, entrypoint=entrypoint, os=os, arch=arch, layer=layer)
        digestfile = Path(work) / "digest"
        _skopeo(
            "copy",
            "--quiet",
            f"--digestfile={digestfile}",
            *_transport_flags(registry, "dest-"),
            f"oci:{layout}:image",
            f"docker://{registry.host}/{repo_tag}",
        )
        return _read_digestfile(digestfile)


def push_multi_platform_index(
    registry: Registry,
    repo_tag: str,
    executables: dict[str, Path],
    *,
    entrypoint: str = "/plugin",
    layer: LayerMethod = "repack",
) -> str:
    """Push an OCI image index with one umoci image per "os/arch[/variant]" key; return its digest."""
    if not executables:
        raise ValueError("need at least one platform")
    with tempfile.TemporaryDirectory(prefix="umoci-index-") as work:
        layout = Path(work) / "layout"
        run([require_tool("umoci"), "init", "--layout", str(layout)])
        platforms: dict[str, dict[str, str]] = {}
        for key, executable in executables.items():
            parts = key.split("/")
            if len(parts) not in (2, 3):
                raise ValueError(f"platform must be os/arch[/variant], got {key!r}")
            platform = {"architecture": parts[1], "os": parts[0]}
            if len(parts) == 3:
                # umoci 0.4.7 has no --variant; the index entry is what clients match on.
                platform["variant"] = parts[2]
            tag = "platform-" + "-".join(parts)
            _umoci_image(
                layout, tag, executable, entrypoint=entrypoint, os=parts[0], arch=parts[1], layer=layer
            )
            platforms[tag] = platform

        # umoci cannot make an index, but it is a few lines of JSON: write the blob and tag it in
        # the layout's index.json, then `skopeo copy --all` pushes the children and the index.
        index_path = layout / "index.json"
        layout_index = json.loads(index_path.read_text())
        by_tag = {
            d.get("annotations", {}).get("org.opencontainers.image.ref.name"): d
            for d in layout_index["manifests"]
        }
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                {
                    "mediaType": by_tag[tag]["mediaType"],
                    "digest": by_tag[tag]["digest"],
                    "size": by_tag[tag]["size"],
                    "platform": platform,
                }
                for tag, platform in platforms.items()
            ],
        }
        blob = json.dumps(index, separators=(",", ":")).encode()
        digest = sha256_digest(blob)
        (layout / "blobs" / "sha256" / digest.removeprefix("sha256:")).write_bytes(blob)
        layout_index["manifests"].append(
            {
                "mediaType": OCI_INDEX,
                "digest": digest,
                "size": len(blob),
                "annotations": {"org.opencontainers.image.ref.name": "index"},
            }
        )
        index_path.write_text(json.dumps(layout_index))

        digestfile = Path(work) / "digest"
        _skopeo(
            "copy",
            "--quiet",
            "--all",
            f"--digestfile={digestfile}",
            *_transport_flags(registry, "dest-"),
            f"oci:{layout}:index",
            f"docker://{registry.host}/{repo_tag}",
        )
        pushed = _read_digestfile(digestfile)
        if pushed != digest:
            # skopeo would only rewrite the index if it converted a child; that would be a bug here.
            raise RuntimeError(f"skopeo pushed index {pushed}, expected the layout's {digest}")
        return pushed


def skopeo_inspect_raw(registry: Registry, ref: str, *, anonymous: bool = False) -> bytes:
    """The raw manifest bytes skopeo fetches for `ref` ("repo:tag" or "repo@sha256:...")."""
    return _skopeo(
        "inspect", "--raw", *_transport_flags(registry, "", anonymous=anonymous), _docker(registry, ref)
    )


def pull_with_skopeo(registry: Registry, ref: str, dest: Path, *, anonymous: bool = False) -> Path:
    """Copy `ref` from the registry into a new OCI layout at `dest` (tag "pulled"); return `dest`."""
    _skopeo(
        "copy",
        "--quiet",
        *_transport_flags(registry, "src-", anonymous=anonymous),
        _docker(registry, ref),
        f"oci:{dest}:pulled",
    )
    return dest


def layout_files(layout: Path, tag: str = "pulled") -> dict[str, bytes]:
    """Regular files in all layers of the single-platform image `layout:tag`, by path without "/"."""
    blobs = layout / "blobs" / "sha256"
    index = json.loads((layout / "index.json").read_text())
    manifest_desc = next(
        d
        for d in index["manifests"]
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag
    )
    manifest = json.loads((blobs / manifest_desc["digest"].removeprefix("sha256:")).read_bytes())
    files: dict[str, bytes] = {}
    for layer in manifest["layers"]:
        data = (blobs / layer["digest"].removeprefix("sha256:")).read_bytes()
        # "r:*" handles both gzip (umoci's default) and uncompressed layers.
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
            for member in tar.getmembers():
                if member.isfile():
                    extracted = tar.extractfile(member)
                    assert extracted is not None
                    name = member.name.removeprefix("./").lstrip("/")
                    files[name] = extracted.read()
    return files


def _docker(registry: Registry, ref: str) -> str:
    return f"docker://{registry.host}/{ref}"
