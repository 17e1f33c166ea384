"""The plugin host: the set of supervised plugins and the typed client to call them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from types import TracebackType
from typing import TypeVar

import structlog

from solstice.hooks import AGENT_HOOK, ENDPOINT_HOOK, OBJECT_HOOK, TASK_HOOK
from solstice.host.client import PluginClient
from solstice.host.containment import sweep_dead_hosts
from solstice.host.errors import PluginCallError, PluginNotLoadedError
from solstice.host.oci_config import config_from_settings
from solstice.host.service_link import ServiceHandler
from solstice.host.spec import PluginSpec
from solstice.host.supervisor import PluginStatus, PluginSupervisor
from solstice.oci.puller import OciConfig, Puller, cache_dir_of
from solstice.protocol import pb
from solstice.protocol.handshake import NOT_CONFIGURED
from solstice.security.policy import Policy
from solstice.settings import Settings, get_settings

log = structlog.get_logger("solstice.host")

_T = TypeVar("_T")


class HookClient:
    """Calls one plugin's hooks on whichever instance is serving when the call starts."""

    def __init__(self, supervisor: PluginSupervisor) -> None:
        self._supervisor = supervisor

    @property
    def slug(self) -> str:
        """The plugin this client calls."""
        return self._supervisor.spec.slug

    async def _run(self, hook: str, config_id: str, call: Callable[[PluginClient], Awaitable[_T]]) -> _T:
        """`call` on the serving instance's client; resends `config_id` once if the plugin lacks it."""
        supervisor = self._supervisor
        started = time.perf_counter()
        try:
            instance = supervisor.acquire(hook)
            generation = instance.generations.get(config_id, 0)
            try:
                try:
                    return await call(instance.client)
                except PluginCallError as exc:
                    if exc.code != NOT_CONFIGURED:
                        raise
                    # The plugin lacks this configuration: a grpc:// server restarted behind the
                    # same address, or it evicted an override. Send it, then try once more.
                    await instance.reconfigure(config_id, generation)
                    return await call(instance.client)
            finally:
                instance.release()
        except PluginCallError as exc:
            supervisor.count_error(hook, exc.code)
            raise
        finally:
            supervisor.observe(hook, time.perf_counter() - started)

    async def pre_auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, timeout: float | None = None
    ) -> pb.HookResponse:
        """Run the plugin's pre_auth hook (`timeout` in seconds overrides the plugin's deadline)."""
        return await self._run("pre_auth", ctx.config_id, lambda c: c.pre_auth(ctx, request, timeout))

    async def auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, credential: str, timeout: float | None = None
    ) -> pb.AuthResponse:
        """Run the plugin's auth hook."""
        return await self._run("auth", ctx.config_id, lambda c: c.auth(ctx, request, credential, timeout))

    async def post_auth(
        self, ctx: pb.RequestContext, request: pb.HttpRequest, timeout: float | None = None
    ) -> pb.HookResponse:
        """Run the plugin's post_auth hook."""
        return await self._run("post_auth", ctx.config_id, lambda c: c.post_auth(ctx, request, timeout))

    async def on_response(
        self,
        ctx: pb.RequestContext,
        request: pb.HttpRequest,
        response: pb.HttpResponse,
        phase: pb.ResponsePhase = pb.RESPONSE_PHASE_COMPLETE,
        chunk_index: int = 0,
        timeout: float | None = None,
    ) -> pb.HookResponse:
        """Run the plugin's on_response hook."""
        return await self._run(
            "on_response",
            ctx.config_id,
            lambda c: c.on_response(ctx, request, response, phase, chunk_index, timeout),
        )

    async def data_collection(
        self, records: Sequence[pb.ProxyRecord], config_id: str = "", timeout: float | None = None
    ) -> int:
        """Send the plugin a batch of proxy records; returns how many it accepted."""
        return await self._run(
            "data_collection", config_id, lambda c: c.data_collection(records, config_id, timeout)
        )

    async def handle_endpoint(
        self, request: pb.EndpointRequest, timeout: float | None = None
    ) -> pb.HttpResponse:
        """Serve one request to a route the plugin declared, answered whole."""
        return await self._run(
            ENDPOINT_HOOK, request.context.config_id, lambda c: c.handle_endpoint(request, timeout)
        )

    async def run_task(self, request: pb.TaskRequest, timeout: float) -> pb.TaskResult:
        """Run one due task of a schedule, within `timeout` seconds."""
        return await self._run(TASK_HOOK, "", lambda c: c.run_task(request, timeout))

    async def handle_object_hook(
        self, request: pb.ObjectHookRequest, timeout: float
    ) -> pb.ObjectHookResponse:
        """Tell the plugin of one change to an object; before_* answers decide it."""
        return await self._run(OBJECT_HOOK, "", lambda c: c.handle_object_hook(request, timeout))

    def handle_endpoint_stream(
        self, request: pb.EndpointRequest, timeout: float | None = None
    ) -> AsyncGenerator[pb.EndpointChunk, None]:
        """Serve one request to a streamed route; the instance stays in use until the stream ends."""
        return self._run_stream(
            ENDPOINT_HOOK,
            request.context.config_id,
            lambda client: client.handle_endpoint_stream(request, timeout),
        )

    def handle_agent(self, request: pb.AgentRequest, timeout: float) -> AsyncGenerator[pb.AgentChunk, None]:
        """Send one chat turn to an agent; the instance stays in use until its answer ends."""
        return self._run_stream(AGENT_HOOK, "", lambda client: client.handle_agent(request, timeout))

    async def _run_stream(
        self, hook: str, config_id: str, open_stream: Callable[[PluginClient], AsyncGenerator[_T, None]]
    ) -> AsyncGenerator[_T, None]:
        supervisor = self._supervisor
        started = time.perf_counter()
        try:
            instance = supervisor.acquire(hook)
            try:
                generation = instance.generations.get(config_id, 0)
                stream = open_stream(instance.client)
                try:
                    first = await anext(stream, None)
                except PluginCallError as exc:
                    if exc.code != NOT_CONFIGURED:
                        raise
                    # As in _run: the configuration is sent once more, before anything was relayed.
                    await instance.reconfigure(config_id, generation)
                    stream = open_stream(instance.client)
                    first = await anext(stream, None)
                async with contextlib.aclosing(stream):
                    if first is None:
                        return
                    yield first
                    async for chunk in stream:
                        yield chunk
            finally:
                instance.release()
        except PluginCallError as exc:
            supervisor.count_error(hook, exc.code)
            raise
        finally:
            supervisor.observe(hook, time.perf_counter() - started)


class PluginHost:
    """Loads, reloads and unloads plugins by slug; use as an async context manager."""

    def __init__(
        self, settings: Settings | None = None, oci: OciConfig | None = None, policy: Policy | None = None
    ) -> None:
        self.settings = settings or get_settings()
        self._plugins: dict[str, PluginSupervisor] = {}
        self._oci_config = oci
        self._puller: Puller | None = None
        self.policy = policy or Policy.from_settings(self.settings, [cache_dir_of(self.settings)])
        # A host killed with SIGKILL left its plugins' children running: end them now.
        sweep_dead_hosts(self.settings.plugin_cgroups)
        # Called with a slug after a plugin restarted on its own (not by load or reload).
        self.restart_listeners: list[Callable[[str], Awaitable[None]]] = []
        # Answers plugins' calls to the platform (the host service API); set by the runtime. Without
        # it, no plugin gets a service channel.
        self.services: ServiceHandler | None = None

    def puller(self) -> Puller:
        """The OCI puller of this host, created (with its cache directory) on first use."""
        if self._puller is None:
            self._puller = Puller(self._oci_config or config_from_settings(self.settings))
        return self._puller

    async def __aenter__(self) -> PluginHost:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def _get(self, slug: str) -> PluginSupervisor:
        try:
            return self._plugins[slug]
        except KeyError:
            raise PluginNotLoadedError(f"no plugin is loaded with slug {slug!r}") from None

    async def load(self, spec: PluginSpec) -> PluginStatus:
        """Start a plugin; it stays registered (state failed) when the start fails.

        Loading a slug that is already loaded replaces it like reload(), so clients keep working.
        """
        if spec.slug in self._plugins:
            return await self.reload(spec.slug, spec)
        supervisor = PluginSupervisor(
            spec, self.settings, self.puller, self.policy, self._restarted, lambda: self.services
        )
        self._plugins[spec.slug] = supervisor
        await supervisor.start()
        return supervisor.status()

    async def _restarted(self, slug: str) -> None:
        for listener in self.restart_listeners:
            try:
                await listener(slug)
            except Exception:  # a listener's failure must not stop supervision
                log.exception("restart listener failed", plugin=slug)

    async def reload(self, slug: str, spec: PluginSpec | None = None) -> PluginStatus:
        """Switch a plugin to a fresh instance (of `spec`, if given) without dropping calls."""
        supervisor = self._get(slug)
        await supervisor.reload(spec)
        return supervisor.status()

    async def unload(self, slug: str) -> None:
        """Stop a plugin and forget it."""
        supervisor = self._plugins.pop(slug, None)
        if supervisor is None:
            raise PluginNotLoadedError(f"no plugin is loaded with slug {slug!r}")
        await supervisor.stop()

    def client(self, slug: str) -> HookClient:
        """The typed hook client of a loaded plugin."""
        return HookClient(self._get(slug))

    def spec(self, slug: str) -> PluginSpec:
        """The spec a loaded plugin runs with."""
        return self._get(slug).spec

    def status(self, slug: str) -> PluginStatus:
        """The state of one plugin."""
        return self._get(slug).status()

    def statuses(self) -> list[PluginStatus]:
        """The state of every loaded plugin."""
        return [supervisor.status() for supervisor in self._plugins.values()]

    async def aclose(self) -> None:
        """Stop every plugin, in parallel."""
        supervisors = list(self._plugins.values())
        self._plugins.clear()
        await asyncio.gather(*(s.stop() for s in supervisors), return_exceptions=True)
