"""Opens a plugin executable so that the file checked is the file that runs.

The path is walked one name at a time through directory descriptors, following symlinks by
hand: each directory is inspected as it is used (nobody but root or this server may be able to
replace what is in it), and the executable's own descriptor is what is inspected, hashed and
executed. Nothing is looked up by path twice, so nothing can be swapped in between.
"""

from __future__ import annotations

import errno
import os
import pwd
import stat
from collections import deque
from dataclasses import dataclass
from types import TracebackType

# What Linux allows in one path resolution.
MAX_SYMLINK_HOPS = 40
_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a FIFO put where the file was must not block the host.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


class UnsafePathError(ValueError):
    """A file or directory someone other than root or this server could replace."""


@dataclass
class CheckedFile:
    """An open file reached through checked directories: `path` is where it was found."""

    fd: int
    path: str
    info: os.stat_result

    def close(self) -> None:
        """Close the descriptor (once)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> CheckedFile:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@dataclass
class _Dir:
    fd: int
    path: str
    info: os.stat_result
    # Group or others may create and rename entries here (sticky: only their own).
    shared: bool


def trusted_uids() -> frozenset[int]:
    """The owners a plugin file or directory may have: root and the user this server runs as."""
    return frozenset({0, os.geteuid()})


def describe_owner(uid: int) -> str:
    """`uid 65534 (nobody)`, or just the number for an unknown user."""
    try:
        return f"uid {uid} ({pwd.getpwuid(uid).pw_name})"
    except KeyError:
        return f"uid {uid}"


def open_checked(path: str) -> CheckedFile:
    """Open `path` (absolute) for reading, checking every directory on the way and every hop.

    Raises UnsafePathError when a directory on the way, or a symlink in a sticky directory, could
    be replaced by another user; OSError (filename set to `path`) when the walk fails.
    """
    pending: deque[str] = deque(_parts(path))
    stack: list[_Dir] = []
    hops = 0
    try:
        stack.append(_open_dir(None, "/", path))
        while pending:
            name = pending.popleft()
            here = stack[-1]
            if name == "..":
                if len(stack) > 1:
                    os.close(stack.pop().fd)
                continue
            where = _join(here.path, name)
            entry = os.stat(name, dir_fd=here.fd, follow_symlinks=False)
            if here.shared and entry.st_uid not in trusted_uids():
                raise UnsafePathError(
                    f"{where} (on the way to plugin executable {path}) is owned by "
                    f"{describe_owner(entry.st_uid)} in {here.path}, a directory others can write to, "
                    "so it could be replaced; move the plugin to a directory only root or this server "
                    "can write"
                )
            if stat.S_ISLNK(entry.st_mode):
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=here.fd)
                if target.startswith("/"):
                    for level in stack[1:]:
                        os.close(level.fd)
                    del stack[1:]
                pending.extendleft(reversed(_parts(target)))
                continue
            if stat.S_ISDIR(entry.st_mode) and pending:
                stack.append(_open_dir(here, name, path))
                continue
            if pending:
                raise OSError(errno.ENOTDIR, f"{where} is not a directory", path)
            return _open_file(here, name, where, entry)
        # The path ended at a directory (or at "/"): open it, and let the caller refuse it.
        here = stack[-1]
        return _open_file(here, ".", here.path, os.stat(".", dir_fd=here.fd))
    except OSError as exc:
        if exc.filename == path:
            raise
        raise OSError(exc.errno, exc.strerror, path) from None
    finally:
        for level in stack:
            os.close(level.fd)


def describe_os_error(path: str, exc: OSError) -> str:
    """One sentence for a failed walk to `path`, with what to do."""
    reason = exc.strerror or str(exc)
    fix = "point file:// at the executable"
    if exc.errno == errno.ELOOP:
        why = f"it is a symlink loop (or has over {MAX_SYMLINK_HOPS} symlinks)"
        return f"plugin path {path} cannot be resolved: {why}; {fix}"
    if exc.errno == errno.ENOTDIR:
        return f"plugin path {path} cannot be resolved: {reason}; {fix}"
    if exc.errno == errno.ENAMETOOLONG:
        return f"plugin path {path} cannot be resolved: a name in it is too long; {fix}"
    fix = "check the path and the permissions of its directories"
    return f"plugin path {path} cannot be opened: {reason}; {fix}"


def _parts(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def _open_dir(parent: _Dir | None, name: str, given: str) -> _Dir:
    fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd if parent else None)
    try:
        info = os.fstat(fd)
        where = _join(parent.path, name) if parent else "/"
        if info.st_uid not in trusted_uids():
            raise UnsafePathError(
                f"directory {where} (on the way to plugin executable {given}) is owned by "
                f"{describe_owner(info.st_uid)}, a user other than root and this server, who could "
                f"replace the plugin; run chown root {where} or move the plugin"
            )
        writable = bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)) and not _read_only(fd)
        if writable and not info.st_mode & stat.S_ISVTX:
            mode = stat.S_IMODE(info.st_mode)
            raise UnsafePathError(
                f"directory {where} (on the way to plugin executable {given}) is writable by group or "
                f"others without the sticky bit (mode {mode:04o}), so they could replace the plugin; "
                f"run chmod go-w {where}"
            )
        return _Dir(fd, where, info, shared=writable)
    except BaseException:
        os.close(fd)
        raise


def _open_file(here: _Dir, name: str, where: str, entry: os.stat_result) -> CheckedFile:
    fd = os.open(name, _FILE_FLAGS, dir_fd=here.fd)
    info = os.fstat(fd)
    if (info.st_dev, info.st_ino) != (entry.st_dev, entry.st_ino):
        os.close(fd)
        raise OSError(errno.EAGAIN, f"{where} was replaced while it was being checked; try again")
    return CheckedFile(fd, where, info)


def _read_only(fd: int) -> bool:
    # A read-only mount (a Kubernetes ConfigMap volume is one) cannot be written by anybody.
    try:
        return bool(os.fstatvfs(fd).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_plugin_file(checked: CheckedFile, given: str) -> None:
    """Refuse a regular file owned by another user or writable by group or others."""
    info, path = checked.info, checked.path
    if not stat.S_ISREG(info.st_mode):
        return  # not an executable at all: the launcher says so in its own words
    shown = path if path == given else f"{given} (resolved to {path})"
    if info.st_uid not in trusted_uids():
        raise UnsafePathError(
            f"plugin executable {shown} is owned by {describe_owner(info.st_uid)}, a user other than "
            f"root and this server ({describe_owner(os.geteuid())}), who could replace it; "
            f"run chown root {path}"
        )
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        mode = stat.S_IMODE(info.st_mode)
        raise UnsafePathError(
            f"plugin executable {shown} is writable by group or others (mode {mode:04o}); "
            f"run chmod go-w {path}"
        )
