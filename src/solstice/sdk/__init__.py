"""What a plugin author imports: subclass Plugin, implement hooks, @route methods or run_task; serve()."""

from solstice.protocol import pb
from solstice.sdk.plugin import Plugin, abstain, authenticated, block, modify, proceed, rejected
from solstice.sdk.routes import respond, route
from solstice.sdk.serve import serve
from solstice.sdk.tasks import Schedule, Task

__all__ = [
    "Plugin",
    "Schedule",
    "Task",
    "abstain",
    "authenticated",
    "block",
    "modify",
    "pb",
    "proceed",
    "rejected",
    "respond",
    "route",
    "serve",
]
