"""What an edge keeps on disk: its id, and the last snapshot it applied (to serve it offline)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

from solstice.files import write_json_atomic

SNAPSHOT_FILE = "edge-snapshot.json"
ID_FILE = "edge-id"


class SnapshotStore:
    """The last applied snapshot under the data directory; it holds secrets, so it is 0600."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / SNAPSHOT_FILE

    def load(self) -> dict[str, Any] | None:
        """The persisted snapshot, or None when there is none or it is unreadable."""
        try:
            snapshot = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return snapshot if isinstance(snapshot, dict) and "version" in snapshot else None

    def save(self, snapshot: dict[str, Any]) -> None:
        """Write atomically: a crash leaves the previous snapshot, never half of one."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, snapshot)


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
