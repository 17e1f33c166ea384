"""cosign.key / cosign.pub handling and the OCI_PLUGINS_PUBKEY_<N> variables, with real crypto."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import textwrap
from collections.abc import Callable
from pathlib import Path

import nacl.secret
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from solstice.oci.keys import (
    KeyFormatError,
    PrivateKey,
    PublicKey,
    encrypt_private_key,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    public_key_pem,
    public_keys_from_environ,
)

PASSWORD = b"correct horse battery staple"

# sigstore/cosign pkg/cosign/keys_test.go `pemsigstorekey` (Apache-2.0), written by cosign itself;
# its password is "hello". Pins our reader to what cosign really writes.
COSIGN_WRITTEN_KEY = b"""\
-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----
eyJrZGYiOnsibmFtZSI6InNjcnlwdCIsInBhcmFtcyI6eyJOIjozMjc2OCwiciI6
OCwicCI6MX0sInNhbHQiOiI3T3VGd2VsbWZZNXVId2NoaURSc210anNwZ2ZlZjFG
Mk5lOGFDTjVLYVpZPSJ9LCJjaXBoZXIiOnsibmFtZSI6Im5hY2wvc2VjcmV0Ym94
Iiwibm9uY2UiOiJQNHk4OGhCb3ZTa09MbXN0bFVBaGJwdDJ0K2xTNUxQSCJ9LCJj
aXBoZXJ0ZXh0IjoiMnB1QzdyZldJOWh3bnJlQ2s4aUZDRlVwQlRrSzRJNlIvbFBF
cnBDekpXUGpJWXl4eGVIL1A2VW52cFJHdVhla1NNb3JMdGhLamdoQ1JlNy82NDVH
QWtoVm1LRC92eEF0S2EvbE1abENSQ3FlekJGUFd1dzNpeFRtZ2xhb2J1ZFVSbUVs
bmNGOGlZbzBTMVl6Y1ZOMVFwY2J2c0dNcUlYRzVlbmdteGp5dCtBcXlyZTF0Q0Y0
V01tU1BlaEljNlBqd2h1Q2xHaVpJUWRvTGc9PSJ9
-----END ENCRYPTED SIGSTORE PRIVATE KEY-----
"""

KEY_MAKERS: dict[str, Callable[[], PrivateKey]] = {
    "ecdsa-p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "ecdsa-p384": lambda: ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate,
    "rsa-2048": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),
}


def pkcs8_der(private_key: PrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def pem(label: str, body: bytes) -> bytes:
    lines = textwrap.wrap(base64.b64encode(body).decode(), 64)
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def cosign_key_by_hand(der: bytes, password: bytes, *, n: int = 32768, label: str = "SIGSTORE") -> bytes:
    """A cosign.key assembled independently of the module under test."""
    salt, nonce = secrets.token_bytes(32), secrets.token_bytes(24)
    secret = hashlib.scrypt(password, salt=salt, n=n, r=8, p=1, maxmem=2**28, dklen=32)
    sealed = nacl.secret.SecretBox(secret).encrypt(der, nonce).ciphertext
    document = {
        "kdf": {
            "name": "scrypt",
            "params": {"N": n, "r": 8, "p": 1},
            "salt": base64.b64encode(salt).decode(),
        },
        "cipher": {"name": "nacl/secretbox", "nonce": base64.b64encode(nonce).decode()},
        "ciphertext": base64.b64encode(sealed).decode(),
    }
    return pem(f"ENCRYPTED {label} PRIVATE KEY", json.dumps(document).encode())


def pem_body(data: bytes) -> bytes:
    return base64.b64decode(b"".join(data.strip().splitlines()[1:-1]))


@pytest.fixture(scope="module")
def p256_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


# --- cosign.key ---------------------------------------------------------------------------------


def test_generated_key_pair_round_trips() -> None:
    private_pem, public_pem = generate_keypair(PASSWORD)

    private_key = load_private_key(private_pem, PASSWORD)

    assert isinstance(private_key, ec.EllipticCurvePrivateKey)
    assert private_key.curve.name == "secp256r1"
    assert spki_der(private_key.public_key()) == spki_der(load_public_key(public_pem.decode(), "KEY"))


def test_generated_key_file_has_the_cosign_layout() -> None:
    private_pem, public_pem = generate_keypair(PASSWORD)

    assert private_pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    document = json.loads(pem_body(private_pem))
    assert list(document) == ["kdf", "cipher", "ciphertext"]
    assert document["kdf"]["name"] == "scrypt"
    assert document["kdf"]["params"] == {"N": 32768, "r": 8, "p": 1}
    assert len(base64.b64decode(document["kdf"]["salt"], validate=True)) == 32
    assert document["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(document["cipher"]["nonce"], validate=True)) == 24


def test_generated_key_file_decrypts_by_hand_to_pkcs8() -> None:
    private_pem, public_pem = generate_keypair(PASSWORD)
    document = json.loads(pem_body(private_pem))
    salt = base64.b64decode(document["kdf"]["salt"])
    secret = hashlib.scrypt(PASSWORD, salt=salt, n=32768, r=8, p=1, maxmem=2**28, dklen=32)

    der = nacl.secret.SecretBox(secret).decrypt(
        base64.b64decode(document["ciphertext"]), base64.b64decode(document["cipher"]["nonce"])
    )

    private_key = serialization.load_der_private_key(der, password=None)
    assert spki_der(private_key.public_key()) == pem_body(public_pem)


def test_reads_a_key_file_built_independently(p256_key: ec.EllipticCurvePrivateKey) -> None:
    key_file = cosign_key_by_hand(pkcs8_der(p256_key), PASSWORD)

    loaded = load_private_key(key_file, PASSWORD)

    assert spki_der(loaded.public_key()) == spki_der(p256_key.public_key())


def test_reads_a_key_file_written_by_cosign() -> None:
    loaded = load_private_key(COSIGN_WRITTEN_KEY, b"hello")

    assert isinstance(loaded, ec.EllipticCurvePrivateKey)
    assert loaded.curve.name == "secp256r1"


def test_reads_the_older_cosign_label(p256_key: ec.EllipticCurvePrivateKey) -> None:
    key_file = cosign_key_by_hand(pkcs8_der(p256_key), PASSWORD, label="COSIGN")

    loaded = load_private_key(key_file, PASSWORD)

    assert spki_der(loaded.public_key()) == spki_der(p256_key.public_key())


def test_honours_the_scrypt_cost_written_in_the_file(p256_key: ec.EllipticCurvePrivateKey) -> None:
    # Newer cosign releases write N=65536.
    key_file = cosign_key_by_hand(pkcs8_der(p256_key), PASSWORD, n=65536)

    assert spki_der(load_private_key(key_file, PASSWORD).public_key()) == spki_der(p256_key.public_key())


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_every_supported_key_type_round_trips_through_cosign_key(kind: str) -> None:
    private_key = KEY_MAKERS[kind]()

    loaded = load_private_key(encrypt_private_key(private_key, PASSWORD), PASSWORD)

    assert spki_der(loaded.public_key()) == spki_der(private_key.public_key())


def test_wrong_password_says_so_in_one_sentence() -> None:
    private_pem, _ = generate_keypair(PASSWORD)

    with pytest.raises(KeyFormatError) as caught:
        load_private_key(private_pem, b"wrong")

    assert str(caught.value) == (
        "cosign.key could not be decrypted: wrong password or corrupted file; "
        "check the password and that the file is the cosign.key `cosign generate-key-pair` wrote."
    )


def test_tampered_ciphertext_fails_like_a_wrong_password(p256_key: ec.EllipticCurvePrivateKey) -> None:
    document = json.loads(pem_body(cosign_key_by_hand(pkcs8_der(p256_key), PASSWORD)))
    sealed = bytearray(base64.b64decode(document["ciphertext"]))
    sealed[-1] ^= 1
    document["ciphertext"] = base64.b64encode(sealed).decode()

    with pytest.raises(KeyFormatError, match="could not be decrypted"):
        load_private_key(pem("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(document).encode()), PASSWORD)


def test_refuses_scrypt_parameters_that_would_exhaust_memory() -> None:
    document = json.loads(pem_body(generate_keypair(PASSWORD)[0]))
    document["kdf"]["params"]["N"] = 2**24

    with pytest.raises(KeyFormatError, match="corrupted: its scrypt parameters N=16777216"):
        load_private_key(pem("ENCRYPTED SIGSTORE PRIVATE KEY", json.dumps(document).encode()), PASSWORD)


def test_refuses_an_encrypted_body_that_is_not_cosign_json() -> None:
    with pytest.raises(
        KeyFormatError, match=r"^cosign\.key is corrupted: its body is not the JSON cosign writes"
    ):
        load_private_key(pem("ENCRYPTED SIGSTORE PRIVATE KEY", b"not json"), PASSWORD)


@pytest.mark.parametrize(
    ("label", "private_format"),
    [
        ("PRIVATE KEY", serialization.PrivateFormat.PKCS8),
        ("EC PRIVATE KEY", serialization.PrivateFormat.TraditionalOpenSSL),
    ],
)
def test_unencrypted_pem_keys_load_and_ignore_the_password(
    p256_key: ec.EllipticCurvePrivateKey, label: str, private_format: serialization.PrivateFormat
) -> None:
    plain = p256_key.private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())
    assert plain.startswith(f"-----BEGIN {label}-----".encode())

    loaded = load_private_key(plain, b"ignored")

    assert spki_der(loaded.public_key()) == spki_der(p256_key.public_key())


def test_refuses_a_private_key_on_an_unsupported_curve() -> None:
    key_file = encrypt_private_key(ec.generate_private_key(ec.SECP521R1()), PASSWORD)

    with pytest.raises(
        KeyFormatError, match=r"^cosign\.key holds an ECDSA key on curve secp521r1; use an ECDSA"
    ):
        load_private_key(key_file, PASSWORD)


def test_refuses_text_that_is_not_pem() -> None:
    with pytest.raises(KeyFormatError, match=r"^cosign\.key is not a PEM file"):
        load_private_key(b"just some text", PASSWORD)


def test_refuses_a_public_key_given_as_the_private_key(p256_key: ec.EllipticCurvePrivateKey) -> None:
    with pytest.raises(KeyFormatError, match="holds a PEM 'PUBLIC KEY' block, not a private key"):
        load_private_key(public_key_pem(p256_key.public_key()), PASSWORD)


# --- cosign.pub -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(KEY_MAKERS))
def test_loads_every_supported_public_key_type_inline(kind: str) -> None:
    public_key = KEY_MAKERS[kind]().public_key()

    loaded = load_public_key(public_key_pem(public_key).decode(), "OCI_PLUGINS_PUBKEY_1")

    assert spki_der(loaded) == spki_der(public_key)


def test_loads_a_public_key_from_a_file(tmp_path: Path, p256_key: ec.EllipticCurvePrivateKey) -> None:
    path = tmp_path / "cosign.pub"
    path.write_bytes(public_key_pem(p256_key.public_key()))

    loaded = load_public_key(f"  {path}\n", "OCI_PLUGINS_PUBKEY_1")

    assert spki_der(loaded) == spki_der(p256_key.public_key())


def test_loads_a_one_line_pem_with_escaped_newlines(p256_key: ec.EllipticCurvePrivateKey) -> None:
    one_line = public_key_pem(p256_key.public_key()).decode().strip().replace("\n", "\\n")

    loaded = load_public_key(one_line, "OCI_PLUGINS_PUBKEY_1")

    assert spki_der(loaded) == spki_der(p256_key.public_key())


def test_missing_file_error_names_the_variable_and_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "cosign.pub"

    with pytest.raises(KeyFormatError) as caught:
        load_public_key(str(missing), "OCI_PLUGINS_PUBKEY_PROD")

    assert str(caught.value) == (
        f"OCI_PLUGINS_PUBKEY_PROD names the file {missing}, which cannot be read (No such file or directory); "
        "set it to the contents or the path of a cosign.pub file."
    )


def test_key_text_without_its_header_is_not_echoed(p256_key: ec.EllipticCurvePrivateKey) -> None:
    body = "".join(public_key_pem(p256_key.public_key()).decode().splitlines()[1:-1])

    with pytest.raises(KeyFormatError) as caught:
        load_public_key(body, "OCI_PLUGINS_PUBKEY_1")

    message = str(caught.value)
    assert message.startswith("OCI_PLUGINS_PUBKEY_1 is neither PEM text")
    assert body[:16] not in message


def test_a_private_key_in_a_public_key_variable_is_refused_without_echo(
    tmp_path: Path, p256_key: ec.EllipticCurvePrivateKey
) -> None:
    path = tmp_path / "cosign.key"
    path.write_bytes(encrypt_private_key(p256_key, PASSWORD))

    with pytest.raises(KeyFormatError) as caught:
        load_public_key(str(path), "OCI_PLUGINS_PUBKEY_1")

    message = str(caught.value)
    assert message == (
        f"OCI_PLUGINS_PUBKEY_1: the file {path} holds a private key; "
        "use its public half, cosign.pub, and keep cosign.key secret."
    )


def test_a_certificate_is_not_a_public_key() -> None:
    with pytest.raises(KeyFormatError, match="OCI_PLUGINS_PUBKEY_1: its value is a PEM 'CERTIFICATE' block"):
        load_public_key(pem("CERTIFICATE", b"\x30\x00").decode(), "OCI_PLUGINS_PUBKEY_1")


@pytest.mark.parametrize(
    ("make_key", "problem"),
    [
        (lambda: ec.generate_private_key(ec.SECP521R1()), "an ECDSA key on curve secp521r1"),
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), "a 1024-bit RSA key"),
    ],
)
def test_refuses_weak_or_unsupported_public_keys(make_key: Callable[[], PrivateKey], problem: str) -> None:
    value = public_key_pem(make_key().public_key()).decode()

    with pytest.raises(KeyFormatError) as caught:
        load_public_key(value, "OCI_PLUGINS_PUBKEY_1")

    assert str(caught.value).startswith(
        f"OCI_PLUGINS_PUBKEY_1: its value holds {problem}; use an ECDSA P-256"
    )


def test_an_empty_value_is_an_error() -> None:
    with pytest.raises(KeyFormatError, match="OCI_PLUGINS_PUBKEY_1 is empty"):
        load_public_key("  ", "OCI_PLUGINS_PUBKEY_1")


def test_key_id_is_base64_of_sha256_of_the_pkix_der(p256_key: ec.EllipticCurvePrivateKey) -> None:
    public_key = p256_key.public_key()

    expected = base64.b64encode(hashlib.sha256(spki_der(public_key)).digest()).decode()
    assert key_id(public_key) == expected


# --- environment ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def public_pems() -> list[str]:
    return [public_key_pem(ec.generate_private_key(ec.SECP256R1()).public_key()).decode() for _ in range(4)]


def test_environ_collects_both_prefixes_keyed_by_suffix_numbers_first(
    tmp_path: Path, public_pems: list[str]
) -> None:
    path = tmp_path / "prod.pub"
    path.write_text(public_pems[2])
    environ = {
        "OCI_PLUGINS_PUBKEY_10": public_pems[0],
        "OCI_PLUGINS_PUBLIC_KEY_2": public_pems[1],
        "OCI_PLUGINS_PUBKEY_PROD": str(path),
        "OCI_PLUGINS_PUBLIC_KEY_ALPHA": public_pems[3],
        "OCI_PLUGINS_PUBKEY_": public_pems[0],
        "OCI_PLUGINS_REGISTRY_PASSWORD": "not a key",
        "PATH": "/usr/bin",
    }

    keys = public_keys_from_environ(environ)

    assert list(keys) == ["2", "10", "ALPHA", "PROD"]
    assert key_id(keys["PROD"]) == key_id(load_public_key(public_pems[2], "x"))


def test_environ_accepts_the_same_key_under_both_prefixes(public_pems: list[str]) -> None:
    environ = {"OCI_PLUGINS_PUBKEY_1": public_pems[0], "OCI_PLUGINS_PUBLIC_KEY_1": public_pems[0]}

    assert list(public_keys_from_environ(environ)) == ["1"]


def test_environ_refuses_different_keys_for_one_suffix(public_pems: list[str]) -> None:
    environ = {"OCI_PLUGINS_PUBKEY_1": public_pems[0], "OCI_PLUGINS_PUBLIC_KEY_1": public_pems[1]}

    with pytest.raises(KeyFormatError) as caught:
        public_keys_from_environ(environ)

    assert str(caught.value) == (
        "OCI_PLUGINS_PUBKEY_1 and OCI_PLUGINS_PUBLIC_KEY_1 both define public key '1' with different keys; "
        "unset one of them or give them different names."
    )


def test_environ_error_names_the_variable_with_a_bad_path(tmp_path: Path) -> None:
    environ = {"OCI_PLUGINS_PUBLIC_KEY_1": str(tmp_path / "missing.pub")}

    with pytest.raises(KeyFormatError, match=r"^OCI_PLUGINS_PUBLIC_KEY_1 names the file .*missing\.pub"):
        public_keys_from_environ(environ)


def test_environ_without_key_variables_is_empty() -> None:
    assert public_keys_from_environ({"HOME": "/root"}) == {}
