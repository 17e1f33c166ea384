"""A counter of configuration changes that long-polling readers (edges) wait on."""

from __future__ import annotations

import asyncio
import contextlib


class ChangeFeed:
    """Bumped after every configuration change; wait() returns when it moved or time ran out."""

    def __init__(self) -> None:
        self.generation = 0
        # Set when the server starts to stop: long-polls answer at once, so the drain is quick.
        self.closing = False
        self._condition = asyncio.Condition()

    async def changed(self) -> None:
        """Record a change and wake every waiter."""
        async with self._condition:
            self.generation += 1
            self._condition.notify_all()

    async def close(self) -> None:
        """Wake every waiter for good: the server is stopping."""
        async with self._condition:
            self.closing = True
            self._condition.notify_all()

    async def wait(self, seen: int, timeout: float) -> int:
        """Wait until the generation differs from `seen` (or `timeout` seconds); the generation."""
        async with self._condition:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._condition.wait_for(lambda: self.generation != seen or self.closing), timeout
                )
            return self.generation
