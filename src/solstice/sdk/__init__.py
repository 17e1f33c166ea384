"""What a plugin author imports: subclass Plugin, implement hooks or @route methods, call serve()."""

from solstice.protocol import pb
from solstice.sdk.plugin import Plugin, abstain, authenticated, block, modify, proceed, rejected
from solstice.sdk.routes import respond, route
from solstice.sdk.serve import serve

__all__ = [
    "Plugin",
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
