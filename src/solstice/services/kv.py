"""The kv.* calls: each plugin's own key-value data, with its limits checked before the store."""

from __future__ import annotations

import base64
import binascii
import time

from solstice.host import refusal
from solstice.protocol import pb
from solstice.services.backends import KvEntry, KvFull, KvStore

MAX_KEY_BYTES = 512
DEFAULT_PAGE = 100
MAX_PAGE = 1000
# Ten years: a longer TTL is almost certainly a unit mistake (seconds for milliseconds).
MAX_TTL_MS = 10 * 366 * 24 * 3600 * 1000


class KvError(ValueError):
    """Bad input to a kv call; the message says what to send instead."""


def check_key(key: str, what: str = "key") -> None:
    """Refuse an empty, over-long or NUL-holding key."""
    size = len(key.encode())
    if what == "key" and size == 0:
        raise KvError("the key is empty; give every value a key of 1 to 512 bytes")
    if size > MAX_KEY_BYTES:
        raise KvError(f"the {what} {key[:40]!r}… is {size} bytes; keys are at most {MAX_KEY_BYTES} bytes")
    if "\x00" in key:
        raise KvError(f"the {what} {key[:40]!r} holds a NUL character, which keys may not contain")


def page_token(key: str) -> str:
    """The opaque token that continues a listing after `key`."""
    return base64.urlsafe_b64encode(key.encode()).decode()


def after_token(token: str) -> str:
    """The key a page token continues after; KvError if it is not one of ours."""
    if not token:
        return ""
    try:
        key = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
        check_key(key)  # what page_token encodes is a key: a forged one must not reach the store
    except (binascii.Error, UnicodeError, ValueError):
        raise KvError(
            f"page_token {token[:40]!r} is not one this API issued; pass next_page_token as given"
        ) from None
    return key


class KvService:
    """Answers kv_get, kv_put, kv_delete and kv_list for one runtime's store."""

    def __init__(self, store: KvStore, max_value_bytes: int, max_bytes: int) -> None:
        self.store = store
        self.max_value_bytes = max_value_bytes
        self.max_bytes = max_bytes

    async def get(self, slug: str, call: pb.KvGet) -> pb.ServiceReply:
        """The value under a key, or found false."""
        check_key(call.key)
        entry = await self.store.get(slug, call.key, _now_ms())
        if entry is None:
            return pb.ServiceReply(kv_value=pb.KvValue(found=False))
        return pb.ServiceReply(
            kv_value=pb.KvValue(found=True, value=entry.value, expires_unix_ms=entry.expires_unix_ms)
        )

    async def put(self, slug: str, call: pb.KvPut) -> pb.ServiceReply:
        """Store a value, replacing what the key held."""
        check_key(call.key)
        if len(call.value) > self.max_value_bytes:
            raise KvError(
                f"the value for key {call.key[:40]!r} is {len(call.value)} bytes; values are at most "
                f"{self.max_value_bytes} bytes (SOLSTICE_PLUGIN_KV_MAX_VALUE_BYTES)"
            )
        if not 0 <= call.ttl_ms <= MAX_TTL_MS:
            raise KvError(f"ttl_ms {call.ttl_ms} is out of range; give 0 (no expiry) up to {MAX_TTL_MS} ms")
        now = _now_ms()
        entry = KvEntry(call.key, call.value, now + call.ttl_ms if call.ttl_ms else 0)
        try:
            existed = await self.store.put(slug, entry, now, self.max_bytes)
        except KvFull as full:
            return refusal(
                "RESOURCE_EXHAUSTED",
                f"plugin {slug} stores {full.used} of its {full.limit} bytes and {call.key[:40]!r} "
                f"({entry.size} bytes) does not fit; delete keys or raise SOLSTICE_PLUGIN_KV_MAX_BYTES",
            )
        return pb.ServiceReply(kv_written=pb.KvWritten(existed=existed))

    async def delete(self, slug: str, call: pb.KvDelete) -> pb.ServiceReply:
        """Remove a key."""
        check_key(call.key)
        existed = await self.store.delete(slug, call.key, _now_ms())
        return pb.ServiceReply(kv_written=pb.KvWritten(existed=existed))

    async def list(self, slug: str, call: pb.KvList) -> pb.ServiceReply:
        """One page of keys under a prefix."""
        check_key(call.prefix, "prefix")
        if not 0 <= call.limit <= MAX_PAGE:
            raise KvError(
                f"limit {call.limit} is out of range; ask for 1 to {MAX_PAGE} keys (0: {DEFAULT_PAGE})"
            )
        limit = call.limit or DEFAULT_PAGE
        after = after_token(call.page_token)
        entries = list(await self.store.list(slug, call.prefix, after, limit + 1, _now_ms()))
        more = len(entries) > limit
        entries = entries[:limit]
        return pb.ServiceReply(
            kv_keys=pb.KvKeys(
                keys=[pb.KvKey(key=e.key, size=e.size, expires_unix_ms=e.expires_unix_ms) for e in entries],
                next_page_token=page_token(entries[-1].key) if more else "",
            )
        )


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
