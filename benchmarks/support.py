"""What the benchmarks share: processes they start, wait for and stop, the Go example plugin build,
and latency measured in interleaved blocks."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import httpx

REPO = Path(__file__).resolve().parent.parent
GO_PLUGIN_PACKAGE = "./examples/plugins/go-request-guard"
STOP_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 60.0
# Health checks and reconciling every hour: nothing in the background while a benchmark measures.
QUIET_INTERVAL_S = "3600"


def serve_env(workdir: Path, port: int, token: str, **extra: str) -> dict[str, str]:
    """`solstice serve`'s environment: SQLite in `workdir`, warnings only, no background checks,
    and `extra` variables."""
    return {
        **os.environ,
        "SOLSTICE_HOST": "127.0.0.1",
        "SOLSTICE_PORT": str(port),
        "SOLSTICE_DATA_DIR": str(workdir),
        "SOLSTICE_DATABASE_URL": "",
        "SOLSTICE_ADMIN_TOKEN": token,
        "SOLSTICE_LOG_LEVEL": "warning",
        "SOLSTICE_PLUGIN_HEALTH_INTERVAL": QUIET_INTERVAL_S,
        "SOLSTICE_RECONCILE_INTERVAL": QUIET_INTERVAL_S,
        **extra,
    }


async def build_go_plugin(out_dir: Path) -> Path:
    """Build the Go example plugin into `out_dir` in GOPATH mode; exits on failure."""
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go is not installed: run `make system-deps` or pass --go-binary")
    out = out_dir / "go-request-guard"
    env = {
        **os.environ,
        "GOPATH": f"{REPO / 'go'}:/usr/share/gocode",
        "GO111MODULE": "off",
        "GOPROXY": "off",
        "GOCACHE": os.environ.get("GOCACHE") or str(out_dir / "gocache"),
    }
    proc = await asyncio.create_subprocess_exec(
        go, "build", "-o", str(out), GO_PLUGIN_PACKAGE,
        cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await proc.communicate()
    finally:
        await stop_process(proc)
    if proc.returncode != 0:
        raise SystemExit(f"go build failed:\n{output.decode(errors='replace')}")
    return out


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM a process we started, SIGKILL it if it lingers, and reap it."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def death_signal_prefix() -> list[str]:
    """`setpriv --pdeathsig KILL --` when available, so a server we start dies with us."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []


def cancel_on_sigterm() -> None:
    """Turn SIGTERM into cancelling the current task, so every cleanup still runs."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)


def use_venv_python() -> None:
    """Put this interpreter's directory first on PATH so `#!/usr/bin/env python3` plugins find it."""
    bin_dir = os.path.dirname(sys.executable)
    os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])


def run_timed(
    bench: Callable[[Path], Coroutine[Any, Any, None]], workdir_prefix: str, interrupted: str
) -> int:
    """Run a benchmark in a temporary directory, print the total time; 130 when interrupted."""
    began = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix=workdir_prefix) as workdir:
            asyncio.run(bench(Path(workdir)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(interrupted, file=sys.stderr)
        return 130
    print(f"\ntotal time: {time.perf_counter() - began:.0f} s")
    return 0


def open_log(log: Path) -> BinaryIO:
    """Open a process's log file for appending."""
    return log.open("ab")


def read_log(log: Path) -> str:
    """Everything a process wrote to its log file."""
    return log.read_text(errors="replace") if log.exists() else ""


@contextlib.asynccontextmanager
async def started(
    args: Sequence[str], log: Path, env: dict[str, str] | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run `args` with output to `log`; stopped by PID when the block ends, however it ends."""
    with open_log(log) as out:
        proc = await asyncio.create_subprocess_exec(
            *death_signal_prefix(), *args,
            env=env, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield proc
        finally:
            await stop_process(proc)


async def wait_ready(url: str, proc: asyncio.subprocess.Process, log: Path) -> None:
    """Poll `url` until it answers 200; fail with the process's log if it exits or takes too long."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(timeout=2, trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"{url}: the server exited with {proc.returncode}:\n{read_log(log)}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} was not ready in {READY_TIMEOUT_S:.0f}s:\n{read_log(log)}")


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    """Each call's duration in milliseconds, one after another."""
    durations = []
    for _ in range(count):
        began = time.perf_counter_ns()
        await call()
        durations.append((time.perf_counter_ns() - began) / 1e6)
    return durations


async def measure(
    modes: dict[str, Callable[[], Awaitable[object]]], calls: int, blocks: int, warmup: int
) -> dict[str, float]:
    """The median of each mode's block medians (ms), blocks interleaved because machines are noisy."""
    for call in modes.values():
        await timed(call, warmup)
    medians: dict[str, list[float]] = {name: [] for name in modes}
    per_block = max(1, calls // blocks)
    for block in range(blocks):
        order = list(modes) if block % 2 == 0 else list(reversed(modes))
        for name in order:
            medians[name].append(statistics.median(await timed(modes[name], per_block)))
    return {name: statistics.median(values) for name, values in medians.items()}


def write_plugin(workdir: Path, source: str) -> Path:
    """A benchmark's plugin script in `workdir`, run by this Python (`{python}` in `source`)."""
    plugin = workdir / "bench_plugin.py"
    plugin.write_text(source.format(python=sys.executable))
    plugin.chmod(0o755)
    return plugin
