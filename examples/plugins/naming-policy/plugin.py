#!/usr/bin/env python3
"""object_hooks plugin: a naming rule for LLMs and apps, and a default description for plugins.

Before an LLM or app is created or renamed, its name must match the rule's pattern, or the API
answers 422 with the rule. A plugin registered without a description gets one that says who added
it. Every stored change is also written to the server log (after_* notifications).
Config: {"rule": "lowercase-names", "pattern": "^[a-z][a-z0-9-]*$"}.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from solstice.sdk import ObjectChange, ObjectHook, Plugin, pb, reject_object, replace_object, serve

log = logging.getLogger("naming-policy")


class NamingPolicy(Plugin):
    name = "naming-policy"
    version = "1.0.0"
    description = "A naming rule for LLMs and apps, and default plugin descriptions."
    object_hooks = (
        ObjectHook("llm", ["before_create", "before_update", "after_create", "after_update", "after_delete"]),
        ObjectHook("app", ["before_create", "before_update"]),
        ObjectHook("plugin", ["before_create"]),
    )
    config_schema = {
        "type": "object",
        "properties": {
            "rule": {"type": "string", "minLength": 1},
            "pattern": {"type": "string", "minLength": 1},
        },
        "additionalProperties": False,
    }

    def configure(self, config: dict[str, Any]) -> None:
        self.rule = str(config.get("rule", "lowercase-names"))
        try:
            self.pattern = re.compile(str(config.get("pattern", "^[a-z][a-z0-9-]*$")))
        except re.error as exc:
            raise ValueError(f"pattern is not a regular expression: {exc}") from None

    def on_object(self, change: ObjectChange) -> pb.ObjectHookResponse | None:
        """Judge a change before it is stored; log it after."""
        if not change.before:
            log.warning(
                "%s %s %s by %s", change.event, change.object_type, change.object.get("id"), change.actor
            )
            return None
        if change.object_type == "plugin":
            if not change.object.get("description"):
                return replace_object({**change.object, "description": f"added by {change.actor}"})
            return None
        name = str(change.object.get("name", ""))
        if change.previous is not None and change.previous.get("name") == name:
            return None  # not renamed: objects older than the rule can still be changed
        if not self.pattern.match(name):
            return reject_object(
                f"{change.object_type} name {name!r} breaks rule {self.rule} ({self.pattern.pattern})"
            )
        return None


if __name__ == "__main__":
    serve(NamingPolicy())
