"""One started copy of a plugin: its channel, typed client and, for file://, its process."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import hmac
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import grpc
import jsonschema
from google.protobuf import empty_pb2

from solstice import safejson
from solstice.commands import GrpcCommand
from solstice.endpoints import Route, RouteError, check_routes
from solstice.host.client import PluginClient
from solstice.host.errors import (
    PluginCallError,
    PluginConfigError,
    PluginExitedError,
    PluginStartError,
    PluginUnreachableError,
    exited_text,
)
from solstice.host.output import PluginOutput
from solstice.host.process import LocalProcess, open_executable
from solstice.host.service_link import ServiceHandler, ServiceLink
from solstice.host.spec import PluginSpec
from solstice.oci.puller import Pulled
from solstice.protocol import gp, gp_grpc, pb
from solstice.protocol.transport import GRPC_OPTIONS
from solstice.security.paths import CheckedFile
from solstice.security.variables import passable
from solstice.settings import BASE_PLUGIN_ENV, Settings

# How long a failed start call waits to see whether the plugin process died.
_EXIT_SETTLE_S = 1.0

_RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 5000),
]


class PluginInstance:
    """A connected plugin; counts in-flight calls so a replaced instance can drain."""

    def __init__(
        self,
        spec: PluginSpec,
        channel: grpc.aio.Channel,
        client: PluginClient,
        target: str,
        process: LocalProcess | None = None,
    ) -> None:
        self.spec = spec
        self.channel = channel
        self.client = client
        self.target = target
        self.process = process
        self.info = pb.PluginInfo()
        # custom_endpoint: the routes the plugin declared, checked (see solstice.endpoints).
        self.routes: tuple[Route, ...] = ()
        self.started_at = time.time()
        self.inflight = 0
        # Bumped by each Configure of a config_id, so concurrent callers send it only once.
        self.generations: dict[str, int] = {}
        self._configure_lock = asyncio.Lock()
        self._draining = False
        self._idle = asyncio.Event()
        self._stdio: asyncio.Task[None] | None = None
        # Set for oci:// plugins: what was pulled to run this instance.
        self.pulled: Pulled | None = None
        self._on_close: list[Callable[[], None]] = []
        # The host service API stream, open while the instance serves a plugin that declared scopes.
        self.link: ServiceLink | None = None

    def on_close(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the instance has stopped (e.g. release its cache pin)."""
        self._on_close.append(callback)

    def release(self) -> None:
        """Mark one call as finished."""
        self.inflight -= 1
        if self._draining and self.inflight == 0:
            self._idle.set()

    async def reconfigure(self, config_id: str, seen_generation: int) -> None:
        """Send a configuration again, unless another caller did since `seen_generation`."""
        async with self._configure_lock:
            if self.generations.get(config_id, 0) == seen_generation:
                try:
                    config = self.spec.config_for(config_id)
                except KeyError:
                    raise PluginCallError(
                        f"plugin {self.spec.slug} has no configuration {config_id!r}",
                        slug=self.spec.slug,
                        hook="configure",
                        code="NOT_FOUND",
                    ) from None
                await self.client.configure(config, self.client.timeout, config_id)
                self.generations[config_id] = seen_generation + 1

    async def initialize(
        self, settings: Settings, timeout: float, services: ServiceHandler | None = None
    ) -> None:
        """Check health, open the stdio stream (local), read info, open the service link, configure."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while (problem := await self._check_before(deadline, settings.plugin_health_timeout)) is not None:
            if self.process is not None and self.process.returncode is not None:
                tail = self.process.output.last_lines()
                raise PluginExitedError(
                    exited_text(self.process.path, self.process.returncode, tail, "right after its handshake")
                )
            if time.monotonic() + delay >= deadline:
                raise PluginUnreachableError(self._unreachable_message(problem, timeout))
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
        if self.process is not None:
            self._stdio = asyncio.create_task(self._stream_stdio(self.process.output))
        try:
            self.info = await self.client.get_info(settings.plugin_configure_timeout)
            self.routes = tuple(routes_of(self.spec, self.info))
            if self.info.scopes and services is not None:
                # Before Configure, so that a plugin may already call the platform while configuring.
                self.link = ServiceLink(self.spec.slug, self.channel, services, self.info.scopes)
                self.client.name_link(self.link.token)
                self.link.start()
            for config_id in ("", *self.spec.overrides):
                config = self.spec.config_for(config_id)
                check_config(self.spec, self.info.config_schema_json, config, config_id)
                await self.client.configure(config, settings.plugin_configure_timeout, config_id)
        except PluginCallError as exc:
            if exc.code == "INVALID_ARGUMENT":
                raise PluginConfigError(f"plugin {self.spec.slug} rejected its config: {exc}") from None
            if exc.code in ("CANCELLED", "UNAVAILABLE"):  # what a peer that died mid-call leaves
                await self._raise_if_exited(exc.hook)
            raise PluginStartError(str(exc)) from None

    async def _raise_if_exited(self, hook: str) -> None:
        """A call cut short by the plugin's death says so, with its exit code and last output."""
        if self.process is None:
            return
        # The call fails as the connection drops, a moment before the exit is seen.
        code = await self.process.wait_exit(_EXIT_SETTLE_S)
        if code is not None:
            tail = self.process.output.last_lines()
            raise PluginExitedError(exited_text(self.process.path, code, tail, f"during {hook}"))

    async def _check_before(self, deadline: float, timeout: float) -> str | None:
        return await self.client.check_health(max(min(timeout, deadline - time.monotonic()), 0.05))

    def _unreachable_message(self, detail: str, timeout: float) -> str:
        if self.process is None:
            return (
                f"could not reach plugin {self.spec.slug} at {self.spec.command} within {timeout:g}s: "
                f"{detail}; is the plugin server running and reachable from this host?"
            )
        return (
            f"plugin {self.spec.slug} at {self.target} did not become healthy within {timeout:g}s: {detail}"
        )

    async def _stream_stdio(self, output: PluginOutput) -> None:
        # go-plugin plugins block once 64 KiB of output is unread, so keep reading.
        stub = gp_grpc.GRPCStdioStub(self.channel)
        names = {gp.StdioData.STDOUT: "stdout", gp.StdioData.STDERR: "stderr"}
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for chunk in stub.StreamStdio(empty_pb2.Empty()):
                output.feed(names.get(chunk.channel, "stderr"), chunk.data)

    async def close(self, settings: Settings, drain: bool = True) -> None:
        """Let in-flight calls finish (up to the drain timeout), then stop the plugin."""
        self._draining = True
        if drain and self.inflight > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), settings.plugin_drain_timeout)
        if self.link is not None:
            await self.link.close()
        if self.process is not None:
            await self.process.stop(self.channel, settings.plugin_stop_grace)
        if self._stdio is not None:
            self._stdio.cancel()
        await self.channel.close()
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            callback()


def routes_of(spec: PluginSpec, info: pb.PluginInfo) -> list[Route]:
    """The plugin's declared routes; PluginConfigError, which no restart mends, when one is unusable."""
    try:
        routes = check_routes([(endpoint.path, endpoint.methods) for endpoint in info.endpoints])
    except RouteError as exc:
        raise PluginConfigError(f"plugin {spec.slug} declares a route Solstice cannot serve: {exc}") from None
    # How each route is served travels with it, so the gateway never looks the declaration up again.
    return [
        dataclasses.replace(
            route,
            require_auth=endpoint.require_auth,
            stream=endpoint.stream,
            description=endpoint.description,
        )
        for route, endpoint in zip(routes, info.endpoints, strict=True)
    ]


def check_config(spec: PluginSpec, schema_json: str, config: Mapping[str, Any], config_id: str = "") -> None:
    """Raise PluginConfigError when a config does not match the schema the plugin reports."""
    if not schema_json:
        return
    try:
        schema = safejson.loads(schema_json)  # bounded: a plugin may report anything
        validator = jsonschema.Draft202012Validator(schema)
        error = jsonschema.exceptions.best_match(validator.iter_errors(dict(config)))
    except (ValueError, jsonschema.exceptions.SchemaError) as exc:
        raise PluginConfigError(f"plugin {spec.slug} reports an unusable config schema: {exc}") from None
    if error is not None:
        where = "/" + "/".join(str(p) for p in error.absolute_path)
        which = f"config override {config_id}" if config_id else "config"
        raise PluginConfigError(
            f"{which} of plugin {spec.slug} does not match the plugin's schema at {where}: {error.message}"
        )


async def verify_checksum(executable: CheckedFile, expected: str) -> None:
    """Raise a start error when the open file's SHA-256 differs from `expected`.

    The descriptor is hashed, not the path: the file hashed is the file that is executed.
    """
    wanted = expected.lower().removeprefix("sha256:")
    path = executable.path

    def digest() -> str:
        sha = hashlib.sha256()
        offset = 0
        while chunk := os.pread(executable.fd, 1 << 20, offset):
            sha.update(chunk)
            offset += len(chunk)
        return sha.hexdigest()

    try:
        actual = await asyncio.to_thread(digest)
    except OSError as exc:
        raise PluginStartError(f"cannot read {path} to verify its checksum: {exc.strerror or exc}") from None
    if not hmac.compare_digest(actual, wanted):
        raise PluginStartError(
            f"checksum mismatch: {path} has sha256 {actual}, but the plugin expects {wanted}; "
            "update the plugin's checksum or restore the file"
        )


async def start_local(
    spec: PluginSpec,
    path: str,
    settings: Settings,
    resolved: bool = False,
    services: ServiceHandler | None = None,
) -> PluginInstance:
    """Start a file:// plugin, handshake, connect and configure it.

    The file is opened once: its checks, its checksum and the exec all use that descriptor.
    `resolved` says the policy checked `path` as the end of its symlinks: it must still be.
    """
    with open_executable(path) as executable:
        if resolved and executable.path != path:
            raise PluginStartError(
                f"plugin path {path} changed while it was being started (it now leads to "
                f"{executable.path}); try again"
            )
        if spec.checksum:
            await verify_checksum(executable, spec.checksum)
        process = LocalProcess(path, PluginOutput(spec.slug), cgroups=settings.plugin_cgroups)
        base_env = settings.host_environment(
            (*BASE_PLUGIN_ENV, *passable(spec.env, settings.environ, spec.slug))
        )
        handshake = await process.start(base_env, settings.plugin_handshake_timeout, executable)
    channel = grpc.aio.insecure_channel(handshake.target, options=GRPC_OPTIONS)
    client = PluginClient(channel, spec.slug, spec.timeout_ms or settings.plugin_timeout_ms)
    instance = PluginInstance(spec, channel, client, handshake.target, process)
    try:
        await instance.initialize(settings, settings.plugin_handshake_timeout, services)
    except BaseException:
        await instance.close(settings, drain=False)
        raise
    return instance


async def connect_remote(
    spec: PluginSpec,
    command: GrpcCommand,
    settings: Settings,
    dial: str | None = None,
    services: ServiceHandler | None = None,
) -> PluginInstance:
    """Connect to a grpc:// plugin, check its health and configure it.

    `dial` is the gRPC target of the addresses the security policy checked; the plugin's own
    host:port stays the authority, as a proxy or mesh in front of it expects.
    """
    options: list[tuple[str, str | int]] = [*GRPC_OPTIONS, *_RECONNECT_OPTIONS]
    if dial:
        options = [*options, ("grpc.default_authority", command.target)]
    channel = grpc.aio.insecure_channel(dial or command.target, options=options)
    client = PluginClient(channel, spec.slug, spec.timeout_ms or settings.plugin_timeout_ms)
    instance = PluginInstance(spec, channel, client, command.target)
    try:
        await instance.initialize(settings, settings.plugin_connect_timeout, services)
    except BaseException:
        await instance.close(settings, drain=False)
        raise
    return instance
