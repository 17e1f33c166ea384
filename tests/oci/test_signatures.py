"""cosign signature formats: legacy simple signing and sigstore v0.3 DSSE bundles, with real crypto."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from solstice.oci.keys import PrivateKey, key_id
from solstice.oci.signatures import (
    BUNDLE_MEDIA_TYPE,
    SignatureError,
    digest_hex,
    dsse_pae,
    in_toto_statement,
    make_bundle,
    make_simple_signature,
    referrers_fallback_tag,
    sign,
    signature_tag,
    simple_signing_payload,
    verify_bundle,
    verify_simple_signing,
)

DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
REFERENCE = "127.0.0.1:5000/plugins/echo"
IN_TOTO = "application/vnd.in-toto+json"

KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}
# Generated once: hypothesis examples must not depend on function-scoped fixtures.
ED25519_KEY = ed25519.Ed25519PrivateKey.generate()


@pytest.fixture(scope="module", params=sorted(KEY_MAKERS))
def signer(request: pytest.FixtureRequest) -> PrivateKey:
    return KEY_MAKERS[request.param]()


@pytest.fixture(scope="module")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def stranger() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def statement_for(
    digest_hex_value: str, predicate_type: str = "https://sigstore.dev/cosign/sign/v1"
) -> bytes:
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": REFERENCE, "digest": {"sha256": digest_hex_value}}],
        "predicateType": predicate_type,
        "predicate": {},
    }
    return json.dumps(statement).encode()


def bundle_by_hand(private_key: PrivateKey, statement: bytes, payload_type: str = IN_TOTO) -> dict[str, Any]:
    """A key-based bundle assembled independently of `make_bundle`, to be edited by tests."""
    pae = b"DSSEv1 %d %s %d %s" % (len(payload_type), payload_type.encode(), len(statement), statement)
    return {
        "mediaType": BUNDLE_MEDIA_TYPE,
        "verificationMaterial": {"publicKey": {"hint": key_id(private_key.public_key())}},
        "dsseEnvelope": {
            "payload": base64.b64encode(statement).decode(),
            "payloadType": payload_type,
            "signatures": [{"sig": base64.b64encode(sign(private_key, pae)).decode(), "keyid": ""}],
        },
    }


def encode(bundle: dict[str, Any]) -> bytes:
    return json.dumps(bundle).encode()


def refusal(call: Callable[[], object]) -> SignatureError:
    with pytest.raises(SignatureError) as caught:
        call()
    return caught.value


# --- digests and tags -----------------------------------------------------------------------------


def test_tags_follow_cosign_naming() -> None:
    assert signature_tag(DIGEST) == "sha256-" + "ab" * 32 + ".sig"
    assert referrers_fallback_tag(DIGEST) == "sha256-" + "ab" * 32


@pytest.mark.parametrize(
    "bad", ["", "sha256:" + "AB" * 32, "sha256:" + "ab" * 31, "sha512:" + "ab" * 64, "ab" * 32, DIGEST + "\n"]
)
def test_malformed_digests_are_refused_with_the_value(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid manifest digest .*expected sha256: followed by 64"):
        digest_hex(bad)


# --- legacy simple signing ------------------------------------------------------------------------


def test_simple_signing_payload_is_byte_for_byte_what_cosign_signs() -> None:
    assert simple_signing_payload(REFERENCE, DIGEST) == (
        b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/plugins/echo"},'
        b'"image":{"docker-manifest-digest":"' + DIGEST.encode() + b'"},'
        b'"type":"cosign container image signature"},"optional":null}'
    )


def test_ecdsa_signatures_are_der_encoded(p256_key: ec.EllipticCurvePrivateKey) -> None:
    _, signature_b64 = make_simple_signature(p256_key, REFERENCE, DIGEST)

    r, s = decode_dss_signature(base64.b64decode(signature_b64, validate=True))

    assert r > 0 and s > 0


def test_simple_signature_verifies_with_each_key_type(signer: PrivateKey) -> None:
    payload, signature_b64 = make_simple_signature(signer, REFERENCE, DIGEST)

    assert verify_simple_signing(payload, signature_b64, DIGEST, {"1": signer.public_key()}) == "1"


def test_simple_signature_names_the_key_that_verified(
    p256_key: ec.EllipticCurvePrivateKey, stranger: ec.EllipticCurvePrivateKey
) -> None:
    payload, signature_b64 = make_simple_signature(p256_key, REFERENCE, DIGEST)
    keys = {"1": stranger.public_key(), "PROD": p256_key.public_key()}

    assert verify_simple_signing(payload, signature_b64, DIGEST, keys) == "PROD"


def test_docker_reference_is_not_checked(p256_key: ec.EllipticCurvePrivateKey) -> None:
    payload, signature_b64 = make_simple_signature(p256_key, "elsewhere.example/mirror", DIGEST)

    assert verify_simple_signing(payload, signature_b64, DIGEST, {"1": p256_key.public_key()}) == "1"


def test_p384_signature_made_with_sha384_is_accepted() -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    payload = simple_signing_payload(REFERENCE, DIGEST)
    signature = key.sign(payload, ec.ECDSA(hashes.SHA384()))

    name = verify_simple_signing(
        payload, base64.b64encode(signature).decode(), DIGEST, {"1": key.public_key()}
    )

    assert name == "1"


def test_tampered_payload_is_refused(p256_key: ec.EllipticCurvePrivateKey) -> None:
    payload, signature_b64 = make_simple_signature(p256_key, REFERENCE, DIGEST)
    tampered = payload.replace(DIGEST.encode(), OTHER_DIGEST.encode())

    error = refusal(
        lambda: verify_simple_signing(tampered, signature_b64, OTHER_DIGEST, {"1": p256_key.public_key()})
    )

    assert error.reason == "untrusted-key"


def test_signature_by_another_key_names_the_configured_keys(
    p256_key: ec.EllipticCurvePrivateKey, stranger: ec.EllipticCurvePrivateKey
) -> None:
    payload, signature_b64 = make_simple_signature(stranger, REFERENCE, DIGEST)
    keys = {"1": p256_key.public_key(), "PROD": p256_key.public_key()}

    error = refusal(lambda: verify_simple_signing(payload, signature_b64, DIGEST, keys))

    assert error.reason == "untrusted-key"
    assert str(error) == (
        "the signature does not verify: the payload was altered or it was signed by a key that is not "
        "configured (tried keys: 1, PROD); add the signer's cosign.pub as OCI_PLUGINS_PUBKEY_<N>."
    )


def test_signature_for_another_digest_is_refused(p256_key: ec.EllipticCurvePrivateKey) -> None:
    payload, signature_b64 = make_simple_signature(p256_key, REFERENCE, OTHER_DIGEST)

    error = refusal(
        lambda: verify_simple_signing(payload, signature_b64, DIGEST, {"1": p256_key.public_key()})
    )

    assert error.reason == "digest-mismatch"
    assert str(error).startswith(
        f"the signature is for {OTHER_DIGEST}, not the digest about to run {DIGEST}; "
    )


@pytest.mark.parametrize("bad", ["not base64!", "abcde", "ab=c"])
def test_signature_annotation_that_is_not_base64_is_malformed(
    p256_key: ec.EllipticCurvePrivateKey, bad: str
) -> None:
    payload = simple_signing_payload(REFERENCE, DIGEST)

    error = refusal(lambda: verify_simple_signing(payload, bad, DIGEST, {"1": p256_key.public_key()}))

    assert (error.reason, str(error)) == ("malformed", "the signature annotation is not valid base64.")


@pytest.mark.parametrize("payload", [b"not json", b"[]", b'{"critical":{"type":"x"}}', b'{"critical":{}}'])
def test_signed_payload_that_is_not_simple_signing_is_malformed(
    p256_key: ec.EllipticCurvePrivateKey, payload: bytes
) -> None:
    signature_b64 = base64.b64encode(sign(p256_key, payload)).decode()

    error = refusal(
        lambda: verify_simple_signing(payload, signature_b64, DIGEST, {"1": p256_key.public_key()})
    )

    assert error.reason == "malformed"


def test_signed_payload_of_another_type_is_unsupported(p256_key: ec.EllipticCurvePrivateKey) -> None:
    payload = simple_signing_payload(REFERENCE, DIGEST).replace(
        b"cosign container image signature", b"atomic"
    )
    signature_b64 = base64.b64encode(sign(p256_key, payload)).decode()

    error = refusal(
        lambda: verify_simple_signing(payload, signature_b64, DIGEST, {"1": p256_key.public_key()})
    )

    assert (error.reason, str(error)) == (
        "unsupported",
        "the signed payload has type 'atomic', not 'cosign container image signature'.",
    )


def test_verifying_without_keys_says_how_to_configure_one(p256_key: ec.EllipticCurvePrivateKey) -> None:
    payload, signature_b64 = make_simple_signature(p256_key, REFERENCE, DIGEST)

    error = refusal(lambda: verify_simple_signing(payload, signature_b64, DIGEST, {}))

    assert str(error).startswith(
        "no public key is configured to verify signatures; set OCI_PLUGINS_PUBKEY_<N>"
    )


# --- sigstore bundle v0.3 -------------------------------------------------------------------------


def test_dsse_pae_matches_the_dsse_specification_example() -> None:
    assert dsse_pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


def test_statement_is_what_cosign_v3_signs() -> None:
    assert in_toto_statement(DIGEST) == (
        b'{"_type":"https://in-toto.io/Statement/v1","subject":[{"digest":{"sha256":"' + b"ab" * 32 + b'"}}],'
        b'"predicateType":"https://sigstore.dev/cosign/sign/v1","predicate":{}}'
    )


def test_bundle_has_the_sigstore_layout(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = json.loads(make_bundle(p256_key, DIGEST))

    assert bundle["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert bundle["verificationMaterial"] == {
        "publicKey": {"hint": key_id(p256_key.public_key())},
        "tlogEntries": [],
    }
    envelope = bundle["dsseEnvelope"]
    assert envelope["payloadType"] == IN_TOTO
    assert base64.b64decode(envelope["payload"], validate=True) == in_toto_statement(DIGEST)
    assert [entry["keyid"] for entry in envelope["signatures"]] == [""]


def test_bundle_signature_covers_the_pae_of_the_statement(p256_key: ec.EllipticCurvePrivateKey) -> None:
    envelope = json.loads(make_bundle(p256_key, DIGEST))["dsseEnvelope"]
    statement = in_toto_statement(DIGEST)
    pae = b"DSSEv1 28 application/vnd.in-toto+json %d %s" % (len(statement), statement)

    signature = base64.b64decode(envelope["signatures"][0]["sig"])

    p256_key.public_key().verify(signature, pae, ec.ECDSA(hashes.SHA256()))


def test_bundle_verifies_with_each_key_type(signer: PrivateKey) -> None:
    assert verify_bundle(make_bundle(signer, DIGEST), DIGEST, {"1": signer.public_key()}) == "1"


def test_bundle_built_independently_verifies(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))

    assert verify_bundle(encode(bundle), DIGEST, {"PROD": p256_key.public_key()}) == "PROD"


def test_bundle_hint_only_orders_the_keys(
    p256_key: ec.EllipticCurvePrivateKey, stranger: ec.EllipticCurvePrivateKey
) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))
    bundle["verificationMaterial"]["publicKey"]["hint"] = key_id(stranger.public_key())
    keys = {"1": stranger.public_key(), "2": p256_key.public_key()}

    assert verify_bundle(encode(bundle), DIGEST, keys) == "2"


def test_bundle_with_unpadded_url_safe_base64_verifies(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))
    envelope = bundle["dsseEnvelope"]
    payload = base64.b64decode(envelope["payload"])
    envelope["payload"] = base64.urlsafe_b64encode(payload).decode().rstrip("=")

    assert verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}) == "1"


def test_bundle_media_type_with_version_parameter_is_accepted(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))
    bundle["mediaType"] = "application/vnd.dev.sigstore.bundle+json;version=0.3"

    assert verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}) == "1"


def test_bundle_with_a_swapped_statement_is_refused(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(OTHER_DIGEST)))
    bundle["dsseEnvelope"]["payload"] = base64.b64encode(statement_for(digest_hex(DIGEST))).decode()

    error = refusal(lambda: verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == "untrusted-key"


def test_bundle_signed_by_another_key_is_refused(
    p256_key: ec.EllipticCurvePrivateKey, stranger: ec.EllipticCurvePrivateKey
) -> None:
    error = refusal(
        lambda: verify_bundle(make_bundle(stranger, DIGEST), DIGEST, {"1": p256_key.public_key()})
    )

    assert error.reason == "untrusted-key"
    assert "signed by a key that is not configured (tried keys: 1)" in str(error)


def test_bundle_for_another_digest_is_refused(p256_key: ec.EllipticCurvePrivateKey) -> None:
    error = refusal(
        lambda: verify_bundle(make_bundle(p256_key, OTHER_DIGEST), DIGEST, {"1": p256_key.public_key()})
    )

    assert error.reason == "digest-mismatch"
    assert str(error).startswith(
        f"the signature is for {OTHER_DIGEST}, not the digest about to run {DIGEST}; "
    )


def test_bundle_with_a_subject_among_several_verifies(p256_key: ec.EllipticCurvePrivateKey) -> None:
    statement = json.loads(statement_for(digest_hex(OTHER_DIGEST)))
    statement["subject"].append({"digest": {"sha256": digest_hex(DIGEST), "sha512": "00"}})
    bundle = bundle_by_hand(p256_key, json.dumps(statement).encode())

    assert verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}) == "1"


def test_signed_attestation_is_not_a_signature(p256_key: ec.EllipticCurvePrivateKey) -> None:
    statement = statement_for(digest_hex(DIGEST), predicate_type="https://slsa.dev/provenance/v1")
    bundle = bundle_by_hand(p256_key, statement)

    error = refusal(lambda: verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == "unsupported"
    assert "attestation of type 'https://slsa.dev/provenance/v1'" in str(error)


def test_message_signature_bundles_are_unsupported(p256_key: ec.EllipticCurvePrivateKey) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))
    del bundle["dsseEnvelope"]
    bundle["messageSignature"] = {"messageDigest": {"algorithm": "SHA2_256", "digest": ""}, "signature": ""}

    error = refusal(lambda: verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == "unsupported"
    assert str(error).startswith("the signature bundle holds a message signature, not a DSSE envelope; ")


@pytest.mark.parametrize(
    ("edit", "reason", "message"),
    [
        (
            lambda b: b.update(mediaType="application/vnd.dev.sigstore.bundle.v0.1+json"),
            "unsupported",
            "media type",
        ),
        (lambda b: b["dsseEnvelope"].update(payloadType="text/plain"), "unsupported", "payload type"),
        (lambda b: b["dsseEnvelope"].update(payload="%%%"), "malformed", "payload is not valid base64"),
        (lambda b: b["dsseEnvelope"].update(signatures=[]), "malformed", "has no signatures"),
        (
            lambda b: b["dsseEnvelope"].update(signatures=[{"sig": "@"}]),
            "malformed",
            "signature is not valid",
        ),
        (lambda b: b.pop("dsseEnvelope"), "malformed", "no dsseEnvelope"),
    ],
)
def test_malformed_bundles_are_refused_with_a_reason(
    p256_key: ec.EllipticCurvePrivateKey, edit: Callable[[dict[str, Any]], object], reason: str, message: str
) -> None:
    bundle = bundle_by_hand(p256_key, statement_for(digest_hex(DIGEST)))
    edit(bundle)

    error = refusal(lambda: verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == reason
    assert message in str(error)


@pytest.mark.parametrize("raw", [b"not json", b"[]", b"\xff", b"[" * 100_000])
def test_bundle_that_is_not_a_json_object_is_malformed(
    p256_key: ec.EllipticCurvePrivateKey, raw: bytes
) -> None:
    error = refusal(lambda: verify_bundle(raw, DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == "malformed"


@pytest.mark.parametrize("statement", [b"not json", b'{"_type":"https://in-toto.io/Statement/v1"}'])
def test_signed_payload_that_is_not_a_statement_is_malformed(
    p256_key: ec.EllipticCurvePrivateKey, statement: bytes
) -> None:
    bundle = bundle_by_hand(p256_key, statement)

    error = refusal(lambda: verify_bundle(encode(bundle), DIGEST, {"1": p256_key.public_key()}))

    assert error.reason == "malformed"


# --- properties -----------------------------------------------------------------------------------


def split_pae(encoded: bytes) -> tuple[bytes, bytes]:
    """Read a PAE back using only its length prefixes."""
    prefix = b"DSSEv1 "
    assert encoded.startswith(prefix)
    rest = encoded[len(prefix) :]
    parts: list[bytes] = []
    for _ in range(2):
        length_text, rest = rest.split(b" ", 1)
        length = int(length_text)
        parts.append(rest[:length])
        rest = rest[length + 1 :] if len(parts) == 1 else rest[length:]
    assert rest == b""
    return parts[0], parts[1]


@given(payload_type=st.text(), payload=st.binary())
def test_pae_length_prefixes_recover_type_and_payload(payload_type: str, payload: bytes) -> None:
    assert split_pae(dsse_pae(payload_type, payload)) == (payload_type.encode(), payload)


@settings(max_examples=30, deadline=None)
@given(raw_digest=st.binary(min_size=32, max_size=32))
def test_any_digest_round_trips_through_both_formats(raw_digest: bytes) -> None:
    digest = "sha256:" + raw_digest.hex()
    keys = {"1": ED25519_KEY.public_key()}
    payload, signature_b64 = make_simple_signature(ED25519_KEY, REFERENCE, digest)

    assert verify_simple_signing(payload, signature_b64, digest, keys) == "1"
    assert verify_bundle(make_bundle(ED25519_KEY, digest), digest, keys) == "1"
    assert signature_tag(digest) == f"sha256-{raw_digest.hex()}.sig"
