"""Getting the plugin out of a manifest: artifacts, and images read as an overlay of real tar layers.

Layers are built here with `tarfile` (plain, gzip and zstd), so every case shows the exact
members an image holds. Extraction writes exactly one file, `dest`; the tests check that nothing
else ever appears, whatever the member names say.
"""

from __future__ import annotations

import gzip
import io
import itertools
import json
import os
import stat
import tarfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import zstandard

from solstice.oci import media
from solstice.oci.errors import ContentError
from solstice.oci.layers import (
    MAX_SYMLINK_HOPS,
    Layer,
    Plan,
    artifact_plan,
    extract,
    image_plan,
    is_image,
)

WHERE = "r.io/p@sha256:abc"
LIMIT = 1 << 20
PLAIN = "application/vnd.oci.image.layer.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
COMPRESSIONS = [PLAIN, GZIP, ZSTD]

# --- building members and layers --------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One tar member: its header and, for a regular file, its data."""

    info: tarfile.TarInfo
    data: bytes = b""


def _info(name: str, kind: bytes, **attrs: Any) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o755
    for key, value in attrs.items():
        setattr(info, key, value)
    return info


def file(name: str, data: bytes = b"#!plugin\n") -> Member:
    return Member(_info(name, tarfile.REGTYPE, size=len(data)), data)


def directory(name: str) -> Member:
    return Member(_info(name, tarfile.DIRTYPE))


def symlink(name: str, target: str) -> Member:
    return Member(_info(name, tarfile.SYMTYPE, linkname=target))


def hardlink(name: str, target: str) -> Member:
    return Member(_info(name, tarfile.LNKTYPE, linkname=target))


def device(name: str, kind: bytes = tarfile.CHRTYPE) -> Member:
    return Member(_info(name, kind, devmajor=1, devminor=3))


def whiteout(path: str) -> Member:
    """`.wh.<name>`: deletes `path` from the layers below."""
    head, _, base = path.rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"")


def opaque(path: str) -> Member:
    """`.wh..wh..opq`: hides what the layers below hold in directory `path`."""
    return file(f"{path}/.wh..wh..opq" if path else ".wh..wh..opq", b"")


def tar_bytes(members: Iterable[Member]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            archive.addfile(member.info, io.BytesIO(member.data) if member.info.isreg() else None)
    return buffer.getvalue()


def compress(raw: bytes, media_type: str) -> bytes:
    compression = media.TAR_LAYERS[media_type]
    if compression == "gzip":
        return gzip.compress(raw)
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(raw)
    return raw


@dataclass
class Image:
    """An image under construction in `root/blobs`; `extract()` writes `root/out/plugin`."""

    root: Path
    layer_files: list[Path] = field(default_factory=list)
    descriptors: list[dict[str, Any]] = field(default_factory=list)

    def layer(self, *members: Member, media_type: str = PLAIN) -> Image:
        return self.layer_blob(compress(tar_bytes(members), media_type), media_type)

    def layer_blob(self, blob: bytes, media_type: str = PLAIN) -> Image:
        blobs = self.root / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        path = blobs / f"layer-{len(self.layer_files)}"
        path.write_bytes(blob)
        self.layer_files.append(path)
        self.descriptors.append(
            {"mediaType": media_type, "digest": f"sha256:{len(self.layer_files):064x}", "size": len(blob)}
        )
        return self

    @property
    def manifest(self) -> dict[str, Any]:
        return {"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": self.descriptors}

    def plan(self, config: dict[str, Any] | None = None) -> Plan:
        config = {"Entrypoint": ["/plugin"]} if config is None else config
        return image_plan(self.manifest, json.dumps({"config": config}).encode(), WHERE)

    def extract(self, entrypoint: str = "/plugin", max_bytes: int = LIMIT) -> bytes:
        dest = self.root / "out" / "plugin"
        dest.parent.mkdir(parents=True, exist_ok=True)
        extract(self.plan({"Entrypoint": [entrypoint]}), self.layer_files, dest, max_bytes, WHERE)
        return dest.read_bytes()


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return Image(tmp_path)


def snapshot(root: Path) -> set[str]:
    """Every path under `root`, relative, to see what an extraction created."""
    return {str(path.relative_to(root)) for path in root.rglob("*")}


# --- the plugin at the Entrypoint ---------------------------------------------------------------


@pytest.mark.parametrize("media_type", COMPRESSIONS)
def test_entrypoint_is_extracted_from_each_compression(image: Image, media_type: str) -> None:
    image.layer(directory("app"), file("app/plugin", b"binary"), media_type=media_type)
    assert image.extract("/app/plugin") == b"binary"


def test_extracted_plugin_is_executable_and_nothing_else_is_written(image: Image) -> None:
    image.layer(file("plugin", b"binary"), file("other", b"x"), directory("etc"), file("etc/conf"))
    before = snapshot(image.root)
    image.extract()
    dest = image.root / "out" / "plugin"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755
    assert snapshot(image.root) - before == {"out", "out/plugin"}


def test_layers_with_mixed_compressions(image: Image) -> None:
    image.layer(file("lib/a"), media_type=ZSTD).layer(file("lib/b"), media_type=PLAIN)
    image.layer(file("plugin", b"top"), media_type=GZIP)
    assert image.extract() == b"top"


def test_entrypoint_in_a_lower_layer_survives_unrelated_upper_layers(image: Image) -> None:
    image.layer(file("plugin", b"base")).layer(file("README")).layer(directory("etc"))
    assert image.extract() == b"base"


@pytest.mark.parametrize("name", ["./plugin", "/plugin", "plugin", ".//plugin", "./x/../plugin"])
def test_member_names_are_normalised(image: Image, name: str) -> None:
    image.layer(file(name, b"found"))
    assert image.extract() == b"found"


@pytest.mark.parametrize("entrypoint", ["/plugin", "//plugin", "/./plugin", "/bin/../plugin"])
def test_entrypoint_spellings_are_normalised(image: Image, entrypoint: str) -> None:
    image.layer(file("plugin", b"found"))
    assert image.extract(entrypoint) == b"found"


def test_missing_entrypoint_names_it(image: Image) -> None:
    image.layer(file("other"))
    with pytest.raises(
        ContentError, match=r"image r\.io/p@sha256:abc has no file at its Entrypoint /plugin$"
    ):
        image.extract()


def test_image_without_layers_has_no_entrypoint(image: Image) -> None:
    with pytest.raises(ContentError, match="has no file at its Entrypoint"):
        image.extract()


@pytest.mark.parametrize(
    ("member", "kind"),
    [
        (directory("plugin"), "directory"),
        (device("plugin", tarfile.CHRTYPE), "device"),
        (device("plugin", tarfile.BLKTYPE), "device"),
        (Member(_info("plugin", tarfile.FIFOTYPE)), "fifo"),
    ],
)
def test_entrypoint_that_is_not_a_regular_file_is_refused(image: Image, member: Member, kind: str) -> None:
    image.layer(member)
    before = snapshot(image.root)
    with pytest.raises(ContentError, match=f"Entrypoint /plugin of .* is a {kind}, not a regular file"):
        image.extract()
    # Refused before anything is created: no device node, no fifo, no partial file.
    assert snapshot(image.root) - before == {"out"}


def test_device_reached_through_a_symlink_is_refused(image: Image) -> None:
    image.layer(device("dev/null"), symlink("plugin", "/dev/null"))
    with pytest.raises(ContentError, match="is a device"):
        image.extract()


# --- size cap -----------------------------------------------------------------------------------


def test_entrypoint_over_the_size_cap_is_refused(image: Image) -> None:
    image.layer(file("plugin", b"x" * 101))
    with pytest.raises(
        ContentError, match="is 101 bytes, over the limit of 100; raise OCI_PLUGINS_MAX_BLOB_BYTES"
    ):
        image.extract(max_bytes=100)
    assert not (image.root / "out" / "plugin").exists()


def test_entrypoint_exactly_at_the_size_cap_is_extracted(image: Image) -> None:
    image.layer(file("plugin", b"x" * 100))
    assert image.extract(max_bytes=100) == b"x" * 100


def test_size_cap_applies_to_the_file_a_symlink_leads_to(image: Image) -> None:
    image.layer(file("big", b"x" * 200), symlink("plugin", "big"))
    with pytest.raises(ContentError, match="is 200 bytes"):
        image.extract(max_bytes=100)


# --- overlay: upper layers shadow lower ones; whiteouts delete ---------------------------------


def test_upper_layer_shadows_lower(image: Image) -> None:
    image.layer(file("plugin", b"v1")).layer(file("plugin", b"v2"))
    assert image.extract() == b"v2"


def test_upper_directory_merges_with_lower(image: Image) -> None:
    image.layer(directory("app"), file("app/plugin", b"lower")).layer(directory("app"), file("app/other"))
    assert image.extract("/app/plugin") == b"lower"


def test_whiteout_deletes_the_lower_entrypoint(image: Image) -> None:
    image.layer(file("plugin", b"v1")).layer(whiteout("plugin"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /plugin"):
        image.extract()


def test_whiteout_of_a_parent_directory_deletes_everything_in_it(image: Image) -> None:
    image.layer(directory("app"), file("app/bin/plugin")).layer(whiteout("app"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /app/bin/plugin"):
        image.extract("/app/bin/plugin")


def test_whiteout_does_not_delete_the_file_of_its_own_layer(image: Image) -> None:
    # OCI: a whiteout applies only to lower layers; its own layer's file stays.
    image.layer(file("plugin", b"v1")).layer(whiteout("plugin"), file("plugin", b"v2"))
    assert image.extract() == b"v2"


def test_file_deleted_then_added_again_above(image: Image) -> None:
    image.layer(file("plugin", b"v1")).layer(whiteout("plugin")).layer(file("plugin", b"v3"))
    assert image.extract() == b"v3"


def test_whiteout_of_another_name_changes_nothing(image: Image) -> None:
    image.layer(file("plugin", b"v1"), file("plugin2")).layer(whiteout("plugin2"), whiteout("plug"))
    assert image.extract() == b"v1"


def test_opaque_directory_hides_lower_contents(image: Image) -> None:
    image.layer(directory("app"), file("app/plugin", b"lower")).layer(directory("app"), opaque("app"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /app/plugin"):
        image.extract("/app/plugin")


def test_opaque_directory_keeps_its_own_layers_files(image: Image) -> None:
    image.layer(directory("app"), file("app/plugin", b"lower"))
    image.layer(directory("app"), opaque("app"), file("app/plugin", b"upper"))
    assert image.extract("/app/plugin") == b"upper"


def test_opaque_directory_hides_nested_lower_contents_only_under_it(image: Image) -> None:
    image.layer(file("app/deep/plugin", b"lower"), file("plugin", b"root"))
    image.layer(opaque("app"))
    assert image.extract() == b"root"
    with pytest.raises(ContentError, match="has no file"):
        image.extract("/app/deep/plugin")


def test_opaque_root_hides_every_lower_file(image: Image) -> None:
    image.layer(file("plugin", b"lower")).layer(opaque(""), file("other"))
    with pytest.raises(ContentError, match="has no file"):
        image.extract()


def test_file_replacing_a_directory_hides_what_it_held(image: Image) -> None:
    # Unpacking the upper layer removes the lower directory `opt` to create the file `opt`.
    image.layer(directory("opt"), file("opt/plugin", b"stale")).layer(file("opt", b"a file now"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /opt/plugin"):
        image.extract("/opt/plugin")


def test_directory_replaced_by_a_file_and_back_stays_empty(image: Image) -> None:
    # Middle layer: dir -> file (the old contents are gone); top layer: file -> empty dir.
    image.layer(directory("opt"), file("opt/plugin", b"stale"))
    image.layer(file("opt", b"a file"))
    image.layer(directory("opt"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /opt/plugin"):
        image.extract("/opt/plugin")


def test_symlink_replacing_a_directory_redirects_lookups(image: Image) -> None:
    image.layer(directory("bin"), file("bin/plugin", b"stale"), file("usr/bin/plugin", b"current"))
    image.layer(symlink("bin", "usr/bin"))
    assert image.extract("/bin/plugin") == b"current"


def test_path_through_a_file_does_not_exist(image: Image) -> None:
    # A lower file `app` and an upper `app/plugin` without its directory: unpacking would fail.
    image.layer(file("app", b"a file")).layer(file("app/plugin", b"upper"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /app/plugin"):
        image.extract("/app/plugin")


def test_last_member_of_a_name_in_one_layer_wins(image: Image) -> None:
    # `tar --append` makes such archives; unpacking leaves the last one.
    image.layer(file("plugin", b"first"), file("plugin", b"second"))
    assert image.extract() == b"second"


def test_last_member_wins_even_when_the_first_is_a_symlink(image: Image) -> None:
    image.layer(file("real", b"via link"), symlink("plugin", "real"), file("plugin", b"direct"))
    assert image.extract() == b"direct"


# --- symlinks: followed inside the image root only ----------------------------------------------


@pytest.mark.parametrize("target", ["/app/real", "app/real", "./app/real", "/app/../app/real"])
def test_symlink_as_entrypoint(image: Image, target: str) -> None:
    image.layer(file("app/real", b"real"), symlink("plugin", target))
    assert image.extract() == b"real"


def test_relative_symlink_is_relative_to_its_own_directory(image: Image) -> None:
    image.layer(file("app/real", b"app's"), file("real", b"root's"), symlink("app/plugin", "real"))
    assert image.extract("/app/plugin") == b"app's"


def test_relative_symlink_with_dotdot(image: Image) -> None:
    image.layer(file("usr/lib/plugin", b"lib"), symlink("usr/bin/plugin", "../lib/plugin"))
    assert image.extract("/usr/bin/plugin") == b"lib"


@pytest.mark.parametrize("target", ["usr/bin", "/usr/bin", "./usr/bin/"])
def test_symlink_in_a_parent_directory(image: Image, target: str) -> None:
    image.layer(file("usr/bin/plugin", b"in usr"), symlink("bin", target))
    assert image.extract("/bin/plugin") == b"in usr"


def test_symlinks_in_several_components(image: Image) -> None:
    image.layer(
        file("data/v2/real/plugin", b"deep"),
        symlink("opt", "/data"),
        symlink("data/current", "v2"),
        symlink("data/v2/bin", "real"),
    )
    assert image.extract("/opt/current/bin/plugin") == b"deep"


def test_symlink_and_its_target_in_different_layers(image: Image) -> None:
    image.layer(symlink("plugin", "/app/real")).layer(file("app/real", b"later layer"))
    assert image.extract() == b"later layer"


@pytest.mark.parametrize("target", ["../../../../etc/passwd", "/etc/passwd", "/../../etc/passwd"])
def test_symlink_escaping_the_root_resolves_inside_it(image: Image, target: str) -> None:
    image.layer(file("etc/passwd", b"the image's own passwd"), symlink("plugin", target))
    assert image.extract() == b"the image's own passwd"


@pytest.mark.parametrize("target", ["../../../../etc/passwd", "/etc/passwd", "../../../../../../bin/sh"])
def test_symlink_escaping_the_root_never_reads_the_host(image: Image, target: str) -> None:
    # The host has /etc/passwd and /bin/sh; the image does not: that is "no file", not a host read.
    assert Path("/etc/passwd").exists()
    image.layer(symlink("plugin", target))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /plugin"):
        image.extract()
    assert not (image.root / "out" / "plugin").exists()


def test_parent_symlink_escaping_the_root_stays_inside(image: Image) -> None:
    image.layer(file("usr/bin/plugin", b"inside"), symlink("bin", "../../../usr/bin"))
    assert image.extract("/bin/plugin") == b"inside"


def test_dangling_symlink_is_a_missing_entrypoint(image: Image) -> None:
    image.layer(symlink("plugin", "/nowhere"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /plugin"):
        image.extract()


def test_symlink_to_a_directory_is_not_a_plugin(image: Image) -> None:
    image.layer(directory("app"), symlink("plugin", "app"))
    with pytest.raises(ContentError, match="is a directory"):
        image.extract()


@pytest.mark.parametrize(
    "links",
    [
        [symlink("plugin", "plugin")],
        [symlink("plugin", "a"), symlink("a", "plugin")],
        [symlink("plugin", "a/x"), symlink("a", "b"), symlink("b", "a")],
        [symlink("plugin", "./plugin")],
    ],
    ids=["self", "pair", "in-parents", "dot-self"],
)
def test_symlink_loop_is_an_error(image: Image, links: list[Member]) -> None:
    image.layer(*links)
    with pytest.raises(ContentError, match=r"the Entrypoint of r\.io/p@sha256:abc is a symlink loop"):
        image.extract()


def _chain(length: int) -> list[Member]:
    """plugin -> l1 -> l2 -> … -> real: `length` symlinks in a row."""
    names = ["plugin", *(f"l{n}" for n in range(1, length)), "real"]
    return [file("real", b"end"), *(symlink(a, b) for a, b in itertools.pairwise(names))]


def test_symlink_chain_up_to_the_hop_limit_resolves(image: Image) -> None:
    image.layer(*_chain(MAX_SYMLINK_HOPS))
    assert image.extract() == b"end"


def test_symlink_chain_over_the_hop_limit_is_a_loop(image: Image) -> None:
    image.layer(*_chain(MAX_SYMLINK_HOPS + 1))
    with pytest.raises(ContentError, match="symlink loop"):
        image.extract()


# --- hard links -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["app/real", "./app/real", "/app/real"])
def test_hardlink_as_entrypoint(image: Image, target: str) -> None:
    image.layer(file("app/real", b"linked"), hardlink("plugin", target))
    assert image.extract() == b"linked"


def test_hardlink_through_a_symlinked_directory(image: Image) -> None:
    image.layer(file("usr/bin/real", b"linked"), symlink("bin", "usr/bin"), hardlink("plugin", "bin/real"))
    assert image.extract() == b"linked"


def test_hardlink_to_a_missing_file(image: Image) -> None:
    image.layer(hardlink("plugin", "nowhere"))
    with pytest.raises(ContentError, match="has no file at its Entrypoint /nowhere"):
        image.extract()


@pytest.mark.parametrize(
    "links",
    [[hardlink("plugin", "plugin")], [hardlink("plugin", "a"), hardlink("a", "plugin")]],
    ids=["self", "pair"],
)
def test_hardlink_loop_is_an_error_not_a_crash(image: Image, links: list[Member]) -> None:
    # Before the fix this recursed until RecursionError.
    image.layer(*links)
    with pytest.raises(ContentError, match="hard link loop"):
        image.extract()


def test_hardlink_escaping_the_root_stays_inside(image: Image) -> None:
    image.layer(file("etc/passwd", b"image's"), hardlink("plugin", "../../../etc/passwd"))
    assert image.extract() == b"image's"


# --- traversal in member names never writes outside dest ----------------------------------------


@pytest.mark.parametrize(
    "name",
    ["../../escape-a", "../../../../../../tmp/escape-b", "/abs-escape-c", "x/../../../escape-d"],
)
def test_traversal_member_names_write_nothing_but_dest(image: Image, name: str) -> None:
    outside = image.root.parent
    outside_before = {path.name for path in outside.iterdir()}
    token = name.rsplit("/", 1)[-1]
    image.layer(file(name, b"traversal"), symlink("evil-link", "../../.."), file("plugin", b"safe"))
    before = snapshot(image.root)
    assert image.extract() == b"safe"
    assert snapshot(image.root) - before == {"out", "out/plugin"}
    assert {path.name for path in outside.iterdir()} == outside_before
    assert not Path("/tmp", token).exists()


def test_traversal_member_is_read_as_a_path_inside_the_root(image: Image) -> None:
    # `../../x` is `x` in the image, and is extracted to dest only when it is the Entrypoint.
    image.layer(file("../../x", b"normalised"))
    before = snapshot(image.root)
    assert image.extract("/x") == b"normalised"
    assert snapshot(image.root) - before == {"out", "out/plugin"}


# --- damaged layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", COMPRESSIONS)
def test_truncated_layer_is_a_content_error(image: Image, media_type: str) -> None:
    blob = compress(tar_bytes([file("plugin", os.urandom(64 << 10))]), media_type)
    image.layer_blob(blob[: len(blob) // 2], media_type)
    with pytest.raises(ContentError, match="is not a readable tar archive"):
        image.extract()


@pytest.mark.parametrize("media_type", COMPRESSIONS)
def test_garbage_layer_is_a_content_error(image: Image, media_type: str) -> None:
    image.layer_blob(b"this is not an archive at all" * 40, media_type)
    with pytest.raises(ContentError, match="is not a readable tar archive"):
        image.extract()


def test_empty_layer_file_is_a_content_error(image: Image) -> None:
    image.layer_blob(b"", PLAIN)
    with pytest.raises(ContentError, match="is not a readable tar archive"):
        image.extract()


@pytest.mark.parametrize(("declared", "actual"), [(GZIP, PLAIN), (ZSTD, GZIP), (PLAIN, GZIP)])
def test_layer_with_the_wrong_declared_compression_is_a_content_error(
    image: Image, declared: str, actual: str
) -> None:
    image.layer_blob(compress(tar_bytes([file("plugin")]), actual), declared)
    with pytest.raises(ContentError, match="is not a readable tar archive"):
        image.extract()


# --- the image config: Entrypoint, else Cmd ------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        {"Entrypoint": ["/plugin", "--serve"], "Cmd": ["/other"]},
        {"Cmd": ["/plugin", "--flag"]},
        {"Entrypoint": None, "Cmd": ["/plugin"]},
        {"Entrypoint": [], "Cmd": ["/plugin"]},
    ],
)
def test_entrypoint_else_cmd(image: Image, config: dict[str, Any]) -> None:
    assert image.plan(config).entrypoint == "plugin"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, 'has no Entrypoint; build it with ENTRYPOINT \\["/plugin"\\]'),
        ({"Entrypoint": [], "Cmd": []}, "has no Entrypoint"),
        ({"Entrypoint": [42]}, "has no Entrypoint"),
        ({"Entrypoint": ["plugin"]}, "Entrypoint 'plugin' of .* is not an absolute path; use e.g. /plugin"),
        ({"Entrypoint": ["./plugin"]}, "is not an absolute path"),
        ({"Cmd": ["plugin"]}, "is not an absolute path"),
        ({"Entrypoint": "/plugin"}, "Entrypoint in the image config of .* is not a list"),
    ],
)
def test_unusable_entrypoint_is_refused(image: Image, config: dict[str, Any], message: str) -> None:
    with pytest.raises(ContentError, match=message):
        image.plan(config)


@pytest.mark.parametrize("raw", [b"{not json", b"[]", b'{"config": "a string"}', b"\xff"])
def test_config_that_is_not_a_json_object_is_refused(image: Image, raw: bytes) -> None:
    with pytest.raises(ContentError, match=r"the image config of r\.io/p@sha256:abc is not valid JSON"):
        image_plan(image.manifest, raw, WHERE)


def test_config_without_a_config_section_has_no_entrypoint(image: Image) -> None:
    with pytest.raises(ContentError, match="has no Entrypoint"):
        image_plan(image.manifest, b"{}", WHERE)


def test_image_plan_lists_layers_bottom_first(image: Image) -> None:
    image.layer(file("a"), media_type=ZSTD).layer(file("b"), media_type=GZIP)
    plan = image.plan()
    assert plan.kind == "image"
    assert [layer.compression for layer in plan.layers] == ["zstd", "gzip"]
    assert [layer.digest for layer in plan.layers] == [d["digest"] for d in image.descriptors]


def test_image_plan_refuses_a_layer_without_digest(image: Image) -> None:
    manifest = {"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": [{"mediaType": PLAIN, "size": 1}]}
    with pytest.raises(ContentError, match="has a layer without digest, size or mediaType"):
        image_plan(manifest, b'{"config": {"Entrypoint": ["/plugin"]}}', WHERE)


# --- artifacts: the layer is the executable ------------------------------------------------------


def _descriptor(media_type: str, n: int = 1) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": f"sha256:{n:064x}", "size": n}


def test_artifact_with_one_layer_of_any_type(tmp_path: Path) -> None:
    plan = artifact_plan({"layers": [_descriptor("application/octet-stream")]}, WHERE)
    assert plan == Plan("artifact", (Layer(f"sha256:{1:064x}", 1, "application/octet-stream"),))


def test_artifact_picks_the_one_plugin_binary_among_several_layers() -> None:
    layers = [
        _descriptor("text/markdown", 1),
        _descriptor(media.PLUGIN_BINARY, 2),
        _descriptor("application/json", 3),
    ]
    plan = artifact_plan({"layers": layers}, WHERE)
    assert [layer.digest for layer in plan.layers] == [f"sha256:{2:064x}"]


@pytest.mark.parametrize(
    ("layers", "count"),
    [
        ([], 0),
        ([_descriptor("text/plain", 1), _descriptor("text/plain", 2)], 2),
        ([_descriptor(media.PLUGIN_BINARY, 1), _descriptor(media.PLUGIN_BINARY, 2)], 2),
        (
            [_descriptor(media.PLUGIN_BINARY, 1), _descriptor(media.PLUGIN_BINARY, 2), _descriptor("x/y", 3)],
            3,
        ),
    ],
    ids=["none", "several-without-binary", "two-binaries", "two-binaries-and-more"],
)
def test_ambiguous_artifact_is_refused(layers: list[dict[str, Any]], count: int) -> None:
    with pytest.raises(
        ContentError, match=f"is an artifact with {count} layers; a plugin artifact has exactly one"
    ):
        artifact_plan({"layers": layers}, WHERE)


def test_artifact_layer_without_digest_is_refused() -> None:
    with pytest.raises(ContentError, match="has a layer without digest, size or mediaType"):
        artifact_plan({"layers": [{"mediaType": media.PLUGIN_BINARY, "size": "many"}]}, WHERE)


def test_artifact_extract_copies_the_blob_and_makes_it_executable(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x7fELF raw executable")
    dest = tmp_path / "out"
    plan = artifact_plan({"layers": [_descriptor(media.PLUGIN_BINARY)]}, WHERE)
    extract(plan, [blob], dest, LIMIT, WHERE)
    assert dest.read_bytes() == b"\x7fELF raw executable"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o755


# --- which manifests are images -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        (
            {
                "config": {"mediaType": media.OCI_IMAGE_CONFIG},
                "layers": [{"mediaType": GZIP}, {"mediaType": ZSTD}],
            },
            True,
        ),
        (
            {
                "config": {"mediaType": media.DOCKER_IMAGE_CONFIG},
                "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip"}],
            },
            True,
        ),
        ({"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": []}, True),
        # An artifact: its own config type, or the empty config, and a binary layer.
        ({"config": {"mediaType": media.OCI_EMPTY}, "layers": [{"mediaType": media.PLUGIN_BINARY}]}, False),
        (
            {"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": [{"mediaType": media.PLUGIN_BINARY}]},
            False,
        ),
        ({"config": {"mediaType": media.OCI_EMPTY}, "layers": [{"mediaType": GZIP}]}, False),
        ({"layers": [{"mediaType": GZIP}]}, False),
        # Malformed manifests are simply not images (and do not crash).
        ({"config": "a string", "layers": [{"mediaType": GZIP}]}, False),
        ({"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": "not a list"}, False),
        ({"config": {"mediaType": media.OCI_IMAGE_CONFIG}, "layers": ["not an object"]}, False),
        ({}, False),
    ],
)
def test_is_image(manifest: dict[str, Any], expected: bool) -> None:
    assert is_image(manifest) is expected


@pytest.mark.parametrize(
    ("media_type", "compression"), [*media.TAR_LAYERS.items(), (media.PLUGIN_BINARY, None)]
)
def test_layer_compression(media_type: str, compression: str | None) -> None:
    assert Layer("sha256:x", 1, media_type).compression == compression
