"""Keeps one plugin running: start, health checks, crash restarts, reload and stop."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from enum import StrEnum

import structlog
from prometheus_client import Histogram

from solstice.commands import CommandError, FileCommand, GrpcCommand, OciCommand, parse_command
from solstice.host.errors import PluginCallError, PluginError, PluginStartError
from solstice.host.instance import PluginInstance, connect_remote, start_local
from solstice.host.output import PluginOutput
from solstice.host.spec import PluginSpec
from solstice.metrics import HOOK_DURATION, HOOK_ERRORS, HOOK_TIMEOUTS, PLUGIN_RESTARTS, PLUGIN_START_FAILURES
from solstice.protocol import pb
from solstice.settings import Settings

log = structlog.get_logger("solstice.host")

# An instance that stayed up this long resets the crash back-off.
_STABLE_AFTER_S = 60.0
# Failed health checks in a row after which a local plugin is restarted.
_UNHEALTHY_RESTART_AFTER = 3


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


class PluginSupervisor:
    """Owns the running instance of one plugin and replaces it when needed."""

    def __init__(self, spec: PluginSpec, settings: Settings) -> None:
        self.spec = spec
        self.settings = settings
        self.state = PluginState.STOPPED
        self.last_error: str | None = None
        self.restarts = 0
        self.last_check_at: float | None = None
        self.last_check_latency_ms: float | None = None
        self._instance: PluginInstance | None = None
        self._output = PluginOutput(spec.slug)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._health_task: asyncio.Task[None] | None = None
        self._crash_streak = 0
        self._stopped = True
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
        """Record one failed hook call."""
        HOOK_ERRORS.labels(self.spec.slug, hook, code).inc()
        if code == "DEADLINE_EXCEEDED":
            HOOK_TIMEOUTS.labels(self.spec.slug, hook).inc()

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the plugin; on failure the state is failed and the error is raised."""
        async with self._lock:
            self._stopped = False
            self.state = PluginState.STARTING
            try:
                instance = await self._launch(self.spec)
            except PluginError as exc:
                PLUGIN_START_FAILURES.labels(self.spec.slug).inc()
                self._fail(str(exc))
                raise
            self._activate(instance)
        self._ensure_health_loop()

    async def reload(self, spec: PluginSpec | None = None) -> None:
        """Start a new instance, switch calls to it, then drain and stop the old one.

        If the new instance fails, the old one keeps serving and the error is raised.
        """
        async with self._lock:
            self._stopped = False
            new_spec = spec or self.spec
            if self._instance is None:
                self.state = PluginState.STARTING
            try:
                instance = await self._launch(new_spec)
            except PluginError as exc:
                PLUGIN_START_FAILURES.labels(self.spec.slug).inc()
                if self._instance is None:
                    self._fail(str(exc))
                raise
            old = self._instance
            self.spec = new_spec
            self._crash_streak = 0
            self._activate(instance)
        self._ensure_health_loop()
        if old is not None:
            await old.close(self.settings)

    async def stop(self) -> None:
        """Stop health checks and restarts, drain in-flight calls and stop the plugin."""
        self._stopped = True
        for task in [*self._tasks, self._health_task]:
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        async with self._lock:
            instance, self._instance = self._instance, None
            self.state = PluginState.STOPPED
        if instance is not None:
            await instance.close(self.settings)

    def status(self) -> PluginStatus:
        """The plugin's current state, for health endpoints."""
        instance = self._instance
        process = instance.process if instance else None
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
        )

    # -- internals -----------------------------------------------------------------------

    async def _launch(self, spec: PluginSpec) -> PluginInstance:
        try:
            command = parse_command(spec.command)
        except CommandError as exc:
            raise PluginStartError(str(exc)) from None
        if isinstance(command, FileCommand):
            return await start_local(spec, command.path, self.settings, self._output)
        if isinstance(command, GrpcCommand):
            return await connect_remote(spec, command, self.settings)
        assert isinstance(command, OciCommand)
        raise PluginStartError(
            f"{command} cannot run yet: this build of Solstice has no OCI support; "
            "use a file:// or grpc:// command"
        )

    def _activate(self, instance: PluginInstance) -> None:
        self._instance = instance
        self.state = PluginState.HEALTHY
        self.last_error = None
        if instance.process is not None:
            self._spawn(self._watch(instance))
        log.info("plugin started", plugin=self.spec.slug, target=instance.target, pid=_pid(instance))

    def _fail(self, error: str) -> None:
        self.state = PluginState.FAILED
        self.last_error = error
        log.error("plugin failed", plugin=self.spec.slug, error=error)

    def _spawn(self, coro: object) -> None:
        task = asyncio.create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _ensure_health_loop(self) -> None:
        if self._health_task is None or self._health_task.done():
            self._health_task = asyncio.create_task(self._health_loop())

    async def _watch(self, instance: PluginInstance) -> None:
        assert instance.process is not None
        code = await instance.process.wait()
        if self._stopped or instance is not self._instance:
            return  # stopped or replaced on purpose
        tail = " | ".join(instance.process.output.tail()[-3:]) or "(no output)"
        lived = time.time() - instance.started_at
        self._instance = None
        self.last_error = (
            f"plugin process {instance.process.pid} exited with code {code}; last output: {tail}"
        )
        log.warning("plugin exited", plugin=self.spec.slug, code=code, uptime_s=round(lived, 3))
        await instance.close(self.settings, drain=False)
        self._crash_streak = 1 if lived >= _STABLE_AFTER_S else self._crash_streak + 1
        await self._restart()

    async def _restart(self) -> None:
        failures = 0
        while not self._stopped:
            self.state = PluginState.RESTARTING
            exponent = self._crash_streak + failures - 1
            delay = min(
                self.settings.plugin_restart_backoff * 2**exponent, self.settings.plugin_restart_backoff_max
            )
            await asyncio.sleep(delay)
            async with self._lock:
                if self._stopped or self._instance is not None:
                    return  # stopped, or a reload already replaced it
                try:
                    instance = await self._launch(self.spec)
                except PluginError as exc:
                    failures += 1
                    PLUGIN_START_FAILURES.labels(self.spec.slug).inc()
                    self.last_error = str(exc)
                    if failures >= self.settings.plugin_max_start_failures:
                        self._fail(f"gave up after {failures} failed restarts: {exc}")
                        return
                    continue
                self.restarts += 1
                PLUGIN_RESTARTS.labels(self.spec.slug).inc()
                self._activate(instance)
                return

    async def _health_loop(self) -> None:
        misses = 0
        while not self._stopped:
            await asyncio.sleep(self.settings.plugin_health_interval)
            instance = self._instance
            if instance is None:
                continue
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
            if instance.process is not None and misses >= _UNHEALTHY_RESTART_AFTER:
                misses = 0
                await instance.process.kill()  # the watcher restarts it

    async def _recover(self, instance: PluginInstance) -> None:
        # A remote plugin that came back may have restarted and lost its config.
        try:
            await instance.client.configure(self.spec.config, self.settings.plugin_health_timeout)
        except PluginCallError as exc:
            self.last_error = f"plugin is reachable again but rejected its config: {exc}"
            return
        self.state = PluginState.HEALTHY
        self.last_error = None
        log.info("plugin healthy again", plugin=self.spec.slug)


def _pid(instance: PluginInstance) -> int | None:
    return instance.process.pid if instance.process else None
