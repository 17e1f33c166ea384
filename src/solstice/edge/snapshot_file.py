"""What an edge keeps on disk: its id, and the last snapshot it applied (to serve it offline).

The snapshot carries the LLMs' upstream keys in plain text (the edge sends them upstream), so
the file holds them encrypted with the edge's own key (SOLSTICE_SECRET_KEY, or the secret.key
made in its data directory), and is 0600 besides.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import structlog

from solstice.files import write_json_atomic
from solstice.sealing import Keyring, SecretKeyError

log = structlog.get_logger("solstice.edge")

SNAPSHOT_FILE = "edge-snapshot.json"
ID_FILE = "edge-id"


class SnapshotStore:
    """The last applied snapshot under the data directory: 0600, its upstream keys encrypted."""

    def __init__(self, data_dir: Path, keyring: Keyring) -> None:
        self.data_dir = data_dir
        self.path = data_dir / SNAPSHOT_FILE
        self.keyring = keyring

    def load(self) -> dict[str, Any] | None:
        """The persisted snapshot, or None when there is none or it is unreadable."""
        try:
            snapshot = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(snapshot, dict) or "version" not in snapshot:
            return None
        try:
            return _with_keys(snapshot, self.keyring.open)
        except (SecretKeyError, AttributeError, TypeError) as exc:
            # Written under another key: better wait for the control plane than serve without keys.
            log.warning(
                "the persisted snapshot cannot be decrypted; waiting for the control plane", error=str(exc)
            )
            return None

    def save(self, snapshot: dict[str, Any]) -> None:
        """Write atomically: a crash leaves the previous snapshot, never half of one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, _with_keys(snapshot, self.keyring.seal))


def _with_keys(snapshot: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    """A copy of `snapshot` whose LLM api_key values went through `change` (seal or open)."""
    llms = [{**llm, "api_key": change(llm.get("api_key") or "")} for llm in snapshot.get("llms", [])]
    return {**snapshot, "llms": llms}


def edge_id(data_dir: Path, configured: str) -> str:
    """The configured id, else one made at first start and kept in the data directory."""
    if configured:
        return configured
    path = data_dir / ID_FILE
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        made = f"edge-{uuid.uuid4().hex[:12]}"
        path.write_text(made + "\n")
        return made
