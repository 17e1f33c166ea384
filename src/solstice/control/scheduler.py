"""Runs plugins' scheduled tasks at their due times, once per due time across servers on one database.

Every `SOLSTICE_SCHEDULE_INTERVAL` seconds each server reads the due schedules and claims each
by moving its next due time on (store/schedules.py); the server that claimed a run records it
and calls the plugin's RunTask. While a run lasts, its server renews the run's lease every
`SOLSTICE_SCHEDULE_HEARTBEAT` seconds, to three of them ahead; a run whose lease passed (its
server died) is marked failed by another server, never retried: a task may have done part of its
work.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import socket
import time
import uuid
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from solstice.cron import CronError, check_cron
from solstice.host import PluginCallError, PluginHost, PluginNotLoadedError, PluginState
from solstice.metrics import SCHEDULE_RUN_DURATION, SCHEDULE_RUNS
from solstice.protocol import pb
from solstice.scopes import SCHEDULES_SCOPE, grants
from solstice.settings import Settings
from solstice.store import schedules as stored
from solstice.store.models import ScheduleRow, utcnow
from solstice.store.scopes import approvals_of

log = structlog.get_logger("solstice.scheduler")

# Due schedules read per check; more wait for the next check.
_BATCH = 100
# What a run's history keeps of a plugin's texts.
_TEXT_LIMIT = 1000
_SERVING = (PluginState.HEALTHY, PluginState.UNHEALTHY)


def _server_name() -> str:
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class Scheduler:
    """The schedule loop of one server."""

    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], host: PluginHost
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.host = host
        self.server = _server_name()
        self._loop: asyncio.Task[None] | None = None
        # Runs in progress here, by run id.
        self._running: dict[str, asyncio.Task[None]] = {}
        self._last_beat = 0.0

    def start(self) -> None:
        """Begin checking for due runs."""
        self._loop = asyncio.create_task(self._check_loop())

    async def aclose(self) -> None:
        """Stop checking, stop the runs in progress and record them as failed."""
        if self._loop is not None:
            self._loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop
        running = list(self._running.values())
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    async def _check_loop(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a database hiccup must not end scheduling for good
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise asyncio.CancelledError from None
                log.exception("checking due schedules failed; retrying at the next interval")
            await asyncio.sleep(self.settings.schedule_interval)

    async def check(self) -> None:
        """Note this server's runs as alive, fail the abandoned ones, then claim and start due runs."""
        if time.monotonic() - self._last_beat >= self.settings.schedule_heartbeat:
            await self._beat()
        now = utcnow()
        async with self.sessions() as session:
            due = await stored.due_schedules(session, now, _BATCH)
        for item in due:
            try:
                await self._consider(item, now)
            except Exception:  # one schedule's trouble must not stop the others
                task = asyncio.current_task()
                if task is not None and task.cancelling():
                    raise
                log.exception(
                    "a due schedule could not be handled", plugin=item.slug, schedule=item.schedule.key
                )

    async def _beat(self) -> None:
        self._last_beat = time.monotonic()
        now = utcnow()
        until = now + timedelta(seconds=3 * self.settings.schedule_heartbeat)
        async with self.sessions.begin() as session:
            await stored.beat(session, list(self._running), now, until)
            lost = await stored.abandon_stale(
                session,
                now,
                "the server running it stopped reporting (it exited or lost the database); "
                "the run was not retried, as its task may have done part of its work",
            )
        for slug in lost:
            SCHEDULE_RUNS.labels(slug, "failed").inc()
        if lost:
            log.warning("runs of a server that stopped reporting were marked failed", runs=len(lost))

    def _serving(self, slug: str) -> pb.PluginInfo | None:
        """The plugin's info when an instance of it serves here."""
        try:
            status = self.host.status(slug)
        except PluginNotLoadedError:
            return None
        return status.info if status.state in _SERVING else None

    async def _consider(self, due: stored.Due, now: datetime) -> None:
        schedule = due.schedule
        due_at = schedule.next_run_at
        assert due_at is not None
        late = (now - due_at).total_seconds() > self.settings.schedule_misfire_grace
        info = self._serving(due.slug)
        if info is None and not late:
            return  # another server may run it; if none does in time it is missed
        try:
            next_at: datetime | None = check_cron(schedule.cron, schedule.timezone).next_after(
                max(now, due_at)
            )
        except CronError as exc:
            # Only a hand-edited row can hold this: stop the schedule rather than fail every check.
            next_at, verdict, reason = None, "skipped", f"{exc}; the schedule stops until its cron is fixed"
        else:
            verdict, reason = await self._verdict(due, info, late)
        run_id = str(uuid.uuid4())
        async with self.sessions.begin() as session:
            if next_at is not None:
                claimed = await stored.claim(session, schedule.id, due_at, next_at)
            else:
                claimed = await stored.disable(session, schedule.id, due_at)
            if not claimed:
                return  # another server claimed it
            if await stored.is_recorded(session, schedule.id, due_at):
                return  # a server whose clock is behind set the schedule back: this due time was run
            # The values as stored now: an operator may have changed them since they were read.
            current = await stored.reread(session, schedule.id)
            if current is None:
                return
            schedule = current
            await stored.add_run(
                session,
                {
                    "schedule_id": schedule.id,
                    "run_id": run_id,
                    "due_at": due_at,
                    "catch_up": late and schedule.catch_up,
                    "status": verdict,
                    "started_at": now if verdict == stored.RUNNING else None,
                    "finished_at": None if verdict == stored.RUNNING else now,
                    "error": reason,
                    "server": self.server,
                    "heartbeat_at": now,
                    "lease_until": now + timedelta(seconds=3 * self.settings.schedule_heartbeat),
                },
            )
            await stored.trim_runs(session, schedule.id, self.settings.schedule_history)
        if verdict != stored.RUNNING:
            SCHEDULE_RUNS.labels(due.slug, verdict).inc()
            log.info(
                "scheduled run not started",
                plugin=due.slug,
                schedule=schedule.key,
                status=verdict,
                reason=reason,
            )
            return
        request = pb.TaskRequest(
            context=pb.RequestContext(request_id=run_id),
            schedule_id=schedule.key,
            schedule_name=schedule.name,
            config_json=json.dumps(schedule.config or {}),
            due_unix_ms=int(due_at.timestamp() * 1000),
            catch_up=late,
        )
        self._running[run_id] = asyncio.create_task(self._run(due.slug, schedule, request))

    async def _verdict(self, due: stored.Due, info: pb.PluginInfo | None, late: bool) -> tuple[str, str]:
        """running, or skipped/failed and why."""
        schedule = due.schedule
        grace = f"{self.settings.schedule_misfire_grace:g} s"
        if info is None:
            # Only a late run gets here: no server with the plugin running claimed it in time.
            reason = f"plugin {due.slug} was not running on any server within {grace} of the due time"
            return ("failed" if schedule.catch_up else "skipped"), reason
        if late and not schedule.catch_up:
            return (
                "skipped",
                f"missed: no server ran schedules within {grace} of its due time, and catch_up is off",
            )
        async with self.sessions() as session:
            if await stored.is_running(session, schedule.id):
                return "skipped", "the previous run of this schedule is still running"
        if SCHEDULES_SCOPE not in info.scopes:
            return (
                "skipped",
                f"plugin {due.slug} does not request scope {SCHEDULES_SCOPE}, so it runs no tasks",
            )
        async with self.sessions() as session:
            approved = [a.scope for a in await approvals_of(session, schedule.plugin_id)]
        if not grants(approved, SCHEDULES_SCOPE):
            return "skipped", (
                f"plugin {due.slug} lacks an approval of scope {SCHEDULES_SCOPE}; approve it with "
                f"POST /api/v1/plugins/{due.slug}/scopes/approve"
            )
        return stored.RUNNING, ""

    async def _run(self, slug: str, schedule: ScheduleRow, request: pb.TaskRequest) -> None:
        run_id = request.context.request_id
        started = time.perf_counter()
        status, error, message = "failed", "", ""
        try:
            result = await self.host.client(slug).run_task(request, float(schedule.timeout_s))
            status = "failed" if result.error else "succeeded"
            error, message = result.error, result.message
        except PluginCallError as exc:
            status = "timed_out" if exc.code == "DEADLINE_EXCEEDED" else "failed"
            error = str(exc)
        except PluginNotLoadedError:
            error = f"plugin {slug} was unloaded before the run started"
        except asyncio.CancelledError:
            error = "the server stopped during the run"
        except Exception as exc:  # a bug here must still end the run's record
            log.exception("scheduled run failed unexpectedly", plugin=slug, schedule=schedule.key)
            error = f"the run failed inside the server: {type(exc).__name__}"
        finally:
            seconds = time.perf_counter() - started
            SCHEDULE_RUN_DURATION.labels(slug).observe(seconds)
            try:
                async with self.sessions.begin() as session:
                    recorded = await stored.finish_run(
                        session,
                        run_id,
                        {
                            "status": status,
                            "finished_at": utcnow(),
                            "error": error[:_TEXT_LIMIT],
                            "message": message[:_TEXT_LIMIT],
                        },
                    )
                if recorded:
                    SCHEDULE_RUNS.labels(slug, status).inc()
                else:
                    # Another server failed it meanwhile (this one missed its heartbeats): that stays.
                    log.warning(
                        "a scheduled run ended after another server had marked it failed",
                        plugin=slug,
                        run=run_id,
                        status=status,
                    )
            except Exception:
                log.exception("the end of a scheduled run could not be recorded", plugin=slug, run=run_id)
            self._running.pop(run_id, None)
        log.info(
            "scheduled run ended",
            plugin=slug,
            schedule=schedule.key,
            run=run_id,
            status=status,
            seconds=round(seconds, 3),
        )
