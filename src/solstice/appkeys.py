"""App API keys: their visible prefix and the hash the store keeps and the gateway looks up."""

from __future__ import annotations

import hashlib

APP_KEY_PREFIX = "sk-sol-"


def hash_key(key: str) -> str:
    """SHA-256 hex of an app key (keys carry 256 random bits)."""
    return hashlib.sha256(key.encode()).hexdigest()
