"""The content-addressed cache of pulled plugin executables.

Layout under the cache root:
  plugins/<digest hex>[-<os>-<arch>[-<variant>]]/plugin     the executable (0755)
  plugins/<...>/meta.json                                    what it is; its mtime is the last use
  refs/<sha256 of the tag reference>.json                    the digest a tag last resolved to
  tmp/                                                       downloads in progress (same filesystem)
Entries appear by an atomic rename of a finished directory, so a reader never sees half of one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from solstice.files import write_json_atomic
from solstice.metrics import OCI_CACHE_EVICTIONS

EXECUTABLE = "plugin"
META = "meta.json"


@dataclass(frozen=True)
class Entry:
    """One cached executable and what is known about it."""

    key: str
    path: Path
    reference: str
    digest: str
    manifest_digest: str
    platform: str
    size: int
    verified_key: str
    pulled_at: float
    last_used: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly fields for `solstice oci cache ls`."""
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def entry_key(digest: str, platform: str | None) -> str:
    """The directory name of a cached executable: its digest, and the platform for an index."""
    hex_digest = digest.removeprefix("sha256:")
    return f"{hex_digest}-{platform.replace('/', '-')}" if platform else hex_digest


def _owner_alive(name: str) -> bool:
    """Whether the process named in a tmp entry (`pull-<pid>-…`, `evict-<pid>-…`) still runs."""
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class Cache:
    """Plugin executables by digest and platform, with LRU eviction under a size bound."""

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.plugins = root / "plugins"
        self.refs = root / "refs"
        self.tmp = root / "tmp"

    def prepare(self) -> None:
        """Create the directories (0700) and clear what processes that are gone left in tmp.

        Work directories carry their process's pid, so a CLI sharing the cache with a running
        server never deletes the server's download in progress.
        """
        for directory in (self.root, self.plugins, self.refs, self.tmp):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        for leftover in self.tmp.iterdir():
            if _owner_alive(leftover.name):
                continue
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)

    def workdir(self) -> Path:
        """A fresh directory for one download, on the cache's filesystem."""
        return Path(tempfile.mkdtemp(dir=self.tmp, prefix=f"pull-{os.getpid()}-"))

    def get(self, key: str) -> Entry | None:
        """A cached entry, marked as used now; None when absent or damaged."""
        directory = self.plugins / key
        try:
            if not (directory / EXECUTABLE).is_file():
                return None
            os.utime(directory / META)
            return self._entry(key, directory)
        except (OSError, ValueError, TypeError):
            return None

    def _entry(self, key: str, directory: Path) -> Entry:
        """The entry in `directory`; OSError, ValueError or TypeError when it is damaged."""
        meta = json.loads((directory / META).read_text())
        if not isinstance(meta, dict):
            raise ValueError(f"{directory / META} is not a JSON object")
        return Entry(
            key=key,
            path=directory / EXECUTABLE,
            reference=str(meta.get("reference", "")),
            digest=str(meta.get("digest", "")),
            manifest_digest=str(meta.get("manifest_digest", "")),
            platform=str(meta.get("platform", "")),
            size=int(meta.get("size", 0)),
            verified_key=str(meta.get("verified_key", "")),
            pulled_at=float(meta.get("pulled_at", 0)),
            last_used=(directory / META).stat().st_mtime,
        )

    def commit(self, key: str, workdir: Path, meta: dict[str, Any]) -> Entry:
        """Move a finished download (holding `plugin`) into place; a concurrent winner is kept."""
        meta = {**meta, "pulled_at": time.time()}
        write_json_atomic(workdir / META, meta)
        _fsync(workdir / EXECUTABLE)
        _fsync(workdir)  # the entry's names are durable before it becomes visible
        target = self.plugins / key
        try:
            os.rename(workdir, target)
        except OSError:
            if self.get(key) is None:
                # A damaged entry (its executable or meta lost) is in the way: replace it.
                self.remove(key)
                with contextlib.suppress(OSError):
                    os.rename(workdir, target)
            # Else another process committed the same content first: identical by digest, keep it.
            shutil.rmtree(workdir, ignore_errors=True)
        entry = self.get(key)
        if entry is None:
            raise OSError(f"the cache entry {target} vanished right after it was written")
        return entry

    def update_meta(self, key: str, **changes: Any) -> None:
        """Record more about an entry (e.g. the key that verified its signature)."""
        path = self.plugins / key / META
        write_json_atomic(path, {**json.loads(path.read_text()), **changes})

    def remember_tag(self, tag_ref: str, digest: str) -> None:
        """Record what a tag resolved to, for loads while the registry is unreachable."""
        write_json_atomic(
            self._ref_path(tag_ref), {"reference": tag_ref, "digest": digest, "at": time.time()}
        )

    def recall_tag(self, tag_ref: str) -> tuple[str, float] | None:
        """The digest a tag last resolved to and when, if known."""
        try:
            data = json.loads(self._ref_path(tag_ref).read_text())
            return str(data["digest"]), float(data["at"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _ref_path(self, tag_ref: str) -> Path:
        return self.refs / (hashlib.sha256(tag_ref.encode()).hexdigest() + ".json")

    def entries(self) -> list[Entry]:
        """Every complete entry, least recently used first."""
        found = []
        for directory in self.plugins.iterdir() if self.plugins.is_dir() else []:
            try:
                found.append(self._entry(directory.name, directory))
            except (OSError, ValueError, TypeError):
                continue
        return sorted(found, key=lambda e: e.last_used)

    def remove(self, key: str) -> None:
        """Delete one entry: renamed away first, so no reader sees it half-deleted."""
        source = self.plugins / key
        doomed = Path(tempfile.mkdtemp(dir=self.tmp, prefix=f"evict-{os.getpid()}-")) / key
        try:
            os.rename(source, doomed)
        except OSError:
            pass  # already gone: another process evicted it
        finally:
            shutil.rmtree(doomed.parent, ignore_errors=True)

    def evict(self, pinned: Iterable[str], max_bytes: int | None = None) -> list[Entry]:
        """Remove least recently used entries until the cache fits; pinned keys are never removed."""
        limit = self.max_bytes if max_bytes is None else max_bytes
        keep = set(pinned)
        entries = self.entries()
        total = sum(e.size for e in entries)
        removed = []
        for entry in entries:
            if total <= limit:
                break
            if entry.key in keep:
                continue
            self.remove(entry.key)
            OCI_CACHE_EVICTIONS.inc()
            total -= entry.size
            removed.append(entry)
        return removed
