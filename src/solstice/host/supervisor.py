"""Keeps one plugin running: start, health checks, crash restarts, reload and stop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import grpc
import structlog
from prometheus_client import Histogram

from solstice.commands import CommandError, FileCommand, GrpcCommand, OciCommand, parse_command
from solstice.endpoints import Route
from solstice.host.errors import (
    PluginCallError,
    PluginError,
    PluginStartError,
    PluginStoppedError,
    exited_text,
)
from solstice.host.instance import PluginInstance, connect_remote, start_local
from solstice.host.service_link import ServiceHandler
from solstice.host.spec import PluginSpec
from solstice.metrics import HOOK_DURATION, HOOK_ERRORS, HOOK_TIMEOUTS, PLUGIN_RESTARTS, PLUGIN_START_FAILURES
from solstice.oci.errors import OciError
from solstice.oci.puller import Puller
from solstice.oci.reference import OciReference
from solstice.protocol import pb
from solstice.security.policy import Policy, PolicyError, Verdict
from solstice.settings import Settings

log = structlog.get_logger("solstice.host")

# Gives the process's OCI puller, created on first use (most servers never run an oci:// plugin).
OciSource = Callable[[], Puller]

# An instance that stayed up this long resets the crash back-off.
_STABLE_AFTER_S = 60.0
# Failed health checks in a row after which a local plugin is restarted.
_UNHEALTHY_RESTART_AFTER = 3
# 2**16 times the first delay is far past any cap; larger exponents would overflow floats.
_MAX_BACKOFF_EXPONENT = 16


class PluginState(StrEnum):
    """Lifecycle states reported for a plugin."""

    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    RESTARTING = "restarting"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass(frozen=True)
class PluginStatus:
    """A point-in-time view of one supervised plugin."""

    slug: str
    command: str
    # The gRPC address being called: unix:/path for local plugins, host:port for remote ones.
    target: str | None
    state: PluginState
    last_error: str | None
    restarts: int
    pid: int | None
    uptime_s: float | None
    last_check_at: float | None
    last_check_latency_ms: float | None
    info: pb.PluginInfo | None
    # oci:// plugins: the manifest digest running, and warnings from the pull (stale cache).
    digest: str | None = None
    warnings: tuple[str, ...] = ()
    # custom_endpoint: the serving instance's routes, replaced with it on reload.
    routes: tuple[Route, ...] = ()


class PluginSupervisor:
    """Owns the running instance of one plugin and replaces it when needed.

    Launches run as tasks that stop() cancels; replaced instances drain in tasks the
    supervisor owns, so a caller that gives up cannot leave a process behind.
    """

    def __init__(
        self,
        spec: PluginSpec,
        settings: Settings,
        oci: OciSource | None = None,
        policy: Policy | None = None,
        on_restart: Callable[[str], Awaitable[None]] | None = None,
        services: Callable[[], ServiceHandler | None] = lambda: None,
    ) -> None:
        self.spec = spec
        # What answers the plugin's calls to the platform; asked at each start.
        self._services = services
        self.settings = settings
        self._oci = oci
        self._policy = policy
        self._warned: set[str] = set()
        self.policy_warnings: tuple[str, ...] = ()
        self.state = PluginState.STOPPED
        self.last_error: str | None = None
        self.restarts = 0
        self.last_check_at: float | None = None
        self.last_check_latency_ms: float | None = None
        self._instance: PluginInstance | None = None
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._launching: asyncio.Task[PluginInstance] | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._crash_streak = 0
        self._closed = False
        # What the last serving instance ran: a crash restart of the same command runs that digest.
        self._instance_digest: str | None = None
        self._instance_command = ""
        self._reconnecting = False
        # Told when the plugin came back on its own (crash restart), so stored status can follow.
        self._on_restart = on_restart
        self._durations: dict[str, Histogram] = {}

    # -- calls ---------------------------------------------------------------------------

    def acquire(self, hook: str) -> PluginInstance:
        """The serving instance, counted as busy until release(); raises if none serves."""
        instance = self._instance
        if instance is None:
            reason = f": {self.last_error}" if self.last_error else ""
            raise PluginCallError(
                f"plugin {self.spec.slug} is {self.state.value}{reason}",
                slug=self.spec.slug,
                hook=hook,
                code="UNAVAILABLE",
            )
        instance.inflight += 1
        return instance

    def observe(self, hook: str, seconds: float) -> None:
        """Record the duration of one hook call."""
        child = self._durations.get(hook)
        if child is None:
            child = self._durations[hook] = HOOK_DURATION.labels(self.spec.slug, hook)
        child.observe(seconds)

    def count_error(self, hook: str, code: str) -> None:
        """Record one failed hook call; an unreachable plugin is marked unhealthy at once."""
        HOOK_ERRORS.labels(self.spec.slug, hook, code).inc()
        if code == "DEADLINE_EXCEEDED":
            HOOK_TIMEOUTS.labels(self.spec.slug, hook).inc()
        instance = self._instance
        if code == "UNAVAILABLE" and instance is not None:
            self._unreachable(instance, f"a {hook} call found it unreachable")

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the plugin; on failure the state is failed, retries begin and the error is raised."""
        await self.reload()

    async def reload(self, spec: PluginSpec | None = None) -> None:
        """Start a new instance, switch calls to it, then drain and stop the old one.

        If the new instance fails, the old one keeps serving and the error is raised; with
        no old one, the plugin is failed and retried in the background.
        """
        async with self._lock:
            self._check_open()
            new_spec = spec or self.spec
            serving = self._instance is not None
            if not serving:
                self.state = PluginState.STARTING
            try:
                instance = await self._launch_task(new_spec)
            except PluginStoppedError:
                raise
            except PluginError as exc:
                PLUGIN_START_FAILURES.labels(self.spec.slug).inc()
                if not serving:
                    self.spec = new_spec
                    self._fail(str(exc))
                    self._spawn(self._restart(failures=1))
                raise
            old = self._instance
            self.spec = new_spec
            self._crash_streak = 0
            self._activate(instance)
        self._ensure_health_loop()
        if old is not None:
            await self._retire(old)

    async def stop(self) -> None:
        """Stop health checks, restarts and launches; drain in-flight calls and stop the plugin."""
        self._closed = True
        if self._launching is not None:
            self._launching.cancel()
        current = asyncio.current_task()
        for task in [*self._tasks, self._health_task]:
            if task is not None and task is not current:
                task.cancel()
        async with self._lock:
            instance, self._instance = self._instance, None
            self.state = PluginState.STOPPED
        if instance is not None:
            self._retiring.add(asyncio.create_task(instance.close(self.settings)))
        if self._retiring:
            # Shielded: stopping goes on even if whoever called stop() gives up waiting.
            await asyncio.shield(asyncio.gather(*self._retiring, return_exceptions=True))

    def status(self) -> PluginStatus:
        """The plugin's current state, for health endpoints."""
        instance = self._instance
        process = instance.process if instance else None
        pulled = instance.pulled if instance else None
        return PluginStatus(
            slug=self.spec.slug,
            command=self.spec.command,
            target=instance.target if instance else None,
            state=self.state,
            last_error=self.last_error,
            restarts=self.restarts,
            pid=process.pid if process else None,
            uptime_s=time.time() - instance.started_at if instance else None,
            last_check_at=self.last_check_at,
            last_check_latency_ms=self.last_check_latency_ms,
            info=instance.info if instance else None,
            digest=pulled.digest if pulled else None,
            warnings=self.policy_warnings + (pulled.warnings if pulled else ()),
            routes=instance.routes if instance else (),
        )

    # -- internals -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise PluginStoppedError(f"plugin {self.spec.slug} was stopped")

    async def _launch_task(self, spec: PluginSpec, restart: bool = False) -> PluginInstance:
        self._launching = asyncio.create_task(self._launch(spec, restart))
        try:
            return await self._launching
        except asyncio.CancelledError:
            if self._closed:
                raise PluginStoppedError(f"plugin {self.spec.slug} was stopped while starting") from None
            raise
        finally:
            self._launching = None

    async def _launch(self, spec: PluginSpec, restart: bool) -> PluginInstance:
        try:
            return await self._launch_unguarded(spec, restart)
        except PluginError:
            raise
        except Exception as exc:
            # Whatever a start runs into is this plugin's failure (failed, last_error), never a
            # crash of whoever started it, nor a plugin left "starting".
            log.exception("plugin start failed unexpectedly", plugin=spec.slug)
            raise PluginStartError(f"plugin {spec.slug} could not be started: {exc}") from None

    async def _launch_unguarded(self, spec: PluginSpec, restart: bool) -> PluginInstance:
        if spec.unusable:
            raise PluginStartError(spec.unusable)
        try:
            command = parse_command(spec.command)
        except CommandError as exc:
            raise PluginStartError(str(exc)) from None
        verdict = await self._check_policy(spec)
        if isinstance(command, FileCommand):
            return await start_local(
                spec,
                verdict.path or command.path,
                self.settings,
                resolved=verdict.path is not None,
                services=self._services(),
            )
        if isinstance(command, GrpcCommand):
            return await connect_remote(
                spec, command, self.settings, dial=verdict.dial, services=self._services()
            )
        assert isinstance(command, OciCommand)
        reference = command.reference
        if restart and self._instance_digest and self._instance_command == spec.command:
            # A crash restart runs what was running; only load and reload follow a moved tag.
            reference = reference.pinned(self._instance_digest)
        return await self._start_oci(spec, reference)

    async def _check_policy(self, spec: PluginSpec) -> Verdict:
        """The security policy, again before every start or connect; each warning is logged once."""
        if self._policy is None:
            return Verdict()
        try:
            verdict = await self._policy.check(spec.command, "load")
        except PolicyError as exc:
            raise PluginStartError(f"refused by the security policy: {exc}") from None
        self.policy_warnings = verdict.warnings
        for warning in verdict.warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                log.warning(warning, plugin=spec.slug, command=spec.command)
        return verdict

    async def _start_oci(self, spec: PluginSpec, reference: OciReference) -> PluginInstance:
        if self._oci is None:
            raise PluginStartError(f"{reference} cannot run: OCI plugins are not enabled in this process")
        try:
            puller = self._oci()
            pulled = await puller.pull(reference)  # pinned until the instance closes
        except OciError as exc:
            raise PluginStartError(f"{reference} could not be pulled: {exc}") from None
        except Exception as exc:  # a supervisor must survive any pull failure
            log.exception("oci pull failed unexpectedly", plugin=spec.slug)
            raise PluginStartError(f"{reference} could not be pulled: {exc}") from None
        for warning in pulled.warnings:
            log.warning("oci plugin", plugin=spec.slug, warning=warning)
        try:
            instance = await start_local(spec, str(pulled.path), self.settings, services=self._services())
        except BaseException:
            puller.unpin(pulled.key)
            raise
        instance.pulled = pulled
        instance.on_close(lambda: puller.unpin(pulled.key))
        return instance

    async def _retire(self, instance: PluginInstance) -> None:
        # Shielded: the old instance is drained and stopped even if our caller is cancelled.
        task = asyncio.create_task(instance.close(self.settings))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)
        await asyncio.shield(task)

    def _activate(self, instance: PluginInstance) -> None:
        self._instance = instance
        self._instance_digest = instance.pulled.digest if instance.pulled else None
        self._instance_command = instance.spec.command
        self.state = PluginState.HEALTHY
        self.last_error = None
        if instance.process is not None:
            self._spawn(self._watch(instance))
        else:
            self._spawn(self._watch_channel(instance))
        log.info("plugin started", plugin=self.spec.slug, target=instance.target, pid=_pid(instance))

    def _fail(self, error: str) -> None:
        self.state = PluginState.FAILED
        self.last_error = error
        log.error("plugin failed", plugin=self.spec.slug, error=error)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_health_loop(self) -> None:
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.create_task(self._health_loop())

    def _is_remote(self) -> bool:
        return self.spec.command.lower().startswith("grpc://")

    async def _watch(self, instance: PluginInstance) -> None:
        assert instance.process is not None
        code = await instance.process.wait()
        if self._closed or instance is not self._instance:
            return  # stopped or replaced on purpose
        tail = instance.process.output.last_lines(3)
        lived = time.time() - instance.started_at
        self._instance = None
        pid = instance.process.pid
        self.last_error = exited_text(f"process {pid}", code, tail)
        log.warning("plugin exited", plugin=self.spec.slug, code=code, uptime_s=round(lived, 3))
        await instance.close(self.settings, drain=False)
        self._crash_streak = 1 if lived >= _STABLE_AFTER_S else self._crash_streak + 1
        self.state = PluginState.RESTARTING
        await self._restart(failures=0)

    async def _watch_channel(self, instance: PluginInstance) -> None:
        """Follow a grpc:// instance's connection: a lost one marks the plugin unhealthy at once,
        and a regained one is checked and, when healthy, serves again without waiting for a check."""
        channel = instance.channel
        state = channel.get_state(try_to_connect=False)
        while not self._closed and instance is self._instance:
            if state == grpc.ChannelConnectivity.IDLE:
                # A server that went away leaves the channel idle: dialing again tells whether it is there.
                state = channel.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE:
                self._unreachable(instance, "its connection was lost")
            elif state == grpc.ChannelConnectivity.READY and self.state == PluginState.UNHEALTHY:
                problem = await instance.client.check_health(self.settings.plugin_health_timeout)
                if problem is None and instance is self._instance and self.state == PluginState.UNHEALTHY:
                    await self._recover(instance)
            elif state == grpc.ChannelConnectivity.SHUTDOWN:
                return
            try:
                await channel.wait_for_state_change(state)
            except (grpc.aio.UsageError, RuntimeError):
                return  # the channel was closed
            state = channel.get_state(try_to_connect=False)

    def _unreachable(self, instance: PluginInstance, why: str) -> None:
        """Mark the serving instance unhealthy now; a grpc:// plugin starts the reconnect path."""
        if self._closed or instance is not self._instance:
            return
        if self.state != PluginState.UNHEALTHY:
            self.state = PluginState.UNHEALTHY
            self.last_error = f"plugin {self.spec.slug} is not reachable: {why}"
            log.warning("plugin unhealthy", plugin=self.spec.slug, problem=why)
        if instance.process is None and not self._reconnecting:
            self._reconnecting = True
            self._spawn(self._reconnect())

    async def _restart(self, failures: int) -> None:
        """Start the plugin again with back-off; local plugins give up after too many failures."""
        while not self._closed:
            exponent = min(self._crash_streak + failures - 1, _MAX_BACKOFF_EXPONENT)
            delay = min(
                self.settings.plugin_restart_backoff * 2 ** max(exponent, 0),
                self.settings.plugin_restart_backoff_max,
            )
            await asyncio.sleep(delay)
            async with self._lock:
                if self._closed or self._instance is not None:
                    return  # stopped, or a reload already replaced it
                try:
                    instance = await self._launch_task(self.spec, restart=True)
                except PluginStoppedError:
                    return
                except PluginError as exc:
                    failures += 1
                    PLUGIN_START_FAILURES.labels(self.spec.slug).inc()
                    self.last_error = str(exc)
                    if failures >= self.settings.plugin_max_start_failures and not self._is_remote():
                        self._fail(f"gave up after {failures} failed starts: {exc}")
                        return
                    # A grpc:// server may come up at any time: keep trying at the capped delay.
                    if self.state != PluginState.FAILED:
                        self.state = PluginState.RESTARTING
                    continue
                if self.state == PluginState.RESTARTING:
                    self.restarts += 1
                    PLUGIN_RESTARTS.labels(self.spec.slug).inc()
                self._activate(instance)
            self._ensure_health_loop()
            if self._on_restart is not None:
                await self._on_restart(self.spec.slug)
            return

    async def _health_loop(self) -> None:
        misses = 0
        checked: PluginInstance | None = None
        while not self._closed:
            await asyncio.sleep(self.settings.plugin_health_interval)
            instance = self._instance
            if instance is None:
                continue
            if instance is not checked:
                checked, misses = instance, 0  # a new instance starts with a clean record
            began = time.perf_counter()
            problem = await instance.client.check_health(self.settings.plugin_health_timeout)
            self.last_check_at = time.time()
            self.last_check_latency_ms = (time.perf_counter() - began) * 1000
            if instance is not self._instance:
                continue
            if problem is None:
                if self.state == PluginState.UNHEALTHY:
                    await self._recover(instance)
                misses = 0
                continue
            misses += 1
            self.state = PluginState.UNHEALTHY
            self.last_error = f"health check failed: {problem}"
            log.warning("plugin unhealthy", plugin=self.spec.slug, problem=problem, misses=misses)
            if misses >= _UNHEALTHY_RESTART_AFTER:
                misses = 0
                if instance.process is not None:
                    await instance.process.kill()  # the watcher restarts it
                elif not self._reconnecting:
                    # A remote plugin may have moved: reconnect through the policy and DNS again.
                    self._reconnecting = True
                    self._spawn(self._reconnect())

    async def _reconnect(self) -> None:
        """Replace an unreachable grpc:// instance by a fresh connection; keep it if that fails."""
        try:
            await self.reload()
        except PluginError as exc:
            self.last_error = f"plugin {self.spec.slug} is not reachable and reconnecting failed: {exc}"
            log.warning("remote plugin still unreachable", plugin=self.spec.slug, error=str(exc))
        finally:
            self._reconnecting = False

    async def _recover(self, instance: PluginInstance) -> None:
        # A remote plugin that came back may have restarted and lost its config.
        try:
            await instance.reconfigure("", instance.generations.get("", 0))
        except PluginCallError as exc:
            self.last_error = f"plugin is reachable again but rejected its config: {exc}"
            return
        self.state = PluginState.HEALTHY
        self.last_error = None
        log.info("plugin healthy again", plugin=self.spec.slug)


def _pid(instance: PluginInstance) -> int | None:
    return instance.process.pid if instance.process else None
