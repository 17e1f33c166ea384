"""Blocking work (layer extraction) in a thread that stops when the awaiting task is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def run_stoppable(name: str, work: Callable[[threading.Event], T]) -> T:
    """Run `work(stop)` in a daemon thread named `name` and return its result.

    When the caller is cancelled (a timeout, a deleted plugin, shutdown) `stop` is set and the
    thread is awaited before the cancellation goes on, so no work outlives its pull and a retry
    never runs beside it; `work` must check `stop` often (per chunk).
    """
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()
    stop = threading.Event()

    def succeed(result: T) -> None:
        if not done.done():
            done.set_result(result)

    def fail(error: BaseException) -> None:
        if not done.done():
            done.set_exception(error)

    def target() -> None:
        settle: Callable[[], None]
        try:
            settle = functools.partial(succeed, work(stop))
        except BaseException as exc:  # handed to the awaiting task, whatever it is
            settle = functools.partial(fail, exc)
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
            loop.call_soon_threadsafe(settle)

    # A daemon thread never holds the interpreter's exit, even if `work` ignored its flag.
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        result = await asyncio.shield(done)
    except asyncio.CancelledError:
        stop.set()
        while not done.done():
            try:
                await asyncio.wait([done])
            except asyncio.CancelledError:
                continue  # cancelled again: the thread still gets its moment to stop
        if not done.cancelled():
            done.exception()  # retrieved: its Cancelled is expected, not worth a warning
        # `done` is settled as the thread's last act; joining it makes "stopped" exact.
        thread.join()
        raise
    thread.join()
    return result
