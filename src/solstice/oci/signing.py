"""cosign signatures in a registry: writing both formats, finding them again, and verifying them.

Legacy: a manifest tagged `sha256-<hex>.sig`, one simple-signing layer per signature. Bundle: a
sigstore v0.3 bundle in a referrer manifest (`subject` = the signed manifest), listed by the
referrers API or, on registries without it such as distribution 2.8, the `sha256-<hex>` index tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from solstice.oci import media
from solstice.oci.errors import ContentError, NotFoundError, SignatureRequiredError
from solstice.oci.keys import PrivateKey, PublicKey
from solstice.oci.push import EMPTY_CONFIG, bytes_blob, manifest_json, rfc3339
from solstice.oci.reference import OciReference
from solstice.oci.registry import Manifest, RegistryClient, sha256_digest
from solstice.oci.signatures import (
    BUNDLE_CONTENT_ANNOTATION,
    BUNDLE_CONTENT_DSSE,
    BUNDLE_MEDIA_TYPE,
    BUNDLE_MEDIA_TYPES,
    BUNDLE_PREDICATE_TYPE_ANNOTATION,
    COSIGN_PREDICATE_TYPE,
    SIGNATURE_ANNOTATION,
    SIMPLE_SIGNING_MEDIA_TYPE,
    SignatureError,
    make_bundle,
    make_simple_signature,
    referrers_fallback_tag,
    signature_tag,
    verify_bundle,
    verify_simple_signing,
)

SignFormat = Literal["bundle", "legacy"]
SIGN_FORMATS: tuple[SignFormat, ...] = ("bundle", "legacy")
MAX_SIGNATURE_BYTES = 1 << 20
# A registry (or whoever may push to it) must not make a verifier fetch without end.
MAX_SIGNATURES = 16


@dataclass(frozen=True)
class SignatureRef:
    """Where one signature of a manifest is stored; `annotation` is a legacy layer's signature."""

    kind: SignFormat
    where: str
    manifest: str
    layer: str
    annotation: str = ""
    created: str = ""

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly fields, without the signature value."""
        found = asdict(self)
        del found["annotation"]
        return found


@dataclass(frozen=True)
class Verified:
    """A signature that verified: the configured key's name and where the signature was."""

    digest: str
    key: str
    signature: SignatureRef


# -- signing -----------------------------------------------------------------------------------


async def sign(
    client: RegistryClient,
    ref: OciReference,
    digest: str,
    private_key: PrivateKey,
    *,
    fmt: SignFormat = "bundle",
) -> str:
    """Sign the manifest `digest` of `ref`'s repository; returns the digest of the signature manifest."""
    if fmt not in SIGN_FORMATS:
        raise ValueError(f"signature format {fmt!r} is unknown; use bundle or legacy")
    subject = await client.manifest(ref.repository, digest)
    if fmt == "legacy":
        return await _sign_legacy(client, ref, subject, private_key)
    return await _sign_bundle(client, ref.repository, subject, private_key)


async def _sign_legacy(
    client: RegistryClient, ref: OciReference, subject: Manifest, private_key: PrivateKey
) -> str:
    payload, signature = make_simple_signature(private_key, ref.name, subject.digest)
    blob = bytes_blob(payload, SIMPLE_SIGNING_MEDIA_TYPE)
    layer = blob.descriptor({SIGNATURE_ANNOTATION: signature})
    tag = signature_tag(subject.digest)
    layers = await _existing_layers(client, ref.repository, tag)
    # Other signers' layers stay and a new signature is appended; only an identical layer (Ed25519
    # and RSA signatures repeat for the same key) is not added twice.
    if not any(_same_layer(old, layer) for old in layers):
        layers.append(layer)
    config = bytes_blob(_legacy_config(layers), media.OCI_IMAGE_CONFIG)
    await client.push_blob(ref.repository, blob.digest, payload)
    await client.push_blob(ref.repository, config.digest, config.source)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": layers,
    }
    return await client.put_manifest(ref.repository, tag, manifest_json(manifest), media.OCI_MANIFEST)


async def _existing_layers(client: RegistryClient, repository: str, tag: str) -> list[dict[str, Any]]:
    try:
        existing = await client.manifest(repository, tag)
    except NotFoundError:
        return []
    layers = existing.data.get("layers")
    if existing.is_index or not isinstance(layers, list):
        raise ContentError(
            f"tag {tag} of {repository} holds a {existing.media_type or 'document'} without layers, "
            "not cosign signatures; delete that tag and sign again"
        )
    return [layer for layer in layers if isinstance(layer, dict)]


def _same_layer(old: dict[str, Any], new: dict[str, Any]) -> bool:
    annotations = old.get("annotations") or {}
    return bool(
        old.get("digest") == new["digest"]
        and annotations.get(SIGNATURE_ANNOTATION) == (new["annotations"][SIGNATURE_ANNOTATION])
    )


def _legacy_config(layers: list[dict[str, Any]]) -> bytes:
    """The image config go-containerregistry gives a signature image: one diff id per layer."""
    config = {
        "architecture": "",
        "created": "0001-01-01T00:00:00Z",
        "history": [{"created": "0001-01-01T00:00:00Z"}],
        "os": "",
        "rootfs": {"type": "layers", "diff_ids": [str(layer.get("digest")) for layer in layers]},
        "config": {},
    }
    return manifest_json(config)


async def _sign_bundle(
    client: RegistryClient, repository: str, subject: Manifest, private_key: PrivateKey
) -> str:
    bundle = bytes_blob(make_bundle(private_key, subject.digest), BUNDLE_MEDIA_TYPE)
    annotations = {
        BUNDLE_CONTENT_ANNOTATION: BUNDLE_CONTENT_DSSE,
        BUNDLE_PREDICATE_TYPE_ANNOTATION: COSIGN_PREDICATE_TYPE,
        media.CREATED_ANNOTATION: rfc3339(datetime.now(UTC)),
    }
    manifest = {
        "schemaVersion": 2,
        "mediaType": media.OCI_MANIFEST,
        "artifactType": BUNDLE_MEDIA_TYPE,
        "config": EMPTY_CONFIG.descriptor(),
        "layers": [bundle.descriptor()],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": len(subject.raw)},
        "annotations": annotations,
    }
    raw = manifest_json(manifest)
    await client.push_blob(repository, EMPTY_CONFIG.digest, EMPTY_CONFIG.source)
    await client.push_blob(repository, bundle.digest, bundle.source)
    digest = await client.put_manifest(repository, sha256_digest(raw), raw, media.OCI_MANIFEST)
    # A registry with the referrers API lists the new manifest by its subject by itself.
    if await client.referrers(repository, subject.digest) is None:
        descriptor = {
            "mediaType": media.OCI_MANIFEST,
            "digest": digest,
            "size": len(raw),
            "artifactType": BUNDLE_MEDIA_TYPE,
            "annotations": annotations,
        }
        await add_to_fallback_index(client, repository, subject.digest, descriptor)
    return digest


async def add_to_fallback_index(
    client: RegistryClient, repository: str, subject_digest: str, descriptor: dict[str, Any]
) -> str:
    """Add a referrer to the `sha256-<hex>` tag-schema index of `subject_digest`, keeping the others."""
    tag = referrers_fallback_tag(subject_digest)
    entries = await _fallback_entries(client, repository, tag)
    if not any(entry.get("digest") == descriptor["digest"] for entry in entries):
        entries.append(descriptor)
    index = {"schemaVersion": 2, "mediaType": media.OCI_INDEX, "manifests": entries}
    return await client.put_manifest(repository, tag, manifest_json(index), media.OCI_INDEX)


async def _fallback_entries(client: RegistryClient, repository: str, tag: str) -> list[dict[str, Any]]:
    try:
        existing = await client.manifest(repository, tag)
    except NotFoundError:
        return []
    entries = existing.data.get("manifests")
    if existing.media_type != media.OCI_INDEX or not isinstance(entries, list):
        raise ContentError(
            f"tag {tag} of {repository} holds a {existing.media_type or 'document'}, not the OCI index "
            "of referrers; delete that tag and sign again"
        )
    return [entry for entry in entries if isinstance(entry, dict)]


# -- finding and verifying ---------------------------------------------------------------------


async def list_signatures(client: RegistryClient, repository: str, digest: str) -> list[SignatureRef]:
    """Every cosign signature stored for `digest`: bundles (referrers API or tag), then `.sig` layers."""
    return [
        *await _bundle_signatures(client, repository, digest),
        *await _legacy_signatures(client, repository, digest),
    ]


async def _bundle_signatures(client: RegistryClient, repository: str, digest: str) -> list[SignatureRef]:
    referrers = await client.referrers(repository, digest)
    where = "referrers API"
    if referrers is None:
        where = f"tag {referrers_fallback_tag(digest)}"
        try:
            fallback = await client.manifest(repository, referrers_fallback_tag(digest))
        except NotFoundError:
            return []
        referrers = [e for e in fallback.data.get("manifests") or [] if isinstance(e, dict)]
    bundles = [d for d in referrers if d.get("artifactType") in BUNDLE_MEDIA_TYPES][:MAX_SIGNATURES]
    found = []
    for descriptor in bundles:
        try:
            manifest = await client.manifest(repository, str(descriptor.get("digest")))
        except NotFoundError:
            continue
        created = str((manifest.data.get("annotations") or {}).get(media.CREATED_ANNOTATION, ""))
        for layer in manifest.data.get("layers") or []:
            if isinstance(layer, dict) and layer.get("mediaType") in BUNDLE_MEDIA_TYPES:
                found.append(
                    SignatureRef("bundle", where, manifest.digest, str(layer.get("digest")), "", created)
                )
    return found[:MAX_SIGNATURES]


async def _legacy_signatures(client: RegistryClient, repository: str, digest: str) -> list[SignatureRef]:
    tag = signature_tag(digest)
    try:
        manifest = await client.manifest(repository, tag)
    except NotFoundError:
        return []
    found = []
    for layer in manifest.data.get("layers") or []:
        if not isinstance(layer, dict) or layer.get("mediaType") != SIMPLE_SIGNING_MEDIA_TYPE:
            continue
        annotation = (layer.get("annotations") or {}).get(SIGNATURE_ANNOTATION)
        if isinstance(annotation, str) and annotation:
            found.append(
                SignatureRef("legacy", f"tag {tag}", manifest.digest, str(layer.get("digest")), annotation)
            )
    return found[:MAX_SIGNATURES]


async def verify(
    client: RegistryClient, repository: str, digest: str, keys: Mapping[str, PublicKey]
) -> Verified:
    """The first stored signature of `digest` that one of `keys` verifies; SignatureRequiredError if none."""
    # Each reason once, with every place it applies to: several signers often fail the same way.
    problems: dict[str, list[str]] = {}
    signatures = await list_signatures(client, repository, digest)
    for signature in signatures:
        try:
            blob = await client.blob_bytes(repository, signature.layer, MAX_SIGNATURE_BYTES)
            name = check(signature, blob, digest, keys)
        except (SignatureError, ContentError, NotFoundError) as exc:
            problems.setdefault(str(exc).rstrip("."), []).append(f"{signature.kind} in {signature.where}")
            continue
        return Verified(digest, name, signature)
    image = f"{client.host}/{repository}@{digest}"
    if not signatures:
        raise SignatureRequiredError(
            f"{image} has no cosign signature (looked for referrers, tag {referrers_fallback_tag(digest)} "
            f"and tag {signature_tag(digest)}); sign it with `solstice oci sign --key cosign.key`"
        )
    detail = "; ".join(f"{reason} ({', '.join(places)})" for reason, places in problems.items())
    raise SignatureRequiredError(f"{image} has no valid signature: {detail}")


def check(signature: SignatureRef, blob: bytes, digest: str, keys: Mapping[str, PublicKey]) -> str:
    """Verify one fetched signature blob against `digest`; returns the key's name or raises SignatureError."""
    if signature.kind == "bundle":
        return verify_bundle(blob, digest, keys)
    return verify_simple_signing(blob, signature.annotation, digest, keys)
