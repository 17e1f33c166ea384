"""Crafted layers cannot exhaust memory or CPU: header sizes and decompressed bytes are bounded,
and an extraction stops when its pull is cancelled, times out, or the server is told to stop."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import tarfile
import threading
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
import zstandard
from aiohttp import web

from solstice.oci import media
from solstice.oci.errors import ContentError, RegistryError
from solstice.oci.puller import OciConfig, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.conftest import wait_for, wait_until
from tests.oci.fakes import serving
from tests.oci.images import OCI_MANIFEST, sha256_digest
from tests.oci.registries import Registry
from tests.server import Server

MIB = 1 << 20
GIB = 1 << 30
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
LIMIT_SETTING = "OCI_PLUGINS_MAX_DECOMPRESSED_BYTES"


# --- crafting layers ------------------------------------------------------------------------------


def gzip_repeating(prefix: bytes, block: bytes, count: int, suffix: bytes = b"") -> bytes:
    """gzip of prefix + block * count + suffix, made in a moment however large it inflates.

    After a full flush deflate forgets its history, so each flushed copy of `block` compresses to
    the same bytes and one copy serves them all. The trailer's CRC is not computed (a few
    seconds per GiB): every reader under test must stop long before it reaches it.
    """
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    head = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
    body = deflate.compress(block) + deflate.flush(zlib.Z_FULL_FLUSH)
    tail = deflate.compress(suffix) + deflate.flush()
    size = (len(prefix) + len(block) * count + len(suffix)) & 0xFFFFFFFF
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
    return header + head + body * count + tail + (0).to_bytes(4, "little") + size.to_bytes(4, "little")


def zero_file_layer(size: int, media_type: str) -> bytes:
    """A tar layer holding one file of `size` zero bytes (the data and end blocks are all zeros)."""
    info = tarfile.TarInfo("zeros")
    info.size = size
    header = info.tobuf(tarfile.PAX_FORMAT)
    blocks = size // MIB + 1  # covers the padding and the two end-of-archive blocks
    if media_type == GZIP:
        return gzip_repeating(header, bytes(MIB), blocks)
    compressor = zstandard.ZstdCompressor(level=1).compressobj()
    parts = [compressor.compress(header)]
    parts += [compressor.compress(bytes(MIB)) for _ in range(blocks)]
    return b"".join([*parts, compressor.flush()])


def meta_bomb_layer(kind: bytes, mebibytes: int) -> bytes:
    """A gzip layer whose first header is a pax record (x) or GNU long name (L) of ~`mebibytes` MiB."""
    filler = mebibytes * MIB
    if kind == tarfile.XHDTYPE:
        # "<length> path=<filler>\n", the length counting its own digits.
        length = filler + len(" path=\n") + 9
        assert len(str(length)) == 9
        lead, trail = f"{length} path=".encode(), b"\n"
    else:
        length, lead, trail = filler + 1, b"", b"\0"
    info = tarfile.TarInfo("././@LongLink" if kind == tarfile.GNUTYPE_LONGNAME else "PaxHeaders/plugin")
    info.type = kind
    info.size = length
    header = info.tobuf(tarfile.USTAR_FORMAT)
    plugin = tarfile.TarInfo("plugin")
    plugin.size = 8
    suffix = (
        trail + bytes(-length % 512) + plugin.tobuf(tarfile.USTAR_FORMAT) + b"#!/bin/\n" + bytes(504 + 1024)
    )
    return gzip_repeating(header + lead, b"A" * MIB, mebibytes, suffix)


def push_layer(registry: Registry, repo_tag: str, layer: bytes, media_type: str) -> str:
    """Push a one-layer image (Entrypoint /plugin) with plain distribution API calls; its digest."""
    repo, tag = repo_tag.split(":")
    config = json.dumps({"config": {"Entrypoint": ["/plugin"]}}).encode()
    with httpx.Client(base_url=registry.url, timeout=120) as client:
        for blob in (config, layer):
            started = client.post(f"/v2/{repo}/blobs/uploads/")
            started.raise_for_status()
            url = httpx.URL(registry.url).join(started.headers["location"])
            url = url.copy_add_param("digest", sha256_digest(blob))
            client.put(
                url, content=blob, headers={"Content-Type": "application/octet-stream"}
            ).raise_for_status()
        manifest = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {
                    "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": sha256_digest(config),
                    "size": len(config),
                },
                "layers": [{"mediaType": media_type, "digest": sha256_digest(layer), "size": len(layer)}],
            }
        ).encode()
        answer = client.put(
            f"/v2/{repo}/manifests/{tag}", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        answer.raise_for_status()
    return sha256_digest(manifest)


# --- watching the process ----------------------------------------------------------------------


@contextmanager
def peak_rss_growth() -> Iterator[Callable[[], int]]:
    """Samples this process's RSS in a thread; yields a function giving the peak growth so far."""
    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            peak[0] = max(peak[0], process.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield lambda: peak[0] - baseline
    finally:
        done.set()
        sampler.join()


def extraction_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("oci-extract") and t.is_alive()]


def puller(tmp_path: Path, *, limit: int = 64 * MIB, total_timeout: float = 600) -> Puller:
    client = ClientOptions(retries=0, timeout=30, total_timeout=total_timeout)
    return Puller(OciConfig(tmp_path / "cache", client=client, max_decompressed_bytes=limit))


# --- header sizes ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [tarfile.XHDTYPE, tarfile.GNUTYPE_LONGNAME], ids=["pax", "gnu-long-name"])
async def test_a_huge_pax_or_long_name_header_is_refused_unread(
    registry: Registry, tmp_path: Path, kind: bytes
) -> None:
    layer = meta_bomb_layer(kind, 512)  # ~0.5 MB of gzip holding a 512 MiB header
    push_layer(registry, "plugins/bomb:v1", layer, GZIP)
    with peak_rss_growth() as growth:
        with pytest.raises(ContentError) as caught:
            async with asyncio.timeout(300):
                await puller(tmp_path, limit=4 * GIB).pull(
                    parse_reference(f"oci://{registry.host}/plugins/bomb:v1")
                )
        peak = growth()
    assert peak < 128 * MIB, f"RSS grew by {peak / MIB:.0f} MiB"
    assert "pax or GNU long-name header" in str(caught.value) and str(1 << 20) in str(caught.value)


# --- decompressed bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize("media_type", [GZIP, ZSTD], ids=["gzip", "zstd"])
async def test_a_layer_of_zeros_stops_at_the_decompressed_limit(
    registry: Registry, tmp_path: Path, media_type: str
) -> None:
    layer = zero_file_layer(10 * GIB, media_type)  # ~10 MB of gzip, ~0.3 MB of zstd
    push_layer(registry, "plugins/zeros:v1", layer, media_type)
    p = puller(tmp_path, limit=64 * MIB)
    with peak_rss_growth() as growth:
        with pytest.raises(ContentError) as caught:
            # The test's own bound: only the limit can end this pull in time.
            async with asyncio.timeout(120):
                await p.pull(parse_reference(f"oci://{registry.host}/plugins/zeros:v1"))
        peak = growth()
    message = str(caught.value)
    assert LIMIT_SETTING in message and str(64 * MIB) in message, message
    assert message.count(". ") == 0 and message.count("; ") <= 1  # one sentence
    assert peak < 256 * MIB, f"RSS grew by {peak / MIB:.0f} MiB"
    assert not extraction_threads()
    assert p.cache.entries() == []


# --- cancellation -------------------------------------------------------------------------------


async def test_a_cancelled_pull_stops_its_extraction_and_a_retry_never_runs_beside_it(
    registry: Registry, tmp_path: Path
) -> None:
    push_layer(registry, "plugins/long:v1", zero_file_layer(10 * GIB, GZIP), GZIP)
    p = puller(tmp_path, limit=1 << 40)  # no limit: only cancellation ends these pulls
    reference = parse_reference(f"oci://{registry.host}/plugins/long:v1")
    most = [0]

    async def watch() -> None:
        while True:
            most[0] = max(most[0], len(extraction_threads()))
            await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        first = asyncio.create_task(p.pull(reference))
        await wait_for(extraction_threads, 120, what="the first extraction")
        retry = asyncio.create_task(p.pull(reference))  # the same digest, while the first runs
        # Time for the retry to start a second extraction if it could; the watcher would count it.
        await asyncio.sleep(0.5)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await wait_for(extraction_threads, 120, what="the retry's extraction")
        retry.cancel()
        with pytest.raises(asyncio.CancelledError):
            await retry
        # Awaiting a cancelled pull waits for its thread: nothing is left running.
        assert not extraction_threads()
    finally:
        watcher.cancel()
    assert most[0] == 1, f"{most[0]} extractions of one digest ran at once"


async def test_the_total_timeout_stops_the_extraction(registry: Registry, tmp_path: Path) -> None:
    push_layer(registry, "plugins/slow:v1", zero_file_layer(10 * GIB, GZIP), GZIP)
    p = puller(tmp_path, limit=1 << 40, total_timeout=3)
    with pytest.raises(RegistryError, match="took longer than 3 s"):
        await p.pull(parse_reference(f"oci://{registry.host}/plugins/slow:v1"))
    assert not extraction_threads()


def _sigterm_stops(server: Server) -> None:
    """Send SIGTERM and wait for a clean exit (status 0), with the server's log on failure."""
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"SIGTERM did not stop the server:\n{server.log()[-3000:]}") from None
    assert code == 0, server.log()[-3000:]


def test_sigterm_stops_a_server_in_the_middle_of_an_extraction(registry: Registry, tmp_path: Path) -> None:
    push_layer(registry, "plugins/long:v1", zero_file_layer(10 * GIB, GZIP), GZIP)
    (tmp_path / "data").mkdir()
    server = Server(
        tmp_path / "data",
        plugins=(f"long=oci://{registry.host}/plugins/long:v1",),
        env={LIMIT_SETTING: str(1 << 40), "OCI_PLUGINS_TOTAL_TIMEOUT": "3600"},
    )

    def extracting() -> bool:
        assert server.proc.poll() is None, server.log()
        # The entry directory is made just before extraction starts.
        return any((tmp_path / "data" / "oci-cache").rglob("entry"))

    try:
        wait_until(extracting, 120, server.log, what="an extraction to start")
        _sigterm_stops(server)
    finally:
        server.stop()


@contextmanager
def trickling_registry() -> Iterator[tuple[str, threading.Event]]:
    """A registry whose one plugin (plugins/slow:v1) downloads at a byte per half second (half an hour).

    Yields its host and an event set when the download has begun."""
    downloading = threading.Event()
    body = b"#!/bin/sh\n" + b"#" * 4096
    layer = {"mediaType": media.PLUGIN_BINARY, "digest": sha256_digest(body), "size": len(body)}
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": media.OCI_EMPTY, "digest": media.EMPTY_JSON_DIGEST, "size": 2},
            "layers": [layer],
        }
    ).encode()

    async def handle(request: web.Request) -> web.StreamResponse:
        if request.path == "/v2/":
            return web.Response(text="{}")
        if request.path.startswith("/v2/plugins/slow/manifests/"):
            headers = {"Docker-Content-Digest": sha256_digest(manifest)}
            return web.Response(body=manifest, content_type=OCI_MANIFEST, headers=headers)
        if request.path == f"/v2/plugins/slow/blobs/{layer['digest']}":
            response = web.StreamResponse(headers={"Content-Length": str(len(body))})
            await response.prepare(request)
            downloading.set()
            for byte in body:
                await response.write(bytes([byte]))
                await asyncio.sleep(0.5)
            return response
        return web.Response(status=404, text='{"errors":[{"code":"BLOB_UNKNOWN","message":"no"}]}')

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    loop = asyncio.new_event_loop()
    hosts: list[str] = []
    stop = asyncio.Event()

    async def run() -> None:
        async with serving(app) as host:
            hosts.append(host)
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(run(),), daemon=True)
    thread.start()
    wait_until(lambda: hosts, what="the trickling registry to start")
    try:
        yield hosts[0], downloading
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=30)


def test_sigterm_cancels_an_api_request_waiting_on_a_pull(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    server = Server(
        tmp_path / "data",
        env={"OCI_PLUGINS_TOTAL_TIMEOUT": "3600", "SOLSTICE_SHUTDOWN_TIMEOUT": "2"},
    )
    answers: list[object] = []

    def create(host: str) -> None:
        body = {"name": "Slow", "command": f"oci://{host}/plugins/slow:v1", "hook_type": "pre_auth"}
        try:
            with server.client() as client:
                answers.append(client.post("/api/v1/plugins", json=body, timeout=600).status_code)
        except httpx.HTTPError as exc:  # the server closes the connection as it goes
            answers.append(exc)

    try:
        with trickling_registry() as (host, downloading):
            server.wait_ready()
            creating = threading.Thread(target=create, args=(host,), daemon=True)
            creating.start()
            assert downloading.wait(timeout=60), f"no download started:\n{server.log()}"
            _sigterm_stops(server)
            creating.join(timeout=30)
            assert answers, "the create request never ended"
    finally:
        server.stop()
