"""Every descriptor of an index or manifest is checked before a request is made with it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from solstice.oci import media
from solstice.oci.errors import ContentError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.fakes import serving

GOOD = "sha256:" + "a" * 64
BAD_DIGESTS = [
    "sha256:../../x",
    "sha256:" + "a" * 60 + "/b/c",
    "sha256:" + "a" * 64 + "?n=1",
    "sha256:" + "A" * 64,
    "sha256:" + "a" * 63,
    "md5:" + "a" * 32,
]


def _layer(digest: str = GOOD, **changes: Any) -> dict[str, Any]:
    return {"mediaType": media.PLUGIN_BINARY, "digest": digest, "size": 10, **changes}


def _artifact(layer: dict[str, Any]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_JSON_DIGEST, "size": 2},
        "layers": [layer],
    }


def _image(config_digest: str) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": {"mediaType": media.OCI_IMAGE_CONFIG, "digest": config_digest, "size": 100},
        "layers": [_layer(mediaType="application/vnd.oci.image.layer.v1.tar+gzip")],
    }


def _index(child_digest: str) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media.OCI_INDEX,
        "manifests": [
            {
                "mediaType": media.OCI_MANIFEST,
                "digest": child_digest,
                "size": 100,
                "platform": {"os": "linux", "architecture": "amd64"},
            }
        ],
    }


async def _pull_from_fake(document: dict[str, Any], tmp_path: Path) -> tuple[str, list[str]]:
    """Serve `document` as plugins/bad:v1; the pull's error and every path the fake was asked for."""
    raw = json.dumps(document).encode()
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if request.path in ("/v2/plugins/bad/manifests/v1", f"/v2/plugins/bad/manifests/{digest}"):
            headers = {"Docker-Content-Digest": digest}
            return web.Response(body=raw, content_type=document["mediaType"], headers=headers)
        if request.path == "/v2/":
            return web.Response(text="{}")
        return web.Response(status=404, text='{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    puller = Puller(OciConfig(tmp_path / "cache", client=ClientOptions(retries=0, timeout=5)))
    async with serving(app) as host:
        with pytest.raises(ContentError) as caught:
            await puller.pull(parse_reference(f"oci://{host}/plugins/bad:v1?arch=linux/amd64"))
    return str(caught.value), seen


def _only_manifest_requests(seen: list[str]) -> bool:
    return all(path.startswith(("/v2/plugins/bad/manifests/", "/v2/plugins/bad/referrers/")) for path in seen)


@pytest.mark.parametrize("digest", BAD_DIGESTS)
async def test_a_bad_layer_digest_is_refused_before_any_request(digest: str, tmp_path: Path) -> None:
    error, seen = await _pull_from_fake(_artifact(_layer(digest)), tmp_path)
    assert digest in error and "digest" in error
    assert _only_manifest_requests(seen), seen


@pytest.mark.parametrize("digest", BAD_DIGESTS[:3])
async def test_a_bad_config_digest_is_refused_before_any_request(digest: str, tmp_path: Path) -> None:
    error, seen = await _pull_from_fake(_image(digest), tmp_path)
    assert digest in error
    assert _only_manifest_requests(seen), seen


@pytest.mark.parametrize("digest", BAD_DIGESTS[:3])
async def test_a_bad_index_entry_digest_is_refused_before_any_request(digest: str, tmp_path: Path) -> None:
    error, seen = await _pull_from_fake(_index(digest), tmp_path)
    assert digest in error
    assert _only_manifest_requests(seen), seen


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"size": -1}, "size"),
        ({"size": True}, "size"),
        ({"size": "10"}, "size"),
        ({"size": 1 << 62}, "size"),
        ({"mediaType": "not a media type"}, "mediaType"),
        ({"mediaType": 7}, "mediaType"),
    ],
)
async def test_a_bad_size_or_media_type_is_refused_before_any_request(
    changes: dict[str, Any], named: str, tmp_path: Path
) -> None:
    error, seen = await _pull_from_fake(_artifact(_layer(**changes)), tmp_path)
    assert named in error
    assert _only_manifest_requests(seen), seen
