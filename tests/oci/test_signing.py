"""`solstice.oci.signing` against a real registry; what it stores is read back with raw HTTP calls."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from solstice.oci import credentials, media
from solstice.oci.errors import SignatureRequiredError
from solstice.oci.keys import PrivateKey, key_id, public_key_pem
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.push import push
from solstice.oci.reference import OciReference, parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient
from solstice.oci.signatures import (
    BUNDLE_MEDIA_TYPE,
    COSIGN_PREDICATE_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    verify_bundle,
    verify_simple_signing,
)
from solstice.oci.signing import list_signatures, sign, verify
from tests.oci.images import sha256_digest, write_plugin_executable
from tests.oci.registries import MANIFEST_ACCEPT, Registry

OPTIONS = ClientOptions(retries=0, timeout=5)
REPOSITORY = "plugins/signed"


@pytest.fixture(scope="module")
def alice() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def bob() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def client_for(registry: Registry) -> RegistryClient:
    environ = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": str(registry.user),
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORD": str(registry.password),
        "OCI_PLUGINS_REGISTRY_LOCAL_HOST": registry.host,
    }
    credential = credentials.resolve(registry.host, environ, "LOCAL") if registry.user else None
    return RegistryClient(registry.host, credential, OPTIONS)


async def pushed(
    registry: Registry, tmp_path: Path, tag: str = "v1", text: str = "signed plugin"
) -> tuple[OciReference, str]:
    exe = write_plugin_executable(tmp_path / tag / "plugin", text)
    async with client_for(registry) as client:
        digest = await push(client, REPOSITORY, tag, [(exe, None)])
    return parse_reference(f"oci://{registry.host}/{REPOSITORY}:{tag}"), digest


async def sign_with(registry: Registry, ref: OciReference, digest: str, key: PrivateKey, fmt: Any) -> str:
    async with client_for(registry) as client:
        return await sign(client, ref, digest, key, fmt=fmt)


def raw_manifest(registry: Registry, ref: str) -> tuple[dict[str, Any], httpx.Response]:
    """A manifest fetched the way any client must from distribution 2.8: with the OCI Accept header."""
    with registry.client() as http:
        answer = http.get(f"/v2/{REPOSITORY}/manifests/{ref}", headers={"Accept": MANIFEST_ACCEPT})
    answer.raise_for_status()
    return answer.json(), answer


def raw_blob(registry: Registry, digest: str) -> bytes:
    with registry.client() as http:
        answer = http.get(f"/v2/{REPOSITORY}/blobs/{digest}")
    answer.raise_for_status()
    assert sha256_digest(answer.content) == digest
    return answer.content


def raw_put_sbom(registry: Registry, subject: str) -> dict[str, Any]:
    """Store an SPDX referrer of `subject` with plain HTTP calls; returns its descriptor."""
    document = b'{"spdxVersion":"SPDX-2.3"}'
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": "application/spdx+json",
        "config": {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_JSON_DIGEST, "size": 2},
        "layers": [
            {"mediaType": "application/spdx+json", "digest": sha256_digest(document), "size": len(document)}
        ],
        "subject": {
            "mediaType": media.OCI_MANIFEST,
            "digest": subject,
            "size": len(raw_manifest(registry, subject)[1].content),
        },
    }
    raw = json.dumps(manifest).encode()
    with registry.client() as http:
        for data in (b"{}", document):
            started = http.post(f"/v2/{REPOSITORY}/blobs/uploads/")
            assert started.status_code == 202, started.text
            # The upload URL carries state in its query: the digest is appended to it.
            location = str(httpx.URL(registry.url).join(started.headers["location"]))
            done = http.put(f"{location}&digest={sha256_digest(data)}", content=data)
            assert done.status_code == 201, done.text
        put = http.put(
            f"/v2/{REPOSITORY}/manifests/{sha256_digest(raw)}",
            content=raw,
            headers={"Content-Type": media.OCI_MANIFEST},
        )
        assert put.status_code == 201, put.text
    return {
        "mediaType": media.OCI_MANIFEST,
        "digest": sha256_digest(raw),
        "size": len(raw),
        "artifactType": "application/spdx+json",
    }


def hex_of(digest: str) -> str:
    return digest.removeprefix("sha256:")


def puller(tmp_path: Path, key: PrivateKey) -> Puller:
    environ = {"OCI_PLUGINS_PUBLIC_KEY_1": public_key_pem(key.public_key()).decode()}
    return Puller(
        OciConfig(cache_dir=tmp_path / "cache", require_signature=True, client=OPTIONS, environ=environ)
    )


async def test_legacy_signature_is_stored_as_cosign_writes_it(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey
) -> None:
    ref, digest = await pushed(registry, tmp_path)

    signature_digest = await sign_with(registry, ref, digest, alice, "legacy")

    manifest, answer = raw_manifest(registry, f"sha256-{hex_of(digest)}.sig")
    assert answer.headers["docker-content-digest"] == signature_digest
    assert manifest["mediaType"] == media.OCI_MANIFEST
    assert manifest["config"]["mediaType"] == media.OCI_IMAGE_CONFIG
    [layer] = manifest["layers"]
    assert layer["mediaType"] == SIMPLE_SIGNING_MEDIA_TYPE
    payload = raw_blob(registry, layer["digest"])
    assert layer["size"] == len(payload)
    assert json.loads(payload)["critical"] == {
        "identity": {"docker-reference": f"{registry.host}/{REPOSITORY}"},
        "image": {"docker-manifest-digest": digest},
        "type": "cosign container image signature",
    }
    annotation = layer["annotations"][SIGNATURE_ANNOTATION]
    assert verify_simple_signing(payload, annotation, digest, {"alice": alice.public_key()}) == "alice"
    config = json.loads(raw_blob(registry, manifest["config"]["digest"]))
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}


async def test_resigning_appends_a_legacy_layer_and_keeps_other_signers(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey, bob: ec.EllipticCurvePrivateKey
) -> None:
    ref, digest = await pushed(registry, tmp_path)
    tag = f"sha256-{hex_of(digest)}.sig"
    await sign_with(registry, ref, digest, alice, "legacy")
    await sign_with(registry, ref, digest, bob, "legacy")

    manifest, _ = raw_manifest(registry, tag)
    layers = manifest["layers"]
    assert len(layers) == 2
    payload = raw_blob(registry, layers[0]["digest"])
    signatures = [layer["annotations"][SIGNATURE_ANNOTATION] for layer in layers]
    assert verify_simple_signing(payload, signatures[0], digest, {"alice": alice.public_key()}) == "alice"
    assert verify_simple_signing(payload, signatures[1], digest, {"bob": bob.public_key()}) == "bob"
    config = json.loads(raw_blob(registry, manifest["config"]["digest"]))
    assert config["rootfs"]["diff_ids"] == [layer["digest"] for layer in layers]

    # ECDSA signatures are randomised: signing again appends; Ed25519 ones repeat and are not doubled.
    await sign_with(registry, ref, digest, alice, "legacy")
    assert len(raw_manifest(registry, tag)[0]["layers"]) == 3
    carol = ed25519.Ed25519PrivateKey.generate()
    await sign_with(registry, ref, digest, carol, "legacy")
    await sign_with(registry, ref, digest, carol, "legacy")
    assert len(raw_manifest(registry, tag)[0]["layers"]) == 4


async def test_bundle_is_a_referrer_listed_by_the_fallback_tag(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey
) -> None:
    ref, digest = await pushed(registry, tmp_path)
    subject, subject_answer = raw_manifest(registry, digest)

    referrer_digest = await sign_with(registry, ref, digest, alice, "bundle")

    with registry.client() as http:
        # distribution 2.8 has no referrers API, which is why the fallback tag exists.
        assert http.get(f"/v2/{REPOSITORY}/referrers/{digest}").status_code == 404
    index, _ = raw_manifest(registry, f"sha256-{hex_of(digest)}")
    assert index["mediaType"] == media.OCI_INDEX
    [entry] = index["manifests"]
    referrer, answer = raw_manifest(registry, referrer_digest)
    assert entry == {
        "mediaType": media.OCI_MANIFEST,
        "digest": referrer_digest,
        "size": len(answer.content),
        "artifactType": BUNDLE_MEDIA_TYPE,
        "annotations": referrer["annotations"],
    }
    assert referrer["artifactType"] == BUNDLE_MEDIA_TYPE
    assert referrer["config"] == {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_JSON_DIGEST, "size": 2}
    assert referrer["subject"] == {
        "mediaType": media.OCI_MANIFEST,
        "digest": digest,
        "size": len(subject_answer.content),
    }
    assert subject["mediaType"] == media.OCI_MANIFEST
    annotations = referrer["annotations"]
    assert annotations["dev.sigstore.bundle.content"] == "dsse-envelope"
    assert annotations["dev.sigstore.bundle.predicateType"] == COSIGN_PREDICATE_TYPE
    assert media.CREATED_ANNOTATION in annotations
    [layer] = referrer["layers"]
    assert layer["mediaType"] == BUNDLE_MEDIA_TYPE
    bundle = raw_blob(registry, layer["digest"])
    assert verify_bundle(bundle, digest, {"alice": alice.public_key()}) == "alice"
    statement = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    assert statement["subject"] == [{"digest": {"sha256": hex_of(digest)}}]


async def test_resigning_merges_the_fallback_index(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey, bob: ec.EllipticCurvePrivateKey
) -> None:
    ref, digest = await pushed(registry, tmp_path)
    tag = f"sha256-{hex_of(digest)}"
    # Someone else's referrer (an SBOM) already listed under the fallback tag must survive.
    sbom = raw_put_sbom(registry, digest)
    index = json.dumps({"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": [sbom]}).encode()
    with registry.client() as http:
        put = http.put(
            f"/v2/{REPOSITORY}/manifests/{tag}", content=index, headers={"Content-Type": media.OCI_INDEX}
        )
        assert put.status_code == 201, put.text

    first = await sign_with(registry, ref, digest, alice, "bundle")
    second = await sign_with(registry, ref, digest, bob, "bundle")

    merged, _ = raw_manifest(registry, tag)
    assert [entry["digest"] for entry in merged["manifests"]] == [sbom["digest"], first, second]
    assert merged["manifests"][0] == sbom
    async with client_for(registry) as client:
        found = await list_signatures(client, REPOSITORY, digest)
    assert [(f.kind, f.where, f.manifest) for f in found] == [
        ("bundle", f"tag {tag}", first),
        ("bundle", f"tag {tag}", second),
    ]
    for digest_of_referrer, key, name in ((first, alice, "alice"), (second, bob, "bob")):
        referrer, _ = raw_manifest(registry, digest_of_referrer)
        bundle = raw_blob(registry, referrer["layers"][0]["digest"])
        assert verify_bundle(bundle, digest, {name: key.public_key()}) == name


@pytest.mark.parametrize("fmt", ["bundle", "legacy"])
async def test_verify_and_the_puller_accept_what_was_signed(
    registry: Registry,
    tmp_path: Path,
    alice: ec.EllipticCurvePrivateKey,
    bob: ec.EllipticCurvePrivateKey,
    fmt: Any,
) -> None:
    ref, digest = await pushed(registry, tmp_path)
    await sign_with(registry, ref, digest, alice, fmt)

    async with client_for(registry) as client:
        [found] = await list_signatures(client, REPOSITORY, digest)
        verified = await verify(client, REPOSITORY, digest, {"alice": alice.public_key()})
        with pytest.raises(SignatureRequiredError, match="does not verify") as refused:
            await verify(client, REPOSITORY, digest, {"bob": bob.public_key()})
    assert found.kind == fmt
    assert (verified.key, verified.signature) == ("alice", found)
    assert f"{registry.host}/{REPOSITORY}@{digest} has no valid signature" in str(refused.value)

    pulled = await puller(tmp_path / "alice", alice).pull(ref)
    assert pulled.verified_key == key_id(alice.public_key())
    with pytest.raises(SignatureRequiredError):
        await puller(tmp_path / "bob", bob).pull(ref)


async def test_unsigned_digest_has_no_signature(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey
) -> None:
    _, digest = await pushed(registry, tmp_path)
    async with client_for(registry) as client:
        assert await list_signatures(client, REPOSITORY, digest) == []
        with pytest.raises(SignatureRequiredError, match="has no cosign signature"):
            await verify(client, REPOSITORY, digest, {"alice": alice.public_key()})


async def test_signing_a_multi_platform_index_covers_each_platform(
    registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey
) -> None:
    amd = write_plugin_executable(tmp_path / "amd" / "p", "amd64")
    arm = write_plugin_executable(tmp_path / "arm" / "p", "arm64")
    async with client_for(registry) as client:
        digest = await push(client, REPOSITORY, "multi", [(amd, "linux/amd64"), (arm, "linux/arm64")])
    ref = parse_reference(f"oci://{registry.host}/{REPOSITORY}:multi?arch=linux/arm64")
    await sign_with(registry, ref, digest, alice, "bundle")
    _, answer = raw_manifest(registry, digest)

    referrer_digest = raw_manifest(registry, f"sha256-{hex_of(digest)}")[0]["manifests"][0]["digest"]
    subject = raw_manifest(registry, referrer_digest)[0]["subject"]
    assert subject == {"mediaType": media.OCI_INDEX, "digest": digest, "size": len(answer.content)}
    pulled = await puller(tmp_path, alice).pull(ref)
    assert pulled.platform == "linux/arm64"


@pytest.mark.parametrize("fmt", ["bundle", "legacy"])
async def test_signing_on_a_token_registry(
    token_registry: Registry, tmp_path: Path, alice: ec.EllipticCurvePrivateKey, fmt: Any
) -> None:
    ref, digest = await pushed(token_registry, tmp_path)
    await sign_with(token_registry, ref, digest, alice, fmt)
    async with client_for(token_registry) as client:
        verified = await verify(client, REPOSITORY, digest, {"alice": alice.public_key()})
    assert verified.signature.kind == fmt
