"""Sends proxy records to data_collection plugins in batches, off the request path."""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict

import structlog

from solstice.gateway.record_batches import split
from solstice.gateway.routes import Step
from solstice.host import PluginError, PluginHost
from solstice.metrics import DATA_COLLECTION_DROPS, DATA_COLLECTION_FAILURES
from solstice.protocol import pb
from solstice.settings import Settings

log = structlog.get_logger("solstice.gateway")
# How long a batch may wait to fill up before it is sent anyway.
_BATCH_WINDOW_S = 0.2
_FLUSH_TIMEOUT_S = 5.0


class Collector:
    """A bounded queue of records; a full queue drops (and counts) rather than slowing requests.

    Calls are bounded by SOLSTICE_DATA_COLLECTION_BATCH records and by bytes (record_batches.py).
    """

    def __init__(self, host: PluginHost, settings: Settings) -> None:
        self._host = host
        self._batch = settings.data_collection_batch
        self._queue: asyncio.Queue[tuple[tuple[Step, ...], pb.ProxyRecord]] = asyncio.Queue(
            settings.data_collection_queue
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the background sender."""
        self._task = asyncio.create_task(self._run())

    def submit(self, steps: tuple[Step, ...], record: pb.ProxyRecord) -> None:
        """Queue one record for the given data_collection steps; never waits."""
        if not steps:
            return
        try:
            self._queue.put_nowait((steps, record))
        except asyncio.QueueFull:
            DATA_COLLECTION_DROPS.inc()

    async def aclose(self) -> None:
        """Send what is queued (for a few seconds at most), then stop."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), _FLUSH_TIMEOUT_S)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while True:
            items = [await self._queue.get()]
            deadline = asyncio.get_running_loop().time() + _BATCH_WINDOW_S
            while len(items) < self._batch:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), remaining))
                except TimeoutError:
                    break
            try:
                await self._send(items)
            finally:
                for _ in items:
                    self._queue.task_done()

    async def _send(self, items: list[tuple[tuple[Step, ...], pb.ProxyRecord]]) -> None:
        batches: defaultdict[Step, list[tuple[pb.ProxyRecord, int]]] = defaultdict(list)
        for steps, record in items:
            size = record.ByteSize()  # measured once: it costs about as much as encoding the record
            for step in steps:
                batches[step].append((record, size))
        await asyncio.gather(*(self._deliver(step, records) for step, records in batches.items()))

    async def _deliver(self, step: Step, records: list[tuple[pb.ProxyRecord, int]]) -> None:
        # One plugin gets its calls one after another, in order; plugins are served side by side.
        parts = split(records, step.config_id)
        if parts.cut:
            log.warning("data_collection record cut to fit one call", plugin=step.slug, cut=parts.cut)
        if parts.lost:
            DATA_COLLECTION_FAILURES.labels(step.slug).inc()
            log.warning(
                "data_collection record too large even without its bodies and metadata; not sent",
                plugin=step.slug,
                records=parts.lost,
            )
        for batch in parts.batches:
            try:
                client = self._host.client(step.slug)
                await client.data_collection(batch, step.config_id, timeout=step.timeout_ms / 1000)
            except PluginError as exc:
                DATA_COLLECTION_FAILURES.labels(step.slug).inc()
                log.warning("data_collection failed", plugin=step.slug, records=len(batch), error=str(exc))
