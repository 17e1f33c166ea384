"""Keeps every process a plugin starts findable, so none outlives its host for good.

Each plugin process runs in its own cgroup (v2) below this host's: whatever it starts, even in a
new session, stays in it, and the whole cgroup is killed when the plugin stops. Every plugin
process also carries its host's id in its environment. A host killed with SIGKILL can clean up
nothing, so the next host on the machine sweeps what dead hosts left: their cgroups, and any
process whose environment names a dead host. Without a writable cgroup v2 hierarchy only the
process group and the environment mark are left (one warning says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import signal
from pathlib import Path

import structlog

log = structlog.get_logger("solstice.host")

# Set in every plugin process's environment: the host that started it.
HOST_ID_ENV = "SOLSTICE_PLUGIN_HOST_ID"
_BASE_NAME = "solstice-plugins"
_HOST_PREFIX = "host-"
_SHELL = "/bin/sh"
# Moves the shell into the plugin's cgroup, then runs the plugin in its place (same pid), so the
# plugin is in the cgroup before it runs any code. The directory is an argument, never code;
# PWD is the one variable the shell would add to the plugin's environment.
_ENTER_SCRIPT = 'echo $$ > "$0/cgroup.procs" && unset PWD && exec "$@"'
_counter = itertools.count(1)


def _start_time(pid: int) -> str | None:
    """The start time of `pid` (clock ticks after boot), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


@functools.cache
def host_id() -> str:
    """This process's id as a plugin host: `pid-starttime`."""
    return f"{os.getpid()}-{_start_time(os.getpid()) or 0}"


def _host_alive(identity: str) -> bool:
    pid, _, started = identity.partition("-")
    return pid.isdigit() and _start_time(int(pid)) == started


def _cgroup2_mount() -> str | None:
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            fields = line.split()
            if fields[fields.index("-") + 1] == "cgroup2":
                return fields[4]
    return None


def _own_cgroup() -> str:
    with open("/proc/self/cgroup") as fh:
        for line in fh:
            if line.startswith("0::"):
                return line[3:].strip()
    return "/"


@functools.cache
def _base(enabled: bool = True) -> Path | None:
    """The directory holding every host's plugin cgroups, or None (warned once) without one."""
    if not enabled:
        log.warning(
            "SOLSTICE_PLUGIN_CGROUPS=false: processes plugins start are cleaned up by process "
            "group and environment mark only, and one that leaves both can outlive them"
        )
        return None
    try:
        mount = _cgroup2_mount()
        if mount is None:
            raise OSError("no cgroup2 file system is mounted")
        base = Path(mount + _own_cgroup().rstrip("/")) / _BASE_NAME
        base.mkdir(exist_ok=True)
        (base / f"{_HOST_PREFIX}{host_id()}").mkdir(exist_ok=True)
        return base
    except OSError as exc:
        reason = exc.strerror or str(exc)
        log.warning(
            "cgroup v2 is not available for plugins; processes they start are cleaned up by "
            "process group and environment mark only, and one that leaves both can outlive them",
            reason=reason,
        )
        return None


def _kill_cgroup(path: Path) -> None:
    """SIGKILL every process in a cgroup and its children."""
    try:
        (path / "cgroup.kill").write_text("1")
        return
    except FileNotFoundError:
        pass  # before Linux 5.14: one process at a time
    except OSError:
        return
    for procs in path.rglob("cgroup.procs"):
        with contextlib.suppress(OSError):
            for pid in procs.read_text().split():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid), signal.SIGKILL)


def _remove_cgroup(path: Path) -> bool:
    """rmdir a cgroup and its children, deepest first; False while processes remain."""
    for child in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            child.rmdir()
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def _marked_pids() -> list[tuple[int, str]]:
    """(pid, host id) of every process whose environment carries a plugin host's mark."""
    mark = f"{HOST_ID_ENV}=".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                environ = fh.read()
        except OSError:
            continue
        for item in environ.split(b"\0"):
            if item.startswith(mark):
                found.append((int(entry), item[len(mark) :].decode(errors="replace")))
                break
    return found


@functools.cache
def sweep_dead_hosts(cgroups: bool = True) -> None:
    """Kill what plugins of dead hosts left behind (once per process, at the first host)."""
    base = _base(cgroups)
    if base is not None:
        with contextlib.suppress(OSError):
            for entry in base.iterdir():
                identity = entry.name.removeprefix(_HOST_PREFIX)
                if entry.name.startswith(_HOST_PREFIX) and entry.is_dir() and not _host_alive(identity):
                    _kill_cgroup(entry)
                    _remove_cgroup(entry)
    killed = 0
    for pid, identity in _marked_pids():
        if pid != os.getpid() and not _host_alive(identity):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    if killed:
        log.warning("killed processes left by plugins of a host that is gone", count=killed)


class Containment:
    """Where one plugin process runs: its cgroup (when available), created before it starts."""

    def __init__(self, cgroups: bool = True) -> None:
        base = _base(cgroups)
        self.cgroup: Path | None = None
        if base is not None:
            path = base / f"{_HOST_PREFIX}{host_id()}" / f"plugin-{next(_counter)}"
            try:
                path.mkdir()
                self.cgroup = path
            except OSError as exc:
                log.warning("plugin cgroup not created", path=str(path), reason=exc.strerror or str(exc))

    def prefix(self) -> tuple[str, ...]:
        """What to run before the plugin's command so that it starts inside its cgroup."""
        if self.cgroup is None or not os.path.exists(_SHELL):
            return ()
        return (_SHELL, "-c", _ENTER_SCRIPT, str(self.cgroup))

    async def release(self) -> None:
        """Kill everything still in the plugin's cgroup, then remove the cgroup."""
        if self.cgroup is None:
            return
        path, self.cgroup = self.cgroup, None
        _kill_cgroup(path)
        for _ in range(50):  # the kernel empties a killed cgroup within moments
            if _remove_cgroup(path):
                return
            await asyncio.sleep(0.02)
        log.warning("plugin cgroup still busy after kill; a later sweep removes it", path=str(path))
