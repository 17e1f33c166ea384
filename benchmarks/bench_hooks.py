#!/usr/bin/env python3
"""Benchmarks the plugin host against raw gRPC: hook latency, spawn-to-ready time, memory per plugin.

Run from the repository root: `.venv/bin/python benchmarks/bench_hooks.py` (or `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import gc
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import psutil
from support import (
    REPO,
    build_go_plugin,
    cancel_on_sigterm,
    death_signal_prefix,
    run_timed,
    stop_process,
    use_venv_python,
)

from solstice.host import PluginHost, PluginSpec, PluginStatus
from solstice.logs import configure_logging
from solstice.protocol import pb, pb_grpc
from solstice.protocol.transport import GRPC_OPTIONS
from solstice.settings import BASE_PLUGIN_ENV, Settings

TESTBED = REPO / "tests" / "plugins" / "testbed.py"
TARGET_RATIO = 1.25
# Long enough that no health check runs while we measure.
HEALTH_INTERVAL_S = 3600.0
STOP_TIMEOUT_S = 10.0

Call = Callable[[], Awaitable[object]]
Runner = Callable[[Call, int], Awaitable[tuple[list[int], int]]]


# -- options and environment -----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: sizes of every part of the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per plugin, load and mode")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured calls per channel first")
    parser.add_argument("--blocks", type=int, default=10, help="interleaved blocks per mode")
    parser.add_argument("--concurrency", type=int, default=32, help="coroutines in the concurrent run")
    parser.add_argument("--spawn-runs", type=int, default=10, help="loads and bare starts per plugin")
    parser.add_argument("--instances", type=int, default=100, help="Go plugins loaded for the memory test")
    parser.add_argument("--load-concurrency", type=int, default=8, help="parallel loads in the memory test")
    parser.add_argument("--go-binary", type=Path, help="a prebuilt go-request-guard (skips go build)")
    args = parser.parse_args(argv)
    sizes = (
        args.calls,
        args.blocks,
        args.concurrency,
        args.spawn_runs,
        args.instances,
        args.load_concurrency,
    )
    if min(sizes) < 1:
        parser.error("sizes must be at least 1")
    return args


def bench_settings() -> Settings:
    """Host settings for the benchmark: no health checks while measuring."""
    # The grpc:// case serves on 127.0.0.1, which the security policy blocks unless allowed.
    return Settings(plugin_health_interval=HEALTH_INTERVAL_S, allow_internal_network_access=True)


# -- processes ---------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def standalone_testbed() -> AsyncIterator[str]:
    """Run the testbed as a grpc:// server on 127.0.0.1 and yield its HOST:PORT."""
    proc = await asyncio.create_subprocess_exec(
        *death_signal_prefix(),
        str(TESTBED),
        "--listen",
        "127.0.0.1:0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode(errors="replace")
        match = re.search(r"listening on grpc://(\S+)", line)
        if match is None:
            raise RuntimeError(f"standalone testbed printed {line!r} instead of its address")
        yield match.group(1)
    finally:
        await stop_process(proc)


def plugin_target(host: PluginHost, slug: str) -> str:
    """The gRPC target the host dials for `slug`."""
    target = host.status(slug).target
    if target is None:
        raise RuntimeError(f"plugin {slug} has no serving instance")
    return target


def socket_dir(host: PluginHost, slug: str) -> str | None:
    """The private directory holding a file:// plugin's unix socket, if it has one."""
    target = plugin_target(host, slug)
    return os.path.dirname(target.removeprefix("unix:")) if target.startswith("unix:") else None


def count_existing(paths: Sequence[str]) -> int:
    """How many of `paths` still exist."""
    return sum(os.path.exists(path) for path in paths)


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Stats:
    """Throughput and latency of one mode, from interleaved blocks."""

    calls_per_s: float
    p50_us: float
    p99_us: float


async def run_sequential(call: Call, n: int) -> tuple[list[int], int]:
    """Make `n` calls one after another; per-call latencies and total time, in ns."""
    clock = time.perf_counter_ns
    samples: list[int] = []
    start = clock()
    for _ in range(n):
        began = clock()
        await call()
        samples.append(clock() - began)
    return samples, clock() - start


def concurrent_runner(workers: int) -> Runner:
    """A runner making `n` calls from `workers` coroutines sharing one budget."""

    async def run(call: Call, n: int) -> tuple[list[int], int]:
        clock = time.perf_counter_ns
        samples: list[int] = []
        remaining = n

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                began = clock()
                await call()
                samples.append(clock() - began)

        start = clock()
        await asyncio.gather(*(worker() for _ in range(workers)))
        return samples, clock() - start

    return run


def percentile(samples: Sequence[int], q: int) -> float:
    """The q-th percentile of `samples` (ns), in µs."""
    if len(samples) == 1:
        return samples[0] / 1000
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] / 1000


async def compare(calls: dict[str, Call], runner: Runner, total: int, blocks: int) -> dict[str, Stats]:
    """Run the modes in interleaved blocks (order flipped each round); p50 = median of block p50s."""
    per_block = max(1, total // blocks)
    samples: dict[str, list[int]] = {mode: [] for mode in calls}
    block_p50s: dict[str, list[float]] = {mode: [] for mode in calls}
    elapsed: dict[str, int] = dict.fromkeys(calls, 0)
    for round_ in range(blocks):
        order = list(calls.items())
        for mode, call in order if round_ % 2 == 0 else reversed(order):
            gc.collect()
            block, took = await runner(call, per_block)
            samples[mode].extend(block)
            block_p50s[mode].append(percentile(block, 50))
            elapsed[mode] += took
    return {
        mode: Stats(
            calls_per_s=len(samples[mode]) / (elapsed[mode] / 1e9),
            p50_us=statistics.median(block_p50s[mode]),
            p99_us=percentile(samples[mode], 99),
        )
        for mode in calls
    }


async def warm_up(calls: dict[str, Call], n: int) -> None:
    """Make `n` unmeasured calls per mode and check the first answer is `continue`."""
    for mode, call in calls.items():
        answer = await call()
        action = answer.WhichOneof("action") if isinstance(answer, pb.HookResponse) else None
        if action != "proceed":
            raise RuntimeError(f"{mode} pre_auth answered {action!r}, expected 'proceed' (continue)")
        for _ in range(n):
            await call()


# -- 1. hook latency ---------------------------------------------------------------------------


@dataclass
class LatencyRow:
    """One line of the latency table."""

    plugin: str
    load: str
    mode: str
    stats: Stats
    ratio: float | None


def hook_calls(host: PluginHost, slug: str, channel: grpc.aio.Channel) -> dict[str, Call]:
    """The same no-op pre_auth through a raw stub on `channel` and through the host's client."""
    ctx = pb.RequestContext(request_id="bench")
    request = pb.HttpRequest(method="POST", path="/noop", remote_addr="127.0.0.1")
    message = pb.PreAuthRequest(context=ctx, request=request)
    timeout = host.settings.plugin_timeout_ms / 1000  # the deadline the host client sends
    stub = pb_grpc.PluginStub(channel)
    return {
        "raw": functools.partial(stub.PreAuth, message, timeout=timeout),
        "host": functools.partial(host.client(slug).pre_auth, ctx, request),
    }


def latency_rows(plugin: str, load: str, stats: dict[str, Stats]) -> list[LatencyRow]:
    """Table rows for one comparison; the host row carries the host/raw p50 ratio."""
    ratio = stats["host"].p50_us / stats["raw"].p50_us
    return [
        LatencyRow(plugin, load, "raw", stats["raw"], None),
        LatencyRow(plugin, load, "host", stats["host"], ratio),
    ]


async def bench_plugin_latency(
    host: PluginHost, label: str, spec: PluginSpec, args: argparse.Namespace
) -> list[LatencyRow]:
    """Load `spec`, then compare raw and host calls, sequential and concurrent."""
    await host.load(spec)
    try:
        target = plugin_target(host, spec.slug)
        async with grpc.aio.insecure_channel(target, options=GRPC_OPTIONS) as channel:
            calls = hook_calls(host, spec.slug, channel)
            await warm_up(calls, args.warmup)
            sequential = await compare(calls, run_sequential, args.calls, args.blocks)
            concurrent = concurrent_runner(args.concurrency)
            parallel = await compare(calls, concurrent, args.calls, args.blocks)
    finally:
        await host.unload(spec.slug)
    return [
        *latency_rows(label, "seq", sequential),
        *latency_rows(label, f"c{args.concurrency}", parallel),
    ]


def print_latency(rows: list[LatencyRow], args: argparse.Namespace) -> None:
    """Print the latency table."""
    print(
        f"\n1. No-op pre_auth: {args.calls} calls per mode in {args.blocks} interleaved blocks "
        f"(raw host, host raw, ...), after {args.warmup} warm-up calls;\n"
        "   p50 = median of block p50s, p99 = pooled; target host/raw p50 <= "
        f"{TARGET_RATIO:.2f}x"
    )
    print(f"   {'plugin':<18}{'load':<6}{'mode':<6}{'calls/s':>9}{'p50 µs':>10}{'p99 µs':>10}  host/raw p50")
    for row in rows:
        verdict = ""
        if row.ratio is not None:
            met = "met" if row.ratio <= TARGET_RATIO else "NOT met"
            verdict = f"{row.ratio:.2f}x  {met}"
        s = row.stats
        print(
            f"   {row.plugin:<18}{row.load:<6}{row.mode:<6}{s.calls_per_s:>9.0f}"
            f"{s.p50_us:>10.1f}{s.p99_us:>10.1f}  {verdict}"
        )


# -- 2. spawn-to-ready ---------------------------------------------------------------------------


@dataclass
class SpawnResult:
    """Median spawn-to-ready and bare start times of one executable, in ms."""

    plugin: str
    load_ms: float
    bare_ms: float
    bare_output_ms: float


async def time_load(host: PluginHost, spec: PluginSpec) -> float:
    """Seconds `host.load(spec)` takes; the plugin is unloaded afterwards."""
    began = time.perf_counter()
    await host.load(spec)
    took = time.perf_counter() - began
    await host.unload(spec.slug)
    return took


async def time_bare_start(path: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawning `path` without the magic cookie until its first output and until it exits."""
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        str(path),
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(proc.stdout.read(1), STOP_TIMEOUT_S)
        first_output = time.perf_counter() - began
        await asyncio.wait_for(proc.stdout.read(), STOP_TIMEOUT_S)
        await asyncio.wait_for(proc.wait(), STOP_TIMEOUT_S)
    finally:
        await stop_process(proc)
    return first_output, time.perf_counter() - began


async def bench_spawn(host: PluginHost, label: str, path: Path, runs: int) -> SpawnResult:
    """Alternate bare starts and loads of `path`, after one unmeasured round."""
    spec = PluginSpec(slug=f"spawn-{label.split()[0]}", command=f"file://{path}")
    env = host.settings.host_environment(BASE_PLUGIN_ENV)  # what a plugin gets, minus the handshake
    await time_bare_start(path, env)
    await time_load(host, spec)
    loads: list[float] = []
    bares: list[tuple[float, float]] = []
    for _ in range(runs):
        bares.append(await time_bare_start(path, env))
        loads.append(await time_load(host, spec))
    return SpawnResult(
        plugin=label,
        load_ms=statistics.median(loads) * 1000,
        bare_ms=statistics.median(exit for _, exit in bares) * 1000,
        bare_output_ms=statistics.median(output for output, _ in bares) * 1000,
    )


def print_spawn(results: list[SpawnResult], runs: int) -> None:
    """Print the spawn-to-ready table."""
    print(
        f"\n2. Spawn to ready, median of {runs}: host.load() (spawn, handshake, health, GetInfo, "
        "Configure)\n   vs bare start (same executable, no magic cookie: prints usage, exits 1), "
        "until exit and until its usage line"
    )
    print(f"   {'plugin':<18}{'load ms':>9}{'bare ms':>9}  load/bare{'usage ms':>10}  load/usage")
    for r in results:
        print(
            f"   {r.plugin:<18}{r.load_ms:>9.1f}{r.bare_ms:>9.1f}  {r.load_ms / r.bare_ms:>8.2f}x"
            f"{r.bare_output_ms:>10.1f}  {r.load_ms / r.bare_output_ms:>9.2f}x"
        )


# -- 3. memory ---------------------------------------------------------------------------------


@dataclass
class MemoryResult:
    """Host RSS growth per loaded plugin and what was left behind after unloading."""

    loaded: int
    failed: int
    per_plugin_kib: float
    after_unload_kib: float
    plugin_rss_mib: float
    leftover_pids: list[int]
    leftover_children: list[int]
    leftover_socket_dirs: int


def rss() -> int:
    """This process's resident set size in bytes, after a full garbage collection."""
    gc.collect()
    return psutil.Process().memory_info().rss


def plugin_rss(statuses: Sequence[PluginStatus]) -> int:
    """Total RSS in bytes of the plugin processes behind `statuses`."""
    total = 0
    for pid in (s.pid for s in statuses if s.pid is not None):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += psutil.Process(pid).memory_info().rss
    return total


async def load_all(host: PluginHost, specs: Sequence[PluginSpec], limit: int) -> list[PluginStatus]:
    """Load `specs` with at most `limit` loads in flight; the statuses of those that started."""
    gate = asyncio.Semaphore(limit)

    async def load(spec: PluginSpec) -> PluginStatus:
        async with gate:
            return await host.load(spec)

    results = await asyncio.gather(*(load(spec) for spec in specs), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result
    return [r for r in results if isinstance(r, PluginStatus)]


async def bench_memory(host: PluginHost, go_binary: Path, args: argparse.Namespace) -> MemoryResult:
    """Host RSS before and after loading many Go plugins, then check unloading leaves nothing."""
    command = f"file://{go_binary}"
    await time_load(host, PluginSpec(slug="mem-warmup", command=command))
    specs = [PluginSpec(slug=f"mem-{i:03d}", command=command) for i in range(args.instances)]
    before = rss()
    statuses = await load_all(host, specs, args.load_concurrency)
    after = rss()
    children_rss = plugin_rss(statuses)
    pids = [s.pid for s in statuses if s.pid is not None]
    dirs = [d for d in (socket_dir(host, s.slug) for s in statuses) if d is not None]
    gate = asyncio.Semaphore(args.load_concurrency)

    async def unload(slug: str) -> None:
        async with gate:
            await host.unload(slug)

    await asyncio.gather(*(unload(s.slug) for s in statuses))
    unloaded = rss()
    loaded = max(1, len(statuses))
    return MemoryResult(
        loaded=len(statuses),
        failed=len(specs) - len(statuses),
        per_plugin_kib=(after - before) / loaded / 1024,
        after_unload_kib=(unloaded - before) / 1024,
        plugin_rss_mib=children_rss / 2**20,
        leftover_pids=[pid for pid in pids if alive(pid)],
        leftover_children=[c.pid for c in psutil.Process().children(recursive=True) if alive(c.pid)],
        leftover_socket_dirs=count_existing(dirs),
    )


def print_memory(result: MemoryResult, args: argparse.Namespace) -> None:
    """Print the memory figures and the leftover check."""
    print(
        f"\n3. Host memory: {result.loaded} Go plugins loaded ({args.load_concurrency} at a time), "
        f"{result.failed} failed"
    )
    print(f"   host RSS growth per loaded plugin: {result.per_plugin_kib:.1f} KiB")
    print(f"   host RSS after unloading all, vs before loading: {result.after_unload_kib:+.0f} KiB")
    print(f"   plugin processes' RSS (information): {result.plugin_rss_mib:.1f} MiB in total")
    clean = not (result.leftover_pids or result.leftover_children or result.leftover_socket_dirs)
    print(
        f"   after unloading: {len(result.leftover_pids)} plugin processes, "
        f"{len(result.leftover_children)} child processes, "
        f"{result.leftover_socket_dirs} socket dirs left -> {'OK' if clean else 'LEAK'}"
    )


# -- main --------------------------------------------------------------------------------------


def print_header(args: argparse.Namespace) -> None:
    """Print what ran where."""
    load1, load5, _ = os.getloadavg()
    print(
        f"Solstice hook benchmark: Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load1:.2f}/{load5:.2f}"
    )


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    """Run the three parts and print their tables."""
    cancel_on_sigterm()
    go_binary = args.go_binary.resolve() if args.go_binary else await build_go_plugin(workdir)
    testbed = PluginSpec(slug="bench-python", command=f"file://{TESTBED}")
    go = PluginSpec(slug="bench-go", command=f"file://{go_binary}")
    async with PluginHost(bench_settings()) as host:
        rows = await bench_plugin_latency(host, "python (unix)", testbed, args)
        rows += await bench_plugin_latency(host, "go (unix)", go, args)
        async with standalone_testbed() as address:
            remote = PluginSpec(slug="bench-remote", command=f"grpc://{address}")
            rows += await bench_plugin_latency(host, "python (grpc://)", remote, args)
        print_latency(rows, args)
        spawns = [
            await bench_spawn(host, "python testbed", TESTBED, args.spawn_runs),
            await bench_spawn(host, "go guard", go_binary, args.spawn_runs),
        ]
        print_spawn(spawns, args.spawn_runs)
        memory = await bench_memory(host, go_binary, args)
        print_memory(memory, args)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, run everything, print the total time."""
    args = parse_args(argv)
    use_venv_python()
    configure_logging("error")  # plugins run from a temp dir: path warnings are expected here
    print_header(args)
    return run_timed(
        lambda workdir: bench(args, workdir), "solstice-bench-", "interrupted; every plugin was stopped"
    )


if __name__ == "__main__":
    sys.exit(main())
