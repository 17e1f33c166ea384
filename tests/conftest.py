"""Shared fixtures: fast host settings, real plugin executables, standalone servers."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

import pytest

from solstice.host import PluginHost
from solstice.settings import Settings, SettingsError, get_settings

ROOT = Path(__file__).resolve().parent.parent
TESTBED = ROOT / "tests" / "plugins" / "testbed.py"
EXAMPLES = ROOT / "examples" / "plugins"
T = TypeVar("T")

# Example plugins start with `#!/usr/bin/env python3`: make that the interpreter running the tests.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def fast_settings(**overrides: object) -> Settings:
    """Settings with short intervals so supervision is observable within a test."""
    values: dict[str, object] = {
        "plugin_handshake_timeout": 20.0,
        "plugin_health_interval": 0.2,
        "plugin_health_timeout": 1.0,
        "plugin_restart_backoff": 0.05,
        "plugin_restart_backoff_max": 0.5,
        "plugin_connect_timeout": 2.0,
        "plugin_timeout_ms": 5000,
        "plugin_drain_timeout": 10.0,
        # Test plugins serve on 127.0.0.1; the policy's internal-network rules have their own tests.
        "allow_internal_network_access": True,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings() -> Settings:
    return fast_settings()


@pytest.fixture
async def host(settings: Settings) -> AsyncIterator[PluginHost]:
    async with PluginHost(settings) as plugin_host:
        yield plugin_host


def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory all of this run's xdist workers share (the run's own base directory without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def go_build(package: str, out: Path, cwd: Path = ROOT) -> Path:
    """`go build` in GOPATH mode against Debian's packages, with the user's Go build cache.

    One cache for every worker and docs page: gRPC and go-plugin compile once per machine, not once
    per worker.
    """
    go = shutil.which("go")
    if go is None:
        pytest.fail(
            "the go toolchain is missing; run `make test` as root to install golang-go", pytrace=False
        )
    env = {**os.environ, "GOPATH": f"{ROOT / 'go'}:/usr/share/gocode", "GO111MODULE": "off", "GOPROXY": "off"}
    subprocess.run([go, "build", "-o", str(out), package], cwd=cwd, env=env, check=True, timeout=300)
    return out


@pytest.fixture(scope="session")
def go_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go example plugin, built once per run whatever the number of workers; tests only read it."""
    shared = shared_dir(tmp_path_factory)
    out = shared / "go" / "request-guard"
    with open(shared / "go.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the first worker builds; the others wait, then reuse it
        if not out.is_file():
            out.parent.mkdir(exist_ok=True)
            go_build("./examples/plugins/go-request-guard", out.with_suffix(".partial"))
            out.with_suffix(".partial").rename(out)
    return out


class Standalone:
    """A plugin process serving grpc:// on 127.0.0.1, stopped by PID."""

    def __init__(self, script: Path, port: int = 0) -> None:
        self.proc = subprocess.Popen(
            [str(script), "--listen", f"127.0.0.1:{port}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"grpc://127\.0\.0\.1:(\d+)", line)
        if match is None:
            self.stop()
            raise RuntimeError(f"standalone plugin did not report its address: {line!r}")
        self.port = int(match.group(1))
        self.command = f"grpc://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                return self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


@pytest.fixture
def standalone() -> Iterator[type[Standalone]]:
    """Factory of standalone plugin servers; all are stopped at teardown."""
    started: list[Standalone] = []

    class Tracked(Standalone):
        def __init__(self, script: Path = TESTBED, port: int = 0) -> None:
            super().__init__(script, port)
            started.append(self)

    yield Tracked
    for server in started:
        server.stop(signal.SIGKILL)


def terminate(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Signal a process we started and wait for it; SIGKILL if it does not exit in time."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def pid_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def child_pids(parent: int) -> list[int]:
    """PIDs of the direct children of `parent`, read from /proc."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except (FileNotFoundError, ProcessLookupError):
                continue
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def new_children(before: list[int]) -> list[int]:
    """Live children of this test process that were not in `before`."""
    return [p for p in child_pids(os.getpid()) if p not in before and pid_alive(p)]


# The end of a log shown when a wait fails: enough for the last few events, short enough to read.
LOG_TAIL = 4000


class _Poll(Generic[T]):
    """One wait's deadline and failure message; wait_until and wait_for only differ in how they sleep."""

    def __init__(
        self, check: Callable[[], T], timeout: float, log: Callable[[], str] | None, what: str
    ) -> None:
        self.check, self.timeout, self.log, self.what = check, timeout, log, what
        self.deadline = time.monotonic() + timeout

    def attempt(self) -> T | None:
        """The check's value if it is truthy, None to try again; raises once the deadline has passed."""
        value = self.check()
        if value:
            return value
        if time.monotonic() >= self.deadline:
            detail = f":\n{self.log()[-LOG_TAIL:]}" if self.log is not None else ""
            raise AssertionError(f"gave up waiting {self.timeout} s for {self.what}{detail}")
        return None


def wait_until(
    check: Callable[[], T],
    timeout: float = 30.0,
    log: Callable[[], str] | None = None,
    *,
    what: str = "the condition",
    interval: float = 0.05,
) -> T:
    """Poll `check()` until it returns a truthy value and return that; fail after `timeout` s, with `log`."""
    poll = _Poll(check, timeout, log, what)
    while True:
        value = poll.attempt()
        if value is not None:
            return value
        time.sleep(interval)


async def wait_for(
    check: Callable[[], T],
    timeout: float = 30.0,
    log: Callable[[], str] | None = None,
    *,
    what: str = "the condition",
    interval: float = 0.05,
) -> T:
    """wait_until for coroutines: the same polling, sleeping on the event loop so it keeps running."""
    poll = _Poll(check, timeout, log, what)
    while True:
        value = poll.attempt()
        if value is not None:
            return value
        await asyncio.sleep(interval)


def settings_error(monkeypatch: pytest.MonkeyPatch, **variables: object) -> str:
    """The one-line SettingsError get_settings() raises with these environment variables set."""
    for name, value in variables.items():
        monkeypatch.setenv(name, str(value))
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    return str(info.value)
