#!/usr/bin/env python3
"""Benchmarks the LLM gateway with wrk: the mock upstream called directly, then through `solstice serve`
with no plugin, one no-op plugin per hook, and the example plugins chained.

Run from the repository root: `.venv/bin/python benchmarks/bench_gateway.py`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import sys
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import psutil
from support import (
    QUIET_INTERVAL_S,
    REPO,
    build_go_plugin,
    cancel_on_sigterm,
    free_port,
    read_log,
    run_timed,
    serve_env,
    started,
    stop_process,
    use_venv_python,
    wait_ready,
)

from solstice.host import PluginHost, PluginSpec
from solstice.logs import configure_logging
from solstice.protocol import pb, pb_grpc
from solstice.protocol.transport import GRPC_OPTIONS
from solstice.settings import Settings

EXAMPLES = REPO / "examples" / "plugins"
GATEWAY_TARGET_MS = 1.0
HOOK_TARGET_RATIO = 1.3
SAMPLE_INTERVAL_S = 0.1
# Long enough that no health check or reconcile pass runs while we measure.
PROMPT: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
NOOP_PLUGIN = '''#!{python}
"""A plugin whose hooks all answer proceed: the gateway benchmark's no-op plugin."""

from solstice.sdk import Plugin, pb, proceed, serve


class Noop(Plugin):
    name = "bench-noop"
    version = "1.0.0"

    async def pre_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        return proceed()

    async def post_auth(self, ctx: pb.RequestContext, request: pb.HttpRequest) -> pb.HookResponse:
        return proceed()

    async def on_response(self, ctx, request, response, phase, chunk_index) -> pb.HookResponse:
        return proceed()


if __name__ == "__main__":
    serve(Noop())
'''


# -- options and environment -----------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line: rounds, run lengths, concurrency and the raw gRPC sample size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds over all scenarios")
    parser.add_argument("--duration", type=int, default=3, help="seconds of one wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections of the load runs")
    parser.add_argument(
        "--latency-connections", type=int, default=1, help="wrk connections of the latency runs"
    )
    parser.add_argument("--warmup", type=int, default=1, help="seconds of unmeasured load per scenario")
    parser.add_argument("--grpc-calls", type=int, default=2000, help="raw gRPC PreAuth calls in all")
    parser.add_argument("--go-binary", type=Path, help="a prebuilt go-request-guard (skips go build)")
    args = parser.parse_args(argv)
    sizes = (args.rounds, args.duration, args.connections, args.latency_connections, args.grpc_calls)
    if min(sizes) < 1 or args.warmup < 0:
        parser.error("sizes must be at least 1 (warmup at least 0)")
    return args


def require_wrk() -> str:
    """The wrk executable; exits with a hint when it is missing."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed: `apt-get install wrk`")
    return wrk


def write_noop_plugin(workdir: Path) -> Path:
    """Write the no-op plugin, with this interpreter in its shebang, and make it executable."""
    path = workdir / "noop_plugin.py"
    path.write_text(NOOP_PLUGIN.replace("{python}", sys.executable))
    path.chmod(0o755)
    return path


def write_wrk_script(workdir: Path, key: str) -> Path:
    """The Lua script wrk runs: a POST of a small chat completion with the app key."""
    path = workdir / "post.lua"
    path.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = [[{json.dumps(PROMPT)}]]\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {key}"\n'
    )
    return path


# -- processes ---------------------------------------------------------------------------------


# -- setting up the gateway through its API ----------------------------------------------------


@dataclass(frozen=True)
class PluginDef:
    """A plugin registered for one hook."""

    slug: str
    command: str
    hook: str
    config: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Scenario:
    """One URL wrk loads, and how many plugin calls each request makes on the way."""

    key: str
    label: str
    url: str
    hook_calls: int = 0


async def api(client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any]) -> Any:
    """Call the control-plane API; fail with its answer unless it succeeded."""
    response = await client.request(method, path, json=body)
    if response.status_code >= 300:
        raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text}")
    return response.json()


async def register_plugin(client: httpx.AsyncClient, plugin: PluginDef) -> int:
    """Register and start a plugin; its PID once healthy."""
    body = {
        "name": plugin.slug,
        "slug": plugin.slug,
        "command": plugin.command,
        "hook_type": plugin.hook,
        "config": plugin.config,
    }
    created = await api(client, "POST", "/api/v1/plugins", body)
    if created["status"] != "healthy":
        raise RuntimeError(f"plugin {plugin.slug} is {created['status']}: {created.get('last_error')}")
    health = (await client.get(f"/api/v1/plugins/{plugin.slug}/health")).json()
    return int(health["pid"])


async def create_llm(client: httpx.AsyncClient, slug: str, upstream: str, chain: Sequence[str]) -> None:
    """An openai-vendor LLM pointing at the mock upstream, with `chain` as its plugins in order."""
    body = {"name": slug, "slug": slug, "vendor": "openai", "upstream_url": upstream}
    await api(client, "POST", "/api/v1/llms", body)
    if chain:
        await api(client, "PUT", f"/api/v1/llms/{slug}/plugins", {"plugins": [{"plugin": p} for p in chain]})


def plugin_defs(noop: Path, go_binary: Path) -> list[PluginDef]:
    """The no-op plugin once per hook, and the three example plugins with their configs."""
    noop_command = f"file://{noop}"
    ip_filter = EXAMPLES / "ip-filter" / "plugin.py"
    enricher = EXAMPLES / "header-enricher" / "plugin.py"
    return [
        PluginDef("noop-pre-auth", noop_command, "pre_auth"),
        PluginDef("noop-post-auth", noop_command, "post_auth"),
        PluginDef("noop-on-response", noop_command, "on_response"),
        PluginDef("ip-filter", f"file://{ip_filter}", "pre_auth", {"deny": ["203.0.113.0/24"]}),
        PluginDef("header-enricher", f"file://{enricher}", "post_auth", {"headers": {"X-Team": "bench"}}),
        PluginDef("request-guard", f"file://{go_binary}", "pre_auth", {"blocked_words": ["forbidden"]}),
    ]


# LLM slug -> (label, chain of plugin slugs)
ROUTES: dict[str, tuple[str, tuple[str, ...]]] = {
    "no-plugin": ("gateway, no plugin", ()),
    "pre-auth": ("+ no-op pre_auth", ("noop-pre-auth",)),
    "post-auth": ("+ no-op post_auth", ("noop-post-auth",)),
    "on-response": ("+ no-op on_response", ("noop-on-response",)),
    "chain": ("+ 3 example plugins", ("ip-filter", "header-enricher", "request-guard")),
}


@dataclass
class Setup:
    """What the benchmark set up: scenarios, the app key, plugin PIDs."""

    scenarios: list[Scenario]
    key: str
    plugin_pids: dict[str, int]


async def set_up_gateway(gateway: str, token: str, mock: str, plugins: list[PluginDef]) -> Setup:
    """Register the plugins, one LLM per scenario and one app allowed to call them all."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=60, trust_env=False) as client:
        pids = {plugin.slug: await register_plugin(client, plugin) for plugin in plugins}
        for slug, (_, chain) in ROUTES.items():
            await create_llm(client, slug, f"{mock}/v1", chain)
        app = await api(client, "POST", "/api/v1/apps", {"name": "bench", "llms": list(ROUTES)})
    scenarios = [Scenario("direct", "mock-llm, direct", f"{mock}/v1/chat/completions")]
    scenarios += [
        Scenario(slug, label, f"{gateway}/llm/{slug}/chat/completions", len(chain))
        for slug, (label, chain) in ROUTES.items()
    ]
    return Setup(scenarios, app["key"], pids)


async def check_routes(setup: Setup, gateway: str) -> None:
    """One request per scenario answers 200; the chain adds its header and blocks a forbidden word."""
    auth = {"Authorization": f"Bearer {setup.key}"}
    async with httpx.AsyncClient(timeout=30, trust_env=False, headers=auth) as client:
        for scenario in setup.scenarios:
            answer = await client.post(scenario.url, json=PROMPT)
            if answer.status_code != 200 or answer.json().get("object") != "chat.completion":
                raise RuntimeError(f"{scenario.label}: {answer.status_code} {answer.text}")
        echo = await client.post(f"{gateway}/llm/chain/echo", json=PROMPT)
        seen = dict(echo.json()["headers"]) if echo.status_code == 200 else {}
        if seen.get("x-team") != "bench":
            raise RuntimeError(f"header-enricher did not reach the upstream: {echo.status_code} {echo.text}")
        forbidden = {"messages": [{"role": "user", "content": "a forbidden word"}]}
        blocked = await client.post(f"{gateway}/llm/chain/chat/completions", json=forbidden)
        if blocked.status_code != 403:
            raise RuntimeError(f"request-guard let a forbidden word through: {blocked.status_code}")


# -- wrk ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WrkResult:
    """What one wrk run reported."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int  # non-2xx answers and socket errors


_TIME_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def parse_time_ms(text: str) -> float:
    """wrk's formatted duration (`210.00us`, `2.08ms`, `1.15s`) in milliseconds."""
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if match is None:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Requests/s, p50, p99 and errors from wrk's --latency output."""
    percentiles = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    count = re.search(r"(\d+) requests in ", output)
    if rps is None or count is None or set(percentiles) != {"50", "99"}:
        raise RuntimeError(f"could not parse wrk's output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    bad = (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=parse_time_ms(percentiles["50"]),
        p99_ms=parse_time_ms(percentiles["99"]),
        requests=int(count.group(1)),
        bad=bad,
    )


async def run_wrk(wrk: str, script: Path, url: str, connections: int, seconds: int) -> WrkResult:
    """One wrk run (one thread) against `url`."""
    proc = await asyncio.create_subprocess_exec(
        wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
        "-s", str(script), url,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await proc.communicate()
    finally:
        await stop_process(proc)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{output.decode(errors='replace')}")
    return parse_wrk(output.decode(errors="replace"))


# -- memory ------------------------------------------------------------------------------------


class RssSampler:
    """Peak RSS of the gateway process and of each plugin process, sampled while load runs."""

    def __init__(self, gateway_pid: int, plugin_pids: dict[str, int]) -> None:
        self.gateway = psutil.Process(gateway_pid)
        self.plugins = {slug: psutil.Process(pid) for slug, pid in plugin_pids.items()}
        self.gateway_idle = self.gateway.memory_info().rss
        self.gateway_peak = self.gateway_idle
        self.plugin_peaks = dict.fromkeys(plugin_pids, 0)

    def sample(self) -> None:
        """Take one sample of every process."""
        self.gateway_peak = max(self.gateway_peak, self.gateway.memory_info().rss)
        for slug, proc in self.plugins.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                self.plugin_peaks[slug] = max(self.plugin_peaks[slug], proc.memory_info().rss)

    async def _loop(self) -> None:
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_INTERVAL_S)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Sample every 100 ms for as long as the block runs."""
        task = asyncio.create_task(self._loop())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# -- raw gRPC baseline -------------------------------------------------------------------------


def gateway_like_pre_auth(key: str) -> pb.PreAuthRequest:
    """A PreAuthRequest shaped like the one the gateway sends for wrk's request."""
    body = json.dumps(PROMPT).encode()
    headers = {
        "host": "127.0.0.1",
        "content-type": "application/json",
        "authorization": f"Bearer {key}",
        "content-length": str(len(body)),
    }
    ctx = pb.RequestContext(
        request_id=secrets.token_hex(16),
        llm=pb.LLM(id="2", slug="pre-auth", vendor="openai"),
        trace=pb.TraceContext(),
    )
    request = pb.HttpRequest(
        method="POST",
        path="chat/completions",
        headers=[pb.Header(name=k, value=v) for k, v in headers.items()],
        body=body,
        remote_addr="127.0.0.1:40000",
    )
    return pb.PreAuthRequest(context=ctx, request=request)


class RawGrpc:
    """Sequential PreAuth calls on the benchmark's own grpc.aio channel to a no-op plugin process."""

    def __init__(self, stub: pb_grpc.PluginStub, message: pb.PreAuthRequest, timeout: float) -> None:
        self.stub = stub
        self.message = message
        self.timeout = timeout
        self.block_p50s_ms: list[float] = []

    async def block(self, calls: int) -> None:
        """Make `calls` calls one after another and keep the block's p50."""
        clock = time.perf_counter_ns
        samples: list[int] = []
        for _ in range(calls):
            began = clock()
            answer = await self.stub.PreAuth(self.message, timeout=self.timeout)
            samples.append(clock() - began)
        if answer.WhichOneof("action") != "proceed":
            raise RuntimeError(f"the no-op plugin answered {answer.WhichOneof('action')!r}")
        self.block_p50s_ms.append(statistics.median(samples) / 1e6)


@contextlib.asynccontextmanager
async def raw_grpc(noop: Path, key: str) -> AsyncIterator[RawGrpc]:
    """Start the no-op plugin with a PluginHost in this process and yield a raw caller for it."""
    settings = Settings(plugin_health_interval=float(QUIET_INTERVAL_S))
    async with PluginHost(settings) as host:
        spec = PluginSpec(slug="raw-noop", command=f"file://{noop}")
        await host.load(spec)
        try:
            target = host.status(spec.slug).target
            if target is None:
                raise RuntimeError("the no-op plugin has no serving instance")
            async with grpc.aio.insecure_channel(target, options=GRPC_OPTIONS) as channel:
                # The deadline the gateway sends: the plugin's default timeout.
                timeout = settings.plugin_timeout_ms / 1000
                yield RawGrpc(pb_grpc.PluginStub(channel), gateway_like_pre_auth(key), timeout)
        finally:
            await host.unload(spec.slug)


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Summary:
    """Medians over the rounds of one scenario in one mode."""

    rps: float
    p50_ms: float
    p99_ms: float
    bad: int


def summarize(runs: list[WrkResult]) -> Summary:
    """Median requests/s, p50 and p99 over rounds; errors added up."""
    return Summary(
        rps=statistics.median(r.rps for r in runs),
        p50_ms=statistics.median(r.p50_ms for r in runs),
        p99_ms=statistics.median(r.p99_ms for r in runs),
        bad=sum(r.bad for r in runs),
    )


@dataclass
class Measurements:
    """Every wrk run, by mode and scenario, and the raw gRPC blocks."""

    modes: dict[str, int]
    runs: dict[str, dict[str, list[WrkResult]]] = field(default_factory=dict)

    def add(self, mode: str, scenario: str, result: WrkResult) -> None:
        """Record one run."""
        self.runs.setdefault(mode, {}).setdefault(scenario, []).append(result)

    def summary(self, mode: str, scenario: str) -> Summary:
        """Medians of one scenario in one mode."""
        return summarize(self.runs[mode][scenario])


async def measure(
    args: argparse.Namespace,
    wrk: str,
    script: Path,
    scenarios: list[Scenario],
    sampler: RssSampler,
    raw: RawGrpc,
) -> Measurements:
    """Warm up, then rounds of short wrk runs over every scenario (order flipped each round),
    each round followed by a block of raw gRPC calls."""
    modes = {"load": args.connections, "latency": args.latency_connections}
    result = Measurements(modes)
    await raw.block(min(200, args.grpc_calls))  # warm-up, not kept
    raw.block_p50s_ms.clear()
    if args.warmup:
        for scenario in scenarios:
            async with sampler.running():
                await run_wrk(wrk, script, scenario.url, args.connections, args.warmup)
    for round_ in range(args.rounds):
        order = scenarios if round_ % 2 == 0 else scenarios[::-1]
        for scenario in order:
            for mode, connections in modes.items():
                async with sampler.running():
                    run = await run_wrk(wrk, script, scenario.url, connections, args.duration)
                result.add(mode, scenario.key, run)
        await raw.block(max(1, args.grpc_calls // args.rounds))
        print(f"  round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    return result


# -- report ------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    """The word printed beside a target."""
    return "met" if ok else "not met"


def print_header() -> None:
    """Print what ran where, and which plugins stand for what."""
    load1, load5, _ = os.getloadavg()
    print(
        f"Solstice gateway benchmark: Python {platform.python_version()}, grpcio {grpc.__version__}, "
        f"{os.cpu_count()} CPUs, load average {load1:.2f}/{load5:.2f}"
    )
    print(
        "  upstream: `solstice mock-llm`; gateway: `solstice serve` (SQLite, log level warning),\n"
        "  openai-vendor LLMs whose upstream_url is the mock; load generator: wrk, one thread\n"
        "  no-op plugin: a Python SDK plugin written at run time, every hook answers proceed\n"
        "  example chain: ip-filter (pre_auth) and header-enricher (post_auth) in Python, and\n"
        "  go-request-guard (pre_auth) in Go: only two example plugins are written in Python"
    )


def print_table(m: Measurements, scenarios: list[Scenario], args: argparse.Namespace) -> None:
    """Print requests/s, p50 and p99 of every scenario in both modes."""
    print(
        f"\n1. Median of {args.rounds} rounds x {args.duration} s per scenario and mode, scenarios "
        "interleaved (order flipped each round);\n   p50/p99 as wrk --latency prints them "
        "(p99 includes wrk's coordinated-omission correction)"
    )
    heads = "".join(f"  | {f'{mode} (-c{c})':<27}" for mode, c in m.modes.items())
    print(f"   {'scenario':<22}{heads}".rstrip())
    cols = "".join(f"  | {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}" for _ in m.modes)
    print(f"   {'':<22}{cols}")
    for scenario in scenarios:
        cells = ""
        for mode in m.modes:
            s = m.summary(mode, scenario.key)
            cells += f"  | {s.rps:>8.0f} {s.p50_ms:>8.2f} {s.p99_ms:>8.2f}"
        print(f"   {scenario.label:<22}{cells}")
    bad = {
        f"{scenario.label} ({mode})": m.summary(mode, scenario.key).bad
        for mode in m.modes
        for scenario in scenarios
        if m.summary(mode, scenario.key).bad
    }
    print("   errors: " + (", ".join(f"{k}: {v}" for k, v in bad.items()) if bad else "none (all 2xx)"))


def baseline_of(scenario: Scenario) -> str:
    """The scenario whose p50 this one's added latency is measured from."""
    return "direct" if scenario.key == "no-plugin" else "no-plugin"


def judgement(scenario: Scenario, added_ms: float, raw_ms: float, judged: bool) -> str:
    """The text after a scenario's added latency: its ratio to raw gRPC and, if judged, the target."""
    if scenario.hook_calls == 0:
        target = f"target <= {GATEWAY_TARGET_MS:.1f} ms"
        return f"{'':<22}{target}  {verdict(added_ms <= GATEWAY_TARGET_MS)}" if judged else ""
    ratio = added_ms / scenario.hook_calls / raw_ms
    if scenario.hook_calls > 1:
        return f"  = {ratio:>5.2f}x raw gRPC per hook call ({scenario.hook_calls} calls; information)"
    target = f"{'':<7}target <= {HOOK_TARGET_RATIO:.1f}x  {verdict(ratio <= HOOK_TARGET_RATIO)}"
    return f"  = {ratio:>5.2f}x raw gRPC" + (target if judged else "")


def print_added(m: Measurements, scenarios: list[Scenario], raw_ms: float, mode: str, judged: bool) -> None:
    """Added p50 latency of the gateway and of each plugin scenario in one mode, with the targets."""
    if judged:
        note = "unloaded: judged against the targets"
    else:
        note = "information: the gateway is saturated, so this includes queueing behind other requests"
    print(f"   -c{m.modes[mode]} ({note}):")
    for scenario in scenarios[1:]:
        base = baseline_of(scenario)
        added = m.summary(mode, scenario.key).p50_ms - m.summary(mode, base).p50_ms
        line = f"     {scenario.label:<22} vs {base:<10} {added:>+8.3f} ms"
        print(line + judgement(scenario, added, raw_ms, judged))


def print_latency(m: Measurements, scenarios: list[Scenario], raw: RawGrpc, args: argparse.Namespace) -> None:
    """Print the raw gRPC baseline and the added latency in both modes."""
    raw_ms = statistics.median(raw.block_p50s_ms)
    calls = max(1, args.grpc_calls // args.rounds) * args.rounds
    print(
        f"\n2. Raw gRPC round trip: grpc.aio PreAuth to a no-op plugin process started by PluginHost in "
        f"this process,\n   sequential, gateway-shaped request, {calls} calls in {args.rounds} blocks "
        f"(one after each round): p50 {raw_ms * 1000:.0f} µs\n   (median of block p50s: "
        + ", ".join(f"{p * 1000:.0f}" for p in raw.block_p50s_ms)
        + " µs)"
    )
    print("\n3. Added latency at p50 = scenario p50 - baseline p50 (medians)")
    print_added(m, scenarios, raw_ms, "latency", judged=True)
    print_added(m, scenarios, raw_ms, "load", judged=False)


def print_memory(sampler: RssSampler) -> None:
    """Print the gateway's peak RSS and the plugin processes' for information."""
    mib = 2**20
    print(
        f"\n4. Memory, sampled every {SAMPLE_INTERVAL_S * 1000:.0f} ms during the wrk runs: gateway "
        f"(solstice serve) RSS {sampler.gateway_idle / mib:.1f} MiB before load, peak "
        f"{sampler.gateway_peak / mib:.1f} MiB"
    )
    peaks = ", ".join(f"{slug} {rss / mib:.1f}" for slug, rss in sampler.plugin_peaks.items())
    total = sum(sampler.plugin_peaks.values()) / mib
    print(f"   plugin processes' peak RSS (information), MiB: {peaks}; {total:.1f} in all")


# -- main --------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    """Start the mock upstream and the gateway, set up the scenarios, measure, print."""
    cancel_on_sigterm()
    wrk = require_wrk()
    go_binary = args.go_binary.resolve() if args.go_binary else await build_go_plugin(workdir)
    noop = write_noop_plugin(workdir)
    token = f"sol_bench_{secrets.token_urlsafe(24)}"
    mock_url = f"http://127.0.0.1:{free_port()}"
    gateway_port = free_port()
    gateway = f"http://127.0.0.1:{gateway_port}"
    python = sys.executable
    mock_log, serve_log = workdir / "mock-llm.log", workdir / "serve.log"
    mock_args = [python, "-m", "solstice", "mock-llm", "--port", mock_url.rsplit(":", 1)[1]]
    async with contextlib.AsyncExitStack() as stack:
        mock = await stack.enter_async_context(started(mock_args, mock_log))
        serve_args = [python, "-m", "solstice", "serve"]
        serve = await stack.enter_async_context(
            # The mock upstream is a local model server on loopback: permit it by name.
            started(
                serve_args,
                serve_log,
                serve_env(workdir, gateway_port, token, SOLSTICE_UPSTREAM_INTERNAL_ALLOWLIST="127.0.0.1"),
            )
        )
        await wait_ready(f"{mock_url}/v1/models", mock, mock_log)
        await wait_ready(f"{gateway}/readyz", serve, serve_log)
        setup = await set_up_gateway(gateway, token, mock_url, plugin_defs(noop, go_binary))
        await check_routes(setup, gateway)
        script = write_wrk_script(workdir, setup.key)
        sampler = RssSampler(serve.pid, setup.plugin_pids)
        raw = await stack.enter_async_context(raw_grpc(noop, setup.key))
        measurements = await measure(args, wrk, script, setup.scenarios, sampler, raw)
        if serve.returncode is not None:
            raise RuntimeError(f"solstice serve exited during the runs:\n{read_log(serve_log)}")
    print_table(measurements, setup.scenarios, args)
    print_latency(measurements, setup.scenarios, raw, args)
    print_memory(sampler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, run everything, print the total time."""
    args = parse_args(argv)
    use_venv_python()
    configure_logging("warning")
    print_header()
    return run_timed(
        lambda workdir: bench(args, workdir),
        "solstice-bench-gw-",
        "interrupted; every process this benchmark started was stopped",
    )


if __name__ == "__main__":
    sys.exit(main())
