"""cosign-compatible keys: the encrypted cosign.key, cosign.pub, key ids and the public-key variables."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias, TypeGuard

import nacl.exceptions
import nacl.secret
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from solstice.oci.errors import OciError

PublicKey: TypeAlias = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey

SIGSTORE_PRIVATE_KEY_LABEL = "ENCRYPTED SIGSTORE PRIVATE KEY"
# Written by cosign releases before the key format moved into sigstore; same body.
COSIGN_PRIVATE_KEY_LABEL = "ENCRYPTED COSIGN PRIVATE KEY"
PLAIN_PRIVATE_KEY_LABELS = frozenset({"PRIVATE KEY", "EC PRIVATE KEY", "RSA PRIVATE KEY"})
PUBLIC_KEY_ENV_PREFIXES = ("OCI_PLUGINS_PUBKEY_", "OCI_PLUGINS_PUBLIC_KEY_")

# What `cosign generate-key-pair` writes (go-securesystemslib defaults).
SCRYPT_N = 32768
SCRYPT_R = 8
SCRYPT_P = 1
KDF_NAME = "scrypt"
CIPHER_NAME = "nacl/secretbox"
_SALT_BYTES = 32
# Newer cosign releases write N=65536; the cap stops a crafted file from asking for gigabytes.
_SCRYPT_MAX_MEMORY = 256 * 1024 * 1024
_SUPPORTED_CURVES = frozenset({"secp256r1", "secp384r1"})
_MIN_RSA_BITS = 2048
_SUPPORTED = "ECDSA P-256 or P-384, Ed25519 or RSA of 2048 bits or more"

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_USE_COSIGN_PUB = "set it to the contents or the path of a cosign.pub file."
_WRONG_PASSWORD = (
    "cosign.key could not be decrypted: wrong password or corrupted file; "
    "check the password and that the file is the cosign.key `cosign generate-key-pair` wrote."
)


class KeyFormatError(OciError, ValueError):
    """A key could not be used; the message names its source and what to do, never the key itself."""


def generate_keypair(password: bytes) -> tuple[bytes, bytes]:
    """Make a new ECDSA P-256 key pair as cosign does: (cosign.key PEM, cosign.pub PEM)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    return encrypt_private_key(private_key, password), public_key_pem(private_key.public_key())


def encrypt_private_key(private_key: PrivateKey, password: bytes) -> bytes:
    """Encrypt a private key into the cosign.key format (`ENCRYPTED SIGSTORE PRIVATE KEY` PEM)."""
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    salt = secrets.token_bytes(_SALT_BYTES)
    nonce = secrets.token_bytes(nacl.secret.SecretBox.NONCE_SIZE)
    box = nacl.secret.SecretBox(_scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    # Key order and compact separators follow Go's json.Marshal of cosign's struct.
    document = {
        "kdf": {
            "name": KDF_NAME,
            "params": {"N": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P},
            "salt": _b64(salt),
        },
        "cipher": {"name": CIPHER_NAME, "nonce": _b64(nonce)},
        "ciphertext": _b64(box.encrypt(der, nonce).ciphertext),
    }
    body = json.dumps(document, separators=(",", ":")).encode()
    return _pem_encode(SIGSTORE_PRIVATE_KEY_LABEL, body)


def public_key_pem(public_key: PublicKey) -> bytes:
    """The cosign.pub form of a public key: a PKIX `PUBLIC KEY` PEM."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_private_key(pem: bytes, password: bytes) -> PrivateKey:
    """Read a cosign.key (either label) or an unencrypted PEM private key; the password is for cosign.key."""
    block = _first_pem_block(pem)
    if block is None:
        raise KeyFormatError(
            "cosign.key is not a PEM file; pass the cosign.key written by `cosign generate-key-pair`."
        )
    label, body = block
    if label in (SIGSTORE_PRIVATE_KEY_LABEL, COSIGN_PRIVATE_KEY_LABEL):
        key = _parse_private_der(_decrypt_cosign_body(body, password))
    elif label in PLAIN_PRIVATE_KEY_LABELS:
        key = _parse_private_pem(pem)
    else:
        raise KeyFormatError(
            f"cosign.key holds a PEM {label!r} block, not a private key; "
            "pass the cosign.key written by `cosign generate-key-pair`."
        )
    problem = _unsupported_reason(key)
    if problem is not None:
        raise KeyFormatError(f"cosign.key holds {problem}; use an {_SUPPORTED} key.")
    return key


def load_public_key(value: str, name: str) -> PublicKey:
    """Read a public key given as PEM text or as the path of a PEM file; `name` is the setting's name."""
    text = value.strip()
    if not text:
        raise KeyFormatError(f"{name} is empty; {_USE_COSIGN_PUB}")
    if text.startswith("-----BEGIN"):
        return _parse_public_pem(_unescape_newlines(text).encode(), name, "its value")
    path = Path(text).expanduser()
    return _parse_public_pem(_read_key_file(path, text, name), name, f"the file {text}")


def public_keys_from_environ(environ: Mapping[str, str]) -> dict[str, PublicKey]:
    """Every OCI_PLUGINS_PUBKEY_<N> / OCI_PLUGINS_PUBLIC_KEY_<N> key, keyed by N, numbers first."""
    found: dict[str, tuple[str, PublicKey]] = {}
    for variable in sorted(environ):
        suffix = _key_suffix(variable)
        if suffix is None:
            continue
        key = load_public_key(environ[variable], variable)
        if suffix in found:
            _check_same_key(found[suffix], (variable, key), suffix)
            continue
        found[suffix] = (variable, key)
    return {suffix: found[suffix][1] for suffix in sorted(found, key=_suffix_order)}


def key_id(public_key: PublicKey) -> str:
    """The sigstore key hint: base64 of the SHA-256 of the key's PKIX DER encoding."""
    return _b64(hashlib.sha256(_spki_der(public_key)).digest())


def _decrypt_cosign_body(body: bytes, password: bytes) -> bytes:
    sealed = _parse_sealed_key(body)
    box = nacl.secret.SecretBox(_scrypt(password, sealed.salt, sealed.n, sealed.r, sealed.p))
    try:
        return box.decrypt(sealed.ciphertext, sealed.nonce)
    except nacl.exceptions.CryptoError as exc:
        raise KeyFormatError(_WRONG_PASSWORD) from exc


@dataclass(frozen=True)
class _SealedKey:
    salt: bytes
    nonce: bytes
    ciphertext: bytes
    n: int
    r: int
    p: int


def _parse_sealed_key(body: bytes) -> _SealedKey:
    try:
        document = json.loads(body)
        kdf, cipher = document["kdf"], document["cipher"]
        names = (kdf["name"], cipher["name"])
        numbers = (kdf["params"]["N"], kdf["params"]["r"], kdf["params"]["p"])
        encoded = (kdf["salt"], cipher["nonce"], document["ciphertext"])
    except (ValueError, TypeError, KeyError) as exc:
        raise KeyFormatError(_corrupted("its body is not the JSON cosign writes")) from exc
    if names != (KDF_NAME, CIPHER_NAME):
        raise KeyFormatError(_corrupted(f"it uses {names[0]!r} with {names[1]!r}, not scrypt with secretbox"))
    n, r, p = _scrypt_params(*numbers)
    salt, nonce, ciphertext = (_decode_field(value) for value in encoded)
    if len(nonce) != nacl.secret.SecretBox.NONCE_SIZE:
        raise KeyFormatError(_corrupted("its nonce is not 24 bytes"))
    return _SealedKey(salt, nonce, ciphertext, n, r, p)


def _scrypt_params(n: object, r: object, p: object) -> tuple[int, int, int]:
    if not (_positive_int(n) and _positive_int(r) and _positive_int(p)):
        raise KeyFormatError(_corrupted("its scrypt parameters are not positive integers"))
    if n < 2 or n & (n - 1) or _scrypt_memory(n, r, p) > _SCRYPT_MAX_MEMORY:
        raise KeyFormatError(_corrupted(f"its scrypt parameters N={n} r={r} p={p} are not usable"))
    return n, r, p


def _positive_int(value: object) -> TypeGuard[int]:
    # bool is an int subclass; JSON true must not pass as 1.
    return type(value) is int and value > 0


def _decode_field(value: object) -> bytes:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except binascii.Error:
            pass
    raise KeyFormatError(_corrupted("a salt, nonce or ciphertext is not base64"))


def _scrypt(password: bytes, salt: bytes, n: int, r: int, p: int) -> bytes:
    # hashlib's default 32 MiB ceiling is just below what cosign's own parameters need.
    maxmem = _scrypt_memory(n, r, p) + 1024 * 1024
    return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=32)


def _scrypt_memory(n: int, r: int, p: int) -> int:
    return 128 * r * (n + p + 2)


def _corrupted(detail: str) -> str:
    return f"cosign.key is corrupted: {detail}; write a new one with `cosign generate-key-pair`."


def _parse_private_der(der: bytes) -> PrivateKey:
    try:
        key = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(_corrupted("the decrypted key is not a private key")) from exc
    return _as_private_key(key)


def _parse_private_pem(pem: bytes) -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(
            "cosign.key is an unreadable PEM private key; "
            "pass a cosign.key or an unencrypted PKCS#8, SEC1 or PKCS#1 key."
        ) from exc
    return _as_private_key(key)


def _as_private_key(key: object) -> PrivateKey:
    if isinstance(key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey):
        return key
    raise KeyFormatError(f"cosign.key holds a {type(key).__name__}; use an {_SUPPORTED} key.")


def _read_key_file(path: Path, shown: str, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        # A value that does not look like a path may be key text without its header: never echo it.
        if not _looks_like_path(shown):
            raise KeyFormatError(
                f"{name} is neither PEM text (-----BEGIN PUBLIC KEY-----) "
                f"nor the path of a readable file; {_USE_COSIGN_PUB}"
            ) from exc
        raise KeyFormatError(
            f"{name} names the file {shown}, which cannot be read ({reason}); {_USE_COSIGN_PUB}"
        ) from exc


def _looks_like_path(text: str) -> bool:
    # PKIX base64 starts with "M", so a leading "/", "." or "~" is never key material.
    return text.startswith(("/", ".", "~")) or text.endswith((".pub", ".pem"))


def _parse_public_pem(pem: bytes, name: str, source: str) -> PublicKey:
    block = _first_pem_block(pem)
    if block is None:
        raise KeyFormatError(f"{name}: {source} is not a PEM public key; {_USE_COSIGN_PUB}")
    label = block[0]
    if "PRIVATE" in label:
        raise KeyFormatError(
            f"{name}: {source} holds a private key; "
            "use its public half, cosign.pub, and keep cosign.key secret."
        )
    if label != "PUBLIC KEY":
        raise KeyFormatError(
            f"{name}: {source} is a PEM {label!r} block, not a PUBLIC KEY; {_USE_COSIGN_PUB}"
        )
    try:
        key = serialization.load_der_public_key(block[1])
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFormatError(f"{name}: {source} is not a readable public key; {_USE_COSIGN_PUB}") from exc
    return _as_supported_public_key(key, name, source)


def _as_supported_public_key(key: object, name: str, source: str) -> PublicKey:
    if not isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise KeyFormatError(f"{name}: {source} holds a {type(key).__name__}; use an {_SUPPORTED} key.")
    problem = _unsupported_reason(key)
    if problem is not None:
        raise KeyFormatError(f"{name}: {source} holds {problem}; use an {_SUPPORTED} key.")
    return key


def _unsupported_reason(key: PublicKey | PrivateKey) -> str | None:
    if isinstance(key, ec.EllipticCurvePublicKey | ec.EllipticCurvePrivateKey):
        return None if key.curve.name in _SUPPORTED_CURVES else f"an ECDSA key on curve {key.curve.name}"
    if isinstance(key, rsa.RSAPublicKey | rsa.RSAPrivateKey) and key.key_size < _MIN_RSA_BITS:
        return f"a {key.key_size}-bit RSA key"
    return None


def _first_pem_block(data: bytes) -> tuple[str, bytes] | None:
    # Like Go's pem.Decode, text before the first block is ignored.
    match = _PEM_BLOCK.search(data)
    if match is None:
        return None
    try:
        return match.group(1).decode(), base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except binascii.Error:
        return None


def _pem_encode(label: str, body: bytes) -> bytes:
    text = base64.b64encode(body).decode()
    lines = [text[i : i + 64] for i in range(0, len(text), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _unescape_newlines(text: str) -> str:
    # Env files and container specs often carry a PEM on one line with literal "\n" separators.
    if "\n" not in text and "\\n" in text:
        return text.replace("\\n", "\n")
    return text


def _key_suffix(variable: str) -> str | None:
    for prefix in PUBLIC_KEY_ENV_PREFIXES:
        if variable.startswith(prefix) and len(variable) > len(prefix):
            return variable[len(prefix) :]
    return None


def _check_same_key(first: tuple[str, PublicKey], second: tuple[str, PublicKey], suffix: str) -> None:
    if _spki_der(first[1]) != _spki_der(second[1]):
        raise KeyFormatError(
            f"{first[0]} and {second[0]} both define public key {suffix!r} with different keys; "
            "unset one of them or give them different names."
        )


def _suffix_order(suffix: str) -> tuple[int, int, str]:
    # Numbered keys first, in numeric order (2 before 10), then named keys alphabetically.
    if suffix.isascii() and suffix.isdigit():
        return (0, int(suffix), suffix)
    return (1, 0, suffix)


def _spki_der(public_key: PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
