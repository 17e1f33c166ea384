"""What a plugin author imports: subclass Plugin, implement hooks, @route methods or run_task; serve()."""

from solstice.protocol import pb
from solstice.sdk.agents import Chat, agent_error, content, thinking, tool_call, tool_result
from solstice.sdk.objects import ObjectChange, ObjectHook, allow_object, reject_object, replace_object
from solstice.sdk.plugin import Plugin, abstain, authenticated, block, modify, proceed, rejected
from solstice.sdk.routes import respond, route
from solstice.sdk.serve import serve
from solstice.sdk.tasks import Schedule, Task

__all__ = [
    "Chat",
    "ObjectChange",
    "ObjectHook",
    "Plugin",
    "Schedule",
    "Task",
    "abstain",
    "agent_error",
    "allow_object",
    "authenticated",
    "block",
    "content",
    "modify",
    "pb",
    "proceed",
    "reject_object",
    "rejected",
    "replace_object",
    "respond",
    "route",
    "serve",
    "thinking",
    "tool_call",
    "tool_result",
]
