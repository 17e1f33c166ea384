"""OCI plugin pulls: cold pull beside `skopeo copy`, warm loads from the cache, memory while pulling.

A CNCF distribution registry (Debian `docker-registry`) runs on 127.0.0.1 for the run. Plugins
are random bytes (incompressible, so layer size = plugin size) pushed as images by `solstice oci
push`'s code. Cold pulls alternate with `skopeo copy` of the same image to an OCI layout, so both
see the same machine state; the result is a ratio. Memory is measured in a fresh process per pull.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import httpx
from support import death_signal_prefix, free_port, run_timed, stop_process

from solstice.logs import configure_logging
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.push import push
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient

MIB = 1 << 20
READY_TIMEOUT_S = 10.0
MEMORY_TARGET_MIB = 50


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Sizes and rounds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold-mib", type=int, default=20, help="plugin size of the cold-pull comparison")
    parser.add_argument("--big-mib", type=int, default=200, help="plugin size of the memory measurement")
    parser.add_argument("--rounds", type=int, default=5, help="cold pulls (and skopeo copies)")
    parser.add_argument("--warm", type=int, default=50, help="warm loads")
    return parser.parse_args(argv)


@contextlib.asynccontextmanager
async def registry(workdir: Path) -> AsyncIterator[str]:
    """A registry without auth on 127.0.0.1; yields host:port, stopped by PID at the end."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed: apt-get install docker-registry skopeo")
    host = f"127.0.0.1:{free_port()}"
    config = workdir / "registry.yml"
    config.write_text(
        "version: 0.1\nlog: {level: error, accesslog: {disabled: true}}\n"
        f"storage: {{filesystem: {{rootdirectory: {workdir / 'registry'}}}}}\n"
        f"http: {{addr: {host}, secret: {secrets.token_hex(16)}}}\n"
    )
    proc = await asyncio.create_subprocess_exec(
        *death_signal_prefix(), binary, "serve", str(config),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        await wait_ready(f"http://{host}/v2/", proc)
        yield host
    finally:
        await stop_process(proc)


async def wait_ready(url: str, proc: asyncio.subprocess.Process) -> None:
    """Poll the registry until /v2/ answers."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    async with httpx.AsyncClient(trust_env=False) as client:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise SystemExit(f"docker-registry exited with {proc.returncode}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get(url)).status_code == 200:
                    return
            await asyncio.sleep(0.05)
    raise SystemExit(f"docker-registry did not answer {url} in {READY_TIMEOUT_S:.0f} s")


def random_plugin(path: Path, mib: int) -> Path:
    """An executable-looking file of `mib` MiB of random bytes."""
    with path.open("wb") as out:
        out.write(b"#!/bin/sh\nexit 0\n")
        for _ in range(mib):
            out.write(os.urandom(MIB))
    path.chmod(0o755)
    return path


async def push_image(host: str, repository: str, plugin: Path) -> str:
    """Push `plugin` as a FROM-scratch style image tagged v1; returns the digest."""
    async with RegistryClient(host, None, ClientOptions()) as client:
        return await push(client, repository, "v1", [(plugin, None)], fmt="image")


def config_for(cache: Path) -> OciConfig:
    """A puller configuration with its own cache directory."""
    return OciConfig(cache_dir=cache, client=ClientOptions(retries=0))


async def timed_pull(reference: str, cache: Path) -> float:
    """Seconds for one pull into `cache`."""
    began = time.perf_counter()
    pulled = await Puller(config_for(cache)).pull(parse_reference(reference))
    elapsed = time.perf_counter() - began
    if pulled.cached:
        raise RuntimeError("a cold pull was answered from the cache")
    return elapsed


async def timed_skopeo(host: str, repository: str, dest: Path) -> float:
    """Seconds for `skopeo copy` of the same image into an OCI layout."""
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is not installed: apt-get install skopeo")
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        skopeo, "copy", "--quiet", "--insecure-policy", "--src-tls-verify=false",
        f"docker://{host}/{repository}:v1", f"oci:{dest}:v1",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo copy failed: {err.decode(errors='replace')}")
    return time.perf_counter() - began


async def cold(args: argparse.Namespace, host: str, workdir: Path) -> None:
    """Cold pulls beside skopeo copies, interleaved, and the ratio of their medians."""
    plugin = random_plugin(workdir / "cold-plugin", args.cold_mib)
    await push_image(host, "bench/cold", plugin)
    reference = f"oci://{host}/bench/cold:v1"
    ours: list[float] = []
    theirs: list[float] = []
    for number in range(args.rounds):
        pair = [
            ("solstice", lambda n=number: timed_pull(reference, workdir / f"cache-{n}")),
            ("skopeo", lambda n=number: timed_skopeo(host, "bench/cold", workdir / f"layout-{n}")),
        ]
        for name, run in pair if number % 2 == 0 else reversed(pair):
            (ours if name == "solstice" else theirs).append(await run())
        shutil.rmtree(workdir / f"cache-{number}")
        shutil.rmtree(workdir / f"layout-{number}")
    ours_s, theirs_s = statistics.median(ours), statistics.median(theirs)
    print(f"1. Cold pull of a {args.cold_mib} MiB plugin image, median of {args.rounds} (interleaved):")
    print(f"   solstice (pull, verify, extract):  {ours_s * 1000:8.1f} ms   runs: {_ms(ours)}")
    print(f"   skopeo copy to an OCI layout:      {theirs_s * 1000:8.1f} ms   runs: {_ms(theirs)}")
    print(f"   ratio solstice / skopeo:           {ours_s / theirs_s:8.2f}x")
    await warm(args, reference, workdir / "warm-cache")


async def warm(args: argparse.Namespace, reference: str, cache: Path) -> None:
    """Loads answered by the cache: by tag (one HEAD to re-resolve it) and by digest (no I/O)."""
    puller = Puller(config_for(cache))
    first = await puller.pull(parse_reference(reference))
    pinned = reference.rsplit(":", 1)[0] + f"@{first.digest}"
    results = {}
    for label, ref in (("by tag (re-resolved with one HEAD)", reference), ("by digest", pinned)):
        samples = []
        for _ in range(args.warm):
            began = time.perf_counter()
            pulled = await puller.pull(parse_reference(ref))
            samples.append(time.perf_counter() - began)
            if not pulled.cached:
                raise RuntimeError("a warm load downloaded")
        results[label] = samples
    print(f"\n2. Warm load from the cache, median of {args.warm} (p90):")
    for label, samples in results.items():
        p90 = statistics.quantiles(samples, n=10)[-1]
        print(f"   {label:<36} {statistics.median(samples) * 1000:7.2f} ms ({p90 * 1000:.2f})")


def _ms(samples: list[float]) -> str:
    return ", ".join(f"{s * 1000:.0f}" for s in samples)


# -- memory, measured in a child process so nothing else shares its peak --------------------------


def _rss_kib() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def _child_pull(reference: str, cache: str) -> None:
    puller = Puller(config_for(Path(cache)))
    before = _rss_kib()
    pulled = await puller.pull(parse_reference(reference))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"before_kib": before, "peak_kib": peak, "size": pulled.path.stat().st_size}))


async def memory(args: argparse.Namespace, host: str, workdir: Path) -> None:
    """Peak RSS growth of a fresh process pulling the big plugin."""
    plugin = random_plugin(workdir / "big-plugin", args.big_mib)
    await push_image(host, "bench/big", plugin)
    plugin.unlink()
    reference = f"oci://{host}/bench/big:v1"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--child-pull", reference, str(workdir / "big-cache"),
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError("the memory measurement process failed")
    result = json.loads(out.decode().strip().splitlines()[-1])
    growth = (result["peak_kib"] - result["before_kib"]) / 1024
    verdict = "met" if growth < MEMORY_TARGET_MIB else "NOT met"
    print(f"\n3. Pulling a {args.big_mib} MiB plugin image in a fresh process:")
    print(f"   RSS before {result['before_kib'] / 1024:.1f} MiB, peak {result['peak_kib'] / 1024:.1f} MiB")
    print(f"   peak growth {growth:.1f} MiB   target < {MEMORY_TARGET_MIB} MiB  {verdict}")


async def bench(args: argparse.Namespace, workdir: Path) -> None:
    """Start the registry, run the three measurements."""
    async with registry(workdir) as host:
        await cold(args, host, workdir)
        await memory(args, host, workdir)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point (also the child of the memory measurement, with --child-pull)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging("warning")
    if argv[:1] == ["--child-pull"]:
        asyncio.run(_child_pull(argv[1], argv[2]))
        return 0
    args = parse_args(argv)
    skopeo = subprocess.run(["skopeo", "--version"], capture_output=True, text=True, check=False)
    tools = skopeo.stdout.strip() or "skopeo missing"
    print(
        f"Solstice OCI benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {tools}, "
        "registry: docker-registry on 127.0.0.1\n"
    )
    return run_timed(lambda workdir: bench(args, workdir), "solstice-bench-oci-", "interrupted")


if __name__ == "__main__":
    sys.exit(main())
