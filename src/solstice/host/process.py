"""Starts a local plugin executable and performs the go-plugin handshake with it."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import shutil
import signal
import stat
import tempfile
import time
from collections.abc import Mapping

import grpc
import structlog

from solstice.host.containment import HOST_ID_ENV, Containment, host_id, sweep_dead_hosts
from solstice.host.errors import (
    HandshakeTimeoutError,
    PluginExitedError,
    PluginNotFoundError,
    PluginPermissionError,
    PluginStartError,
    ProtocolMismatchError,
    exited_text,
)
from solstice.host.output import PluginOutput
from solstice.protocol import gp, gp_grpc
from solstice.protocol.handshake import (
    APP_PROTOCOL_VERSION,
    ENV_MAX_PORT,
    ENV_MIN_PORT,
    ENV_PROTOCOL_VERSIONS,
    ENV_UNIX_SOCKET_DIR,
    MAGIC_COOKIE_KEY,
    MAGIC_COOKIE_VALUE,
    HandshakeError,
    HandshakeLine,
)
from solstice.security.paths import (
    CheckedFile,
    UnsafePathError,
    check_plugin_file,
    describe_os_error,
    open_checked,
)

log = structlog.get_logger("solstice.host")

_READ_SIZE = 64 * 1024
_HANDSHAKE_LIMIT = 128 * 1024
# Ports go-plugin's TCP listener may use; only plugins on Windows listen on TCP.
_PORT_RANGE = (10000, 25000)
# A unix socket path may hold 107 bytes; keep the private directory's base short.
_MAX_SOCKET_BASE = 48


@functools.cache
def _death_signal_prefix() -> tuple[str, ...]:
    # The kernel's parent-death signal makes a plugin die with the host, even when the host
    # is SIGKILLed. It is set through util-linux's setpriv rather than a preexec_fn: running
    # Python between fork and exec in a process with gRPC threads can crash the child.
    setpriv = shutil.which("setpriv", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if setpriv is None:
        log.warning("setpriv (util-linux) not found; plugins may outlive a host killed with SIGKILL")
        return ()
    return (setpriv, "--pdeathsig", "KILL", "--")


_SOCKET_DIR_PREFIX = "solstice-plugin-"


@functools.cache
def _sweep_stale_socket_dirs() -> None:
    # A host killed with SIGKILL cannot remove its plugins' socket directories; the next host
    # on this machine removes those whose host (the pid in the name) is gone.
    base = _socket_base()
    try:
        names = os.listdir(base)
    except OSError:
        return
    for name in names:
        owner = name.removeprefix(_SOCKET_DIR_PREFIX).split("-", 1)[0]
        if not name.startswith(_SOCKET_DIR_PREFIX) or not owner.isdigit():
            continue
        try:
            os.kill(int(owner), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(base, name), ignore_errors=True)
        except PermissionError:
            continue  # alive, someone else's


def _socket_base() -> str:
    base = tempfile.gettempdir()
    return base if len(base) <= _MAX_SOCKET_BASE else "/tmp"


def open_executable(path: str) -> CheckedFile:
    """Open a plugin executable through checked directories, or raise a start error a user can
    act on; the open file is what gets hashed and executed."""
    try:
        checked = open_checked(path)
    except FileNotFoundError:
        raise PluginNotFoundError(
            f"plugin executable {path} does not exist; check the absolute path in the file:// command"
        ) from None
    except PermissionError:
        raise PluginPermissionError(
            f"Permission denied: cannot read {path}; check the permissions of its directories"
        ) from None
    except UnsafePathError as exc:
        raise PluginStartError(f"refused by the security policy: {exc}") from None
    except OSError as exc:
        raise PluginNotFoundError(describe_os_error(path, exc)) from None
    try:
        if not stat.S_ISREG(checked.info.st_mode):
            raise PluginNotFoundError(
                f"plugin path {path} is not a regular file; point file:// at the executable"
            )
        try:
            check_plugin_file(checked, path)
        except UnsafePathError as exc:
            raise PluginStartError(f"refused by the security policy: {exc}") from None
        if not _executable(checked.info):
            raise PluginPermissionError(f"Permission denied: {path} is not executable; run chmod +x {path}")
    except BaseException:
        checked.close()
        raise
    return checked


def _executable(info: os.stat_result) -> bool:
    """Whether this process may execute a file with `info` (what access(X_OK) answers)."""
    uid = os.geteuid()
    if uid == 0:
        return bool(info.st_mode & (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == os.getegid() or info.st_gid in os.getgroups():
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def _exec_path(executable: CheckedFile, private_dir: str) -> str:
    """A path the child can execute that is the open file itself.

    /proc/self/fd/N resolves, in the child, to the descriptor it inherited: the very file that
    was checked. A symlink to it, named after the real path inside the plugin's private
    directory, keeps the real path visible in `ps` and makes a script's interpreter put the
    script's real directory first on its import path.
    """
    through_fd = f"/proc/self/fd/{executable.fd}"
    mirror = os.path.join(private_dir, "exec", executable.path.lstrip("/"))
    try:
        os.makedirs(os.path.dirname(mirror), mode=0o700, exist_ok=True)
        os.symlink(through_fd, mirror)
    except OSError:
        return through_fd  # a name too long for a mirror: the descriptor alone still works
    return mirror


def plugin_environment(base: Mapping[str, str], socket_dir: str) -> dict[str, str]:
    """The whole environment of a plugin process: `base` plus the handshake variables."""
    env = dict(base)
    env.update(
        {
            # Marks the process and what it starts, so a later host can sweep them if this one dies.
            HOST_ID_ENV: host_id(),
            MAGIC_COOKIE_KEY: MAGIC_COOKIE_VALUE,
            ENV_PROTOCOL_VERSIONS: str(APP_PROTOCOL_VERSION),
            ENV_MIN_PORT: str(_PORT_RANGE[0]),
            ENV_MAX_PORT: str(_PORT_RANGE[1]),
            ENV_UNIX_SOCKET_DIR: socket_dir,
            # go-plugin before 1.5 ignores PLUGIN_UNIX_SOCKET_DIR and creates its socket in TMPDIR.
            "TMPDIR": socket_dir,
        }
    )
    return env


class LocalProcess:
    """One running plugin process, from spawn to reaped."""

    def __init__(self, path: str, output: PluginOutput, cgroups: bool = True) -> None:
        self.path = path
        self.output = output
        self._cgroups = cgroups
        self._containment: Containment | None = None
        self.handshake: HandshakeLine | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._socket_dir = ""
        self._readers: list[asyncio.Task[None]] = []
        self._exited = asyncio.Event()

    @property
    def pid(self) -> int | None:
        """The process id, once started."""
        return self._proc.pid if self._proc else None

    @property
    def returncode(self) -> int | None:
        """The exit status, once the process has been reaped."""
        return self._proc.returncode if self._proc else None

    async def start(
        self, base_env: Mapping[str, str], timeout: float, executable: CheckedFile | None = None
    ) -> HandshakeLine:
        """Spawn the executable (the open file `executable`, else `path` opened now) and wait for
        its handshake line."""
        if executable is None:
            with open_executable(self.path) as opened:
                return await self.start(base_env, timeout, opened)
        _sweep_stale_socket_dirs()
        sweep_dead_hosts(self._cgroups)
        self._socket_dir = tempfile.mkdtemp(prefix=f"{_SOCKET_DIR_PREFIX}{os.getpid()}-", dir=_socket_base())
        os.chmod(self._socket_dir, 0o700)
        self._containment = Containment(self._cgroups)
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self._containment.prefix(),
                *_death_signal_prefix(),
                _exec_path(executable, self._socket_dir),
                pass_fds=(executable.fd,),
                env=plugin_environment(base_env, self._socket_dir),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                start_new_session=True,
                limit=_HANDSHAKE_LIMIT,
            )
        except PermissionError:
            self._cleanup_dir()
            await self._containment.release()
            raise PluginPermissionError(
                f"Permission denied: cannot execute {self.path}; run chmod +x {self.path} "
                "and check the filesystem is not mounted noexec"
            ) from None
        except OSError as exc:
            self._cleanup_dir()
            await self._containment.release()
            raise PluginExitedError(f"could not start {self.path}: {exc.strerror or exc}") from None
        self._watch_exit(self._proc.pid)
        assert self._proc.stderr is not None
        self._readers.append(asyncio.create_task(self._drain(self._proc.stderr, "stderr")))
        try:
            line = await self._read_handshake(timeout)
            self.handshake = HandshakeLine.parse(line)
        except HandshakeError as exc:
            await self.kill()
            raise ProtocolMismatchError(f"plugin {self.path} sent an unusable handshake: {exc}") from None
        except BaseException:
            await self.kill()
            raise
        assert self._proc.stdout is not None
        self._readers.append(asyncio.create_task(self._drain(self._proc.stdout, "stdout")))
        return self.handshake

    async def _read_handshake(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        except TimeoutError:
            raise HandshakeTimeoutError(
                f"plugin {self.path} printed no handshake line within {timeout:g}s; it must be built "
                "with the Solstice SDK or go-plugin and must not print anything before the handshake"
            ) from None
        except ValueError:  # asyncio's LimitOverrunError: no newline within the limit
            raise ProtocolMismatchError(
                f"plugin {self.path} printed more than {_HANDSHAKE_LIMIT // 1024} KiB without a newline "
                "instead of a handshake line"
            ) from None
        if raw.endswith(b"\n"):
            return raw.decode("utf-8", "replace")
        code = await self.wait_exit(timeout=2.0)
        if code is None:
            raise ProtocolMismatchError(
                f"plugin {self.path} closed its stdout without printing a handshake line"
            )
        await asyncio.gather(*self._readers, return_exceptions=True)
        self.output.feed("stdout", raw)
        self.output.flush()
        tail = self.output.last_lines()
        raise PluginExitedError(exited_text(self.path, code, tail, "before the handshake"))

    async def _drain(self, stream: asyncio.StreamReader, name: str) -> None:
        while data := await stream.read(_READ_SIZE):
            self.output.feed(name, data)

    def _watch_exit(self, pid: int) -> None:
        # asyncio's Process.wait() also waits for the pipes to close, which a grandchild that
        # inherited them can delay forever; a pidfd tells when the plugin itself has exited.
        try:
            fd = os.pidfd_open(pid)
        except (AttributeError, OSError):
            assert self._proc is not None
            task = asyncio.create_task(self._proc.wait())
            task.add_done_callback(lambda _: self._exited.set())
            return
        loop = asyncio.get_running_loop()

        def exited() -> None:
            loop.remove_reader(fd)
            os.close(fd)
            self._exited.set()

        loop.add_reader(fd, exited)

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit status if the process exits within `timeout` seconds, else None."""
        with contextlib.suppress(TimeoutError):
            return await asyncio.wait_for(self.wait(), timeout)
        return None

    async def wait(self) -> int:
        """Wait until the process exits, clear its process group, and return its status."""
        assert self._proc is not None
        await self._exited.wait()
        self._kill_group()  # nothing the plugin started may outlive it, or hold its pipes open
        if self._containment is not None:
            await self._containment.release()  # what left the process group too
        code = await self._proc.wait()
        await asyncio.gather(*self._readers, return_exceptions=True)
        self.output.flush()
        return code

    async def stop(self, channel: grpc.aio.Channel | None, grace: float) -> None:
        """Ask the plugin to shut down; SIGKILL its process group `grace` seconds after asking."""
        if self._proc is None or self._exited.is_set():
            if self._proc is not None:
                await self.kill()
            self._cleanup_dir()
            return
        deadline = time.monotonic() + grace
        if channel is not None:
            stub = gp_grpc.GRPCControllerStub(channel)
            # A Go plugin stops its server before answering: UNAVAILABLE means it is exiting.
            with contextlib.suppress(grpc.aio.AioRpcError):
                await stub.Shutdown(gp.Empty(), timeout=max(grace, 0.1))
        else:
            with contextlib.suppress(ProcessLookupError):
                self._proc.terminate()
        if await self.wait_exit(max(deadline - time.monotonic(), 0.0)) is None:
            await self.kill()
        self._cleanup_dir()

    def _kill_group(self) -> None:
        if self._proc is not None:
            # The plugin leads its own session, so its process group id is its pid.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self._proc.pid, signal.SIGKILL)

    async def kill(self) -> None:
        """SIGKILL the process and everything in its process group, and reap it."""
        if self._proc is not None:
            self._kill_group()
            if self._containment is not None:
                await self._containment.release()
            await self._proc.wait()
        if self._readers:
            # The pipes close with the process group; give the readers a moment to log the rest.
            _, pending = await asyncio.wait(self._readers, timeout=1.0)
            for task in pending:
                task.cancel()
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
