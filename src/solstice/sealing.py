"""Secrets at rest (LLM upstream keys): encrypted with a key from the environment or a file.

A sealed value reads `enc:v1:<key id>:<Fernet token>`. The key id (the first 8 hex digits of the
key's SHA-256) says which key opens it, so a rotated key can stay in SOLSTICE_SECRET_KEYS_OLD for
decryption while every value is sealed again with the current one (`reseal`). When no key is
configured, one is made at first start in `<data_dir>/secret.key` (0600) and its path is logged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from cryptography.fernet import Fernet, InvalidToken

from solstice.settings import Settings

log = structlog.get_logger("solstice.secrets")

PREFIX = "enc:v1:"
KEY_FILE = "secret.key"


class SecretKeyError(ValueError):
    """A configured key that cannot be used, or a sealed value no configured key opens."""


def key_id(key: bytes) -> str:
    """The id written beside each sealed value: the first 8 hex digits of the key's SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def generate_key() -> str:
    """A new random key, as SOLSTICE_SECRET_KEY takes it."""
    return Fernet.generate_key().decode()


def _fernet(value: str, source: str) -> tuple[str, Fernet]:
    raw = value.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) != 32:
            raise ValueError
        return key_id(raw), Fernet(raw)
    except (ValueError, binascii.Error):
        # The value itself is never shown: it may be a real secret put in the wrong place.
        raise SecretKeyError(
            f"{source} is not a usable key: it must be 32 bytes in URL-safe base64 (44 characters); "
            "make one with: python -c "
            "'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
        ) from None


@dataclass(frozen=True)
class Keyring:
    """The current key (seals and opens) and earlier ones (only open), by key id."""

    current_id: str
    current: Fernet = field(repr=False)
    old: dict[str, Fernet] = field(default_factory=dict, repr=False)
    source: str = ""

    @classmethod
    def from_keys(cls, current: str, old: Sequence[str] = (), source: str = "SOLSTICE_SECRET_KEY") -> Keyring:
        """A keyring from key strings; SecretKeyError names the one that is unusable."""
        current_id, fernet = _fernet(current, source)
        earlier = dict(
            _fernet(value, f"entry {number} of SOLSTICE_SECRET_KEYS_OLD")
            for number, value in enumerate(old, start=1)
        )
        earlier.pop(current_id, None)
        return cls(current_id, fernet, earlier, source)

    def seal(self, plain: str) -> str:
        """`plain` encrypted with the current key; "" stays "" (no secret)."""
        if not plain:
            return ""
        return f"{PREFIX}{self.current_id}:{self.current.encrypt(plain.encode()).decode()}"

    def open(self, stored: str) -> str:
        """The plain value of a sealed one; a value stored before encryption is returned as is."""
        if not is_sealed(stored):
            return stored
        kid, _, token = stored.removeprefix(PREFIX).partition(":")
        fernet = self.current if kid == self.current_id else self.old.get(kid)
        if fernet is None:
            raise SecretKeyError(
                f"a stored secret was encrypted with key id {kid}, which is neither SOLSTICE_SECRET_KEY "
                f"(key id {self.current_id}) nor in SOLSTICE_SECRET_KEYS_OLD; add that key to "
                "SOLSTICE_SECRET_KEYS_OLD, or set the secret again"
            )
        try:
            return fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                f"a stored secret under key id {kid} does not decrypt (it was altered); set the secret again"
            ) from None

    def is_current(self, stored: str) -> bool:
        """Whether `stored` is empty or sealed with the current key (nothing to re-encrypt)."""
        return not stored or stored.startswith(f"{PREFIX}{self.current_id}:")


def is_sealed(stored: str) -> bool:
    """Whether a stored value is encrypted (as opposed to plain text from before encryption)."""
    return stored.startswith(PREFIX)


def load_keyring(settings: Settings) -> Keyring:
    """The keyring the settings describe; makes <data_dir>/secret.key when no key is configured."""
    old = [value for value in settings.secret_keys_old.split(",") if value.strip()]
    if settings.secret_key:
        return Keyring.from_keys(settings.secret_key, old, "SOLSTICE_SECRET_KEY")
    if settings.secret_key_file is not None:
        path = settings.secret_key_file
        try:
            value = path.read_text()
        except OSError as exc:
            raise SecretKeyError(
                f"cannot read SOLSTICE_SECRET_KEY_FILE {path}: {exc.strerror or exc}; "
                "fix the path or unset it"
            ) from None
        return Keyring.from_keys(value, old, f"SOLSTICE_SECRET_KEY_FILE {path}")
    path = settings.data_dir / KEY_FILE
    return Keyring.from_keys(_read_or_make(path), old, str(path))


def _read_or_make(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = generate_key()
    try:
        # O_EXCL: two servers starting on one data directory agree on the first key written.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text()
    with os.fdopen(fd, "w") as out:
        out.write(key + "\n")
        out.flush()
        os.fsync(out.fileno())
    log.warning(
        "no SOLSTICE_SECRET_KEY is set, so a key that encrypts stored secrets was made; back it up, "
        "and give every server sharing this database the same key",
        path=str(path),
    )
    return key


def keyring_of(session: Any) -> Keyring:
    """The keyring a session was made with (see store.database.session_factory)."""
    keyring = session.info.get("keyring")
    if not isinstance(keyring, Keyring):
        raise RuntimeError("this database session has no keyring; make sessions with session_factory()")
    return keyring


def check_configured_keys(settings: Settings) -> None:
    """SecretKeyError when a configured key (current or old) is unusable; makes no file."""
    if settings.secret_key or settings.secret_key_file is not None:
        load_keyring(settings)
        return
    old = [value for value in settings.secret_keys_old.split(",") if value.strip()]
    Keyring.from_keys(generate_key(), old)
