"""cosign key-based signatures: the legacy simple-signing `.sig` layer and the sigstore v0.3 DSSE bundle.

Only bytes are built and checked here; finding them in a registry is the caller's job.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from solstice.oci.errors import OciError
from solstice.oci.keys import PrivateKey, PublicKey, key_id

# Legacy format: one layer per signature in the manifest tagged sha256-<hex>.sig.
SIMPLE_SIGNING_MEDIA_TYPE = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
SIMPLE_SIGNING_TYPE = "cosign container image signature"
SIGNATURE_TAG_SUFFIX = ".sig"

# cosign v3 format: a referrer whose artifactType and only layer are the bundle.
BUNDLE_MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
BUNDLE_MEDIA_TYPES = frozenset({BUNDLE_MEDIA_TYPE, "application/vnd.dev.sigstore.bundle+json;version=0.3"})
BUNDLE_CONTENT_ANNOTATION = "dev.sigstore.bundle.content"
BUNDLE_CONTENT_DSSE = "dsse-envelope"
BUNDLE_PREDICATE_TYPE_ANNOTATION = "dev.sigstore.bundle.predicateType"
IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
IN_TOTO_STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
IN_TOTO_STATEMENT_TYPES = frozenset({IN_TOTO_STATEMENT_TYPE, "https://in-toto.io/Statement/v0.1"})
COSIGN_PREDICATE_TYPE = "https://sigstore.dev/cosign/sign/v1"

_DIGEST = re.compile(r"sha256:([0-9a-f]{64})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")
_URLSAFE_TO_STANDARD = str.maketrans("-_", "+/")
_SHOWN_MAX = 100

SignatureFailure = Literal["untrusted-key", "digest-mismatch", "malformed", "unsupported"]


class SignatureError(OciError, ValueError):
    """A signature was refused; `reason` says why in a word, the message in a sentence."""

    def __init__(self, message: str, reason: SignatureFailure) -> None:
        super().__init__(message)
        self.reason: SignatureFailure = reason


def digest_hex(manifest_digest: str) -> str:
    """The hex part of a `sha256:<64 lowercase hex>` digest; ValueError for anything else."""
    match = _DIGEST.fullmatch(manifest_digest)
    if match is None:
        raise ValueError(
            f"invalid manifest digest {_shown(manifest_digest)}: "
            "expected sha256: followed by 64 lowercase hex digits."
        )
    return match.group(1)


def signature_tag(manifest_digest: str) -> str:
    """The tag cosign stores legacy signatures of a manifest under: `sha256-<hex>.sig`."""
    return referrers_fallback_tag(manifest_digest) + SIGNATURE_TAG_SUFFIX


def referrers_fallback_tag(manifest_digest: str) -> str:
    """The OCI 1.1 referrers tag-schema index of a manifest, used when the registry has no referrers API."""
    return f"sha256-{digest_hex(manifest_digest)}"


def sign(private_key: PrivateKey, data: bytes) -> bytes:
    """Sign bytes as cosign does: DER ECDSA-SHA256, raw Ed25519 or RSA PKCS#1 v1.5 with SHA-256."""
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        return private_key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(data)
    return private_key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def signature_matches(public_key: PublicKey, signature: bytes, data: bytes) -> bool:
    """Whether `signature` over `data` verifies with `public_key` under the scheme `sign` uses."""
    try:
        if isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        else:
            return _ecdsa_matches(public_key, signature, data)
    except InvalidSignature:
        return False
    return True


def simple_signing_payload(docker_reference: str, manifest_digest: str) -> bytes:
    """The simple-signing JSON cosign signs for an image, byte for byte as cosign writes it."""
    digest_hex(manifest_digest)
    payload = {
        "critical": {
            "identity": {"docker-reference": docker_reference},
            "image": {"docker-manifest-digest": manifest_digest},
            "type": SIMPLE_SIGNING_TYPE,
        },
        "optional": None,
    }
    return json.dumps(payload, separators=(",", ":")).encode()


def make_simple_signature(
    private_key: PrivateKey, docker_reference: str, manifest_digest: str
) -> tuple[bytes, str]:
    """A legacy signature layer: (payload blob, base64 value of the signature annotation)."""
    payload = simple_signing_payload(docker_reference, manifest_digest)
    return payload, base64.b64encode(sign(private_key, payload)).decode()


def verify_simple_signing(
    payload: bytes, signature_b64: str, expected_digest: str, keys: Mapping[str, PublicKey]
) -> str:
    """Check a legacy signature layer against the digest about to run; returns the verifying key's name."""
    digest_hex(expected_digest)
    _require_keys(keys)
    signature = _b64decode(signature_b64, "the signature annotation")
    name = _first_verifying_key(keys, [signature], payload)
    critical = _simple_signing_claims(payload)
    signed = critical["image"].get("docker-manifest-digest")
    if not isinstance(signed, str):
        raise SignatureError("the signed payload names no docker-manifest-digest.", "malformed")
    if signed != expected_digest:
        raise _digest_mismatch(signed, expected_digest)
    return name


def in_toto_statement(manifest_digest: str) -> bytes:
    """The in-toto statement cosign v3 signs for an image (predicate https://sigstore.dev/cosign/sign/v1)."""
    statement = {
        "_type": IN_TOTO_STATEMENT_TYPE,
        "subject": [{"digest": {"sha256": digest_hex(manifest_digest)}}],
        "predicateType": COSIGN_PREDICATE_TYPE,
        "predicate": {},
    }
    return json.dumps(statement, separators=(",", ":")).encode()


def dsse_pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding, the bytes a DSSE signature covers."""
    type_bytes = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(type_bytes), type_bytes, len(payload), payload)


def make_bundle(private_key: PrivateKey, manifest_digest: str) -> bytes:
    """A key-based sigstore v0.3 bundle signing the manifest digest, as `cosign sign` v3 writes it."""
    statement = in_toto_statement(manifest_digest)
    signature = sign(private_key, dsse_pae(IN_TOTO_PAYLOAD_TYPE, statement))
    bundle = {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {
            "publicKey": {"hint": key_id(private_key.public_key())},
            "tlogEntries": [],
        },
        "dsseEnvelope": {
            "payload": _b64encode(statement),
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "signatures": [{"sig": _b64encode(signature), "keyid": ""}],
        },
    }
    return json.dumps(bundle, separators=(",", ":")).encode()


def verify_bundle(bundle: bytes, expected_digest: str, keys: Mapping[str, PublicKey]) -> str:
    """Check a sigstore v0.3 DSSE bundle against the digest about to run; returns the verifying key's name."""
    expected_hex = digest_hex(expected_digest)
    _require_keys(keys)
    document = _bundle_document(bundle)
    envelope = _dsse_envelope(document)
    payload = _b64decode(envelope.get("payload"), "the bundle's DSSE payload")
    signatures = _dsse_signatures(envelope)
    pae = dsse_pae(IN_TOTO_PAYLOAD_TYPE, payload)
    name = _first_verifying_key(keys, signatures, pae, hint=_public_key_hint(document))
    subjects = _statement_subject_digests(payload)
    if not subjects:
        raise SignatureError("the signed statement has no sha256 subject digest.", "malformed")
    if expected_hex not in subjects:
        raise _digest_mismatch(f"sha256:{subjects[0]}", expected_digest)
    return name


def _ecdsa_matches(public_key: ec.EllipticCurvePublicKey, signature: bytes, data: bytes) -> bool:
    # cosign signs with SHA-256 whatever the curve; a P-384 signer may also have used SHA-384.
    algorithms: list[hashes.HashAlgorithm] = [hashes.SHA256()]
    if isinstance(public_key.curve, ec.SECP384R1):
        algorithms.append(hashes.SHA384())
    for algorithm in algorithms:
        try:
            public_key.verify(signature, data, ec.ECDSA(algorithm))
        except InvalidSignature:
            continue
        return True
    return False


def _require_keys(keys: Mapping[str, PublicKey]) -> None:
    if not keys:
        raise SignatureError(
            "no public key is configured to verify signatures; set OCI_PLUGINS_PUBKEY_<N> to a cosign.pub.",
            "untrusted-key",
        )


def _first_verifying_key(
    keys: Mapping[str, PublicKey], signatures: Iterable[bytes], data: bytes, hint: str | None = None
) -> str:
    for signature in signatures:
        for name, public_key in _hinted_first(keys, hint):
            if signature_matches(public_key, signature, data):
                return name
    raise SignatureError(
        "the signature does not verify: the payload was altered or it was signed by a key that is not "
        f"configured (tried keys: {', '.join(keys)}); add the signer's cosign.pub as OCI_PLUGINS_PUBKEY_<N>.",
        "untrusted-key",
    )


def _hinted_first(keys: Mapping[str, PublicKey], hint: str | None) -> list[tuple[str, PublicKey]]:
    # The bundle's hint is unauthenticated, so it only orders the keys; every key is still tried.
    return sorted(keys.items(), key=lambda item: hint is None or key_id(item[1]) != hint)


def _simple_signing_claims(payload: bytes) -> dict[str, Any]:
    try:
        critical: dict[str, Any] = json.loads(payload)["critical"]
        kind, image = critical["type"], critical["image"]
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureError("the signed payload is not cosign simple-signing JSON.", "malformed") from exc
    if kind != SIMPLE_SIGNING_TYPE:
        raise SignatureError(
            f"the signed payload has type {_shown(kind)}, not {SIMPLE_SIGNING_TYPE!r}.", "unsupported"
        )
    if not isinstance(image, dict):
        raise SignatureError("the signed payload's critical.image is not an object.", "malformed")
    return critical


def _digest_mismatch(signed: str, expected: str) -> SignatureError:
    return SignatureError(
        f"the signature is for {_shown_digest(signed)}, not the digest about to run {expected}; "
        "sign that digest or pin the plugin to the signed one.",
        "digest-mismatch",
    )


def _bundle_document(bundle: bytes) -> dict[str, Any]:
    try:
        document = json.loads(bundle)
    except (ValueError, RecursionError) as exc:
        raise SignatureError("the signature bundle is not JSON.", "malformed") from exc
    if not isinstance(document, dict):
        raise SignatureError("the signature bundle is not a JSON object.", "malformed")
    media_type = document.get("mediaType")
    if media_type not in BUNDLE_MEDIA_TYPES:
        raise SignatureError(
            f"the signature bundle has media type {_shown(media_type)}; "
            f"only sigstore bundles v0.3 ({BUNDLE_MEDIA_TYPE}) are supported.",
            "unsupported",
        )
    return document


def _dsse_envelope(document: dict[str, Any]) -> dict[str, Any]:
    envelope = document.get("dsseEnvelope")
    if envelope is None and "messageSignature" in document:
        raise SignatureError(
            "the signature bundle holds a message signature, not a DSSE envelope; "
            "sign the image with `cosign sign`, which writes an in-toto statement.",
            "unsupported",
        )
    if not isinstance(envelope, dict):
        raise SignatureError("the signature bundle has no dsseEnvelope object.", "malformed")
    if envelope.get("payloadType") != IN_TOTO_PAYLOAD_TYPE:
        raise SignatureError(
            f"the bundle's DSSE payload type is {_shown(envelope.get('payloadType'))}, "
            f"not {IN_TOTO_PAYLOAD_TYPE!r}.",
            "unsupported",
        )
    return envelope


def _dsse_signatures(envelope: dict[str, Any]) -> list[bytes]:
    entries = envelope.get("signatures")
    if not isinstance(entries, list) or not entries:
        raise SignatureError("the bundle's DSSE envelope has no signatures.", "malformed")
    if not all(isinstance(entry, dict) for entry in entries):
        raise SignatureError("the bundle's DSSE signatures are not objects.", "malformed")
    return [_b64decode(entry.get("sig"), "a DSSE signature") for entry in entries]


def _public_key_hint(document: dict[str, Any]) -> str | None:
    material = document.get("verificationMaterial")
    public_key = material.get("publicKey") if isinstance(material, dict) else None
    hint = public_key.get("hint") if isinstance(public_key, dict) else None
    return hint if isinstance(hint, str) else None


def _statement_subject_digests(payload: bytes) -> list[str]:
    try:
        statement = json.loads(payload)
        statement_type, predicate_type = statement["_type"], statement["predicateType"]
        subjects = statement["subject"]
    except (ValueError, TypeError, KeyError) as exc:
        raise SignatureError("the signed DSSE payload is not an in-toto statement.", "malformed") from exc
    if statement_type not in IN_TOTO_STATEMENT_TYPES:
        raise SignatureError(f"the signed statement has type {_shown(statement_type)}.", "unsupported")
    if predicate_type != COSIGN_PREDICATE_TYPE:
        raise SignatureError(
            f"the signed statement is an attestation of type {_shown(predicate_type)}, "
            f"not a cosign signature ({COSIGN_PREDICATE_TYPE}).",
            "unsupported",
        )
    if not isinstance(subjects, list):
        raise SignatureError("the signed statement's subject is not a list.", "malformed")
    return [digest for subject in subjects if isinstance(digest := _sha256_of(subject), str)]


def _sha256_of(subject: object) -> str | None:
    digests = subject.get("digest") if isinstance(subject, dict) else None
    value = digests.get("sha256") if isinstance(digests, dict) else None
    return value if isinstance(value, str) else None


def _b64decode(value: object, what: str) -> bytes:
    # Protobuf JSON, which sigstore bundles use, accepts both alphabets with or without padding.
    if isinstance(value, str) and _BASE64.fullmatch(value):
        unpadded = value.rstrip("=").translate(_URLSAFE_TO_STANDARD)
        try:
            return base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
        except binascii.Error:
            pass
    raise SignatureError(f"{what} is not valid base64.", "malformed")


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _shown_digest(value: str) -> str:
    return value if _DIGEST.fullmatch(value) else _shown(value)


def _shown(value: object) -> str:
    # Registry content is untrusted: quote it and keep error messages one line long.
    text = repr(value)
    return text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."
