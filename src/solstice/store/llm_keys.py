"""Stored LLM upstream keys brought under the keyring's current key, at migration and at every start."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import Connection

from solstice.sealing import Keyring, SecretKeyError


def reseal_llm_keys(connection: Connection, keyring: Keyring) -> list[str]:
    """Encrypt every LLM key that is plain text or under an old key with the current key.

    Returns the slugs whose key no configured key opens (left as they are). Used by the migration
    that introduced encryption and at every start, which is what completes a key rotation.
    """
    rows = connection.execute(text("SELECT id, slug, api_key FROM llms WHERE api_key != ''")).all()
    unreadable: list[str] = []
    for row_id, slug, stored in rows:
        if keyring.is_current(stored):
            continue
        try:
            plain = keyring.open(stored)
        except SecretKeyError:
            unreadable.append(slug)
            continue
        connection.execute(
            text("UPDATE llms SET api_key = :key WHERE id = :id"), {"key": keyring.seal(plain), "id": row_id}
        )
    return unreadable
