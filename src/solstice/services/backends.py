"""What the service layer needs from the runtime it runs in: approvals, key-value storage, events.

The control plane backs these with its database; an edge with what it keeps locally.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from solstice.protocol import pb


class Catalog(Protocol):
    """What the runtime serves now: its LLMs and apps, and the scopes approved per plugin."""

    def llms(self) -> Sequence[pb.LlmInfo]:
        """Every LLM, as the API shows it (no upstream key)."""
        ...

    def apps(self) -> Sequence[pb.AppInfo]:
        """Every app, as the API shows it (no keys)."""
        ...

    def approved(self, slug: str) -> frozenset[str]:
        """The scopes plugin `slug` may use now."""
        ...

    def how_to_approve(self, slug: str, scope: str) -> str:
        """The clause that tells an operator how to approve `scope` for plugin `slug`."""
        ...


class PluginGone(LookupError):
    """The calling plugin is no longer registered (deleted while it was calling)."""


@dataclass(frozen=True)
class KvEntry:
    """One stored key: its value, size (key and value) and expiry (ms since the epoch, 0: never)."""

    key: str
    value: bytes
    expires_unix_ms: int = 0

    @property
    def size(self) -> int:
        """What the entry counts against the plugin's total."""
        return len(self.key.encode()) + len(self.value)


class KvFull(Exception):
    """A put that would take a plugin past its total."""

    def __init__(self, used: int, limit: int) -> None:
        super().__init__(f"{used} of {limit} bytes used")
        self.used = used
        self.limit = limit


class KvStore(Protocol):
    """Each plugin's own key-value data; expired entries are never returned."""

    async def get(self, slug: str, key: str, now_ms: int) -> KvEntry | None:
        """The live entry under `key`, if any."""
        ...

    async def put(self, slug: str, entry: KvEntry, now_ms: int, max_bytes: int) -> bool:
        """Store `entry` (whether the key held a live value before); KvFull past `max_bytes`."""
        ...

    async def delete(self, slug: str, key: str, now_ms: int) -> bool:
        """Remove `key`; whether it held a live value."""
        ...

    async def list(self, slug: str, prefix: str, after: str, limit: int, now_ms: int) -> Sequence[KvEntry]:
        """Up to `limit` live entries whose keys start with `prefix` and sort after `after`."""
        ...


class LlmCaller(Protocol):
    """Makes a plugin's request to an LLM through the gateway (llms.call)."""

    def call(self, caller: str, call: pb.LlmCall) -> AsyncGenerator[pb.ServiceReply, None]:
        """The replies that carry the LLM's answer to plugin `caller`."""
        ...


class EventSink(Protocol):
    """Where events plugins publish go."""

    async def publish(self, slug: str, event_type: str, data: Mapping[str, Any]) -> None:
        """Record one event from plugin `slug`."""
        ...
