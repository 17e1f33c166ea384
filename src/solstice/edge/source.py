"""The edge's side of GET /api/v1/sync: long-poll the control plane, apply and persist snapshots."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from solstice.metrics import EDGE_CONFIG_STALE, EDGE_LAST_SYNC, EDGE_SYNC_FAILURES
from solstice.settings import Settings
from solstice.snapshot import version_of

log = structlog.get_logger("solstice.edge")

# Given the received document; the reconciler reads it as a snapshot.Snapshot.
Apply = Callable[[Mapping[str, Any]], Awaitable[None]]
BACKOFF_MAX_S = 30.0


@dataclass
class SyncStatus:
    """What /readyz says about the configuration."""

    version: str = ""
    source: str = ""  # "control-plane" or "disk"
    stale: bool = True
    last_sync: float | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return {
            "version": self.version,
            "source": self.source,
            "stale": self.stale,
            "last_sync": self.last_sync,
            "error": self.error,
        }


class ControlPlaneSource:
    """Keeps one sync request open; each new snapshot is applied, then persisted."""

    def __init__(
        self, settings: Settings, edge_id: str, apply: Apply, persist: Callable[[dict[str, Any]], None]
    ) -> None:
        self.settings = settings
        self.edge_id = edge_id
        self.apply = apply
        self.persist = persist
        self.status = SyncStatus()
        self._client = httpx.AsyncClient(
            base_url=settings.control_url.rstrip("/"),
            timeout=httpx.Timeout(settings.edge_sync_wait + 15, connect=5),
            trust_env=False,
        )

    def served_from_disk(self, snapshot: dict[str, Any]) -> None:
        """Record that a persisted snapshot is being served until the control plane answers."""
        self.status = SyncStatus(version=str(snapshot.get("version", "")), source="disk", stale=True)
        EDGE_CONFIG_STALE.set(1)

    async def run(self) -> None:
        """Sync until cancelled; failures back off (1 s doubling to 30 s) and mark the config stale."""
        delay = 1.0
        while True:
            try:
                await self.sync_once()
                delay = 1.0
            except (httpx.HTTPError, SyncRefused, ValueError) as exc:
                EDGE_SYNC_FAILURES.inc()
                self.status.stale = True
                self.status.error = str(exc) or type(exc).__name__
                EDGE_CONFIG_STALE.set(1)
                log.warning("sync with the control plane failed", error=self.status.error, retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX_S)

    async def sync_once(self) -> None:
        """One long-poll: apply and persist a new snapshot, or learn that nothing changed."""
        headers = {
            "Authorization": f"Bearer {self.settings.edge_token}",
            "X-Solstice-Edge-Id": self.edge_id,
            "X-Solstice-Edge-Name": self.settings.edge_name or platform.node(),
            "X-Solstice-Edge-Version": self.status.version,
        }
        # Only a confirmed version may skip the download: a snapshot from disk is re-fetched once.
        if self.status.version and self.status.source == "control-plane":
            headers["If-None-Match"] = f'"{self.status.version}"'
        params: dict[str, str | float] = {
            "namespace": self.settings.edge_namespace,
            "wait": self.settings.edge_sync_wait,
        }
        answer = await self._client.get("/api/v1/sync", params=params, headers=headers)
        if answer.status_code == 200:
            snapshot = answer.json()
            if not isinstance(snapshot, dict) or version_of(snapshot) != snapshot.get("version"):
                raise ValueError("the control plane sent a snapshot whose version does not match its content")
            await self.apply(snapshot)
            self.persist(snapshot)
        elif answer.status_code != 304:
            raise SyncRefused(_refusal(answer))
        else:
            snapshot = None
        now = time.time()
        version = snapshot["version"] if snapshot else self.status.version
        self.status = SyncStatus(version=version, source="control-plane", stale=False, last_sync=now)
        EDGE_CONFIG_STALE.set(0)
        EDGE_LAST_SYNC.set(now)

    async def aclose(self) -> None:
        """Close the connection to the control plane."""
        await self._client.aclose()


class SyncRefused(Exception):
    """The control plane answered, but not with a snapshot (bad token, bad namespace)."""


def _refusal(answer: httpx.Response) -> str:
    try:
        detail = answer.json().get("detail", "")
    except ValueError:
        detail = answer.text[:200]
    return f"the control plane answered {answer.status_code}: {detail}"
