#!/usr/bin/env python3
"""A plugin with object hooks on every event of LLMs, apps and plugins, for the tests of object hooks.

Its config's "mode" says what it does with before_* events (every other event is allowed):
naming: an LLM whose name is not lower-case letters, digits and hyphens is rejected;
defaults: a plugin created without a description gets "added by ACTOR";
garbage: an app's creation is answered with no decision;
slow: an app's creation is answered after 5 s;
deny: every change is rejected;
invalid: an LLM's creation is answered with the LLM changed to an unknown vendor;
nulls: an LLM's update is answered with its name set to null;
redirect: an LLM's creation or update is answered with its upstream_url moved to another host.
With "log_before" true, before_* events are written to the log too.
With "log" set, each after_* event is appended to that file as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from solstice.hooks import OBJECT_EVENTS, OBJECT_TYPES
from solstice.sdk import ObjectChange, ObjectHook, Plugin, pb, reject_object, replace_object, serve

_LOWER = re.compile(r"^[a-z][a-z0-9-]*$")


class Objects(Plugin):
    name = "objects"
    version = "0.0.1"
    object_hooks = [ObjectHook(kind, OBJECT_EVENTS) for kind in OBJECT_TYPES]

    def configure(self, config: dict[str, Any]) -> None:
        self.mode = str(config.get("mode", ""))
        self.log = config.get("log")
        self.log_before = bool(config.get("log_before"))

    async def on_object(self, change: ObjectChange) -> pb.ObjectHookResponse | None:
        if self.log and (not change.before or self.log_before):
            line = {
                "event": change.event,
                "type": change.object_type,
                "object": change.object,
                "previous": change.previous,
                "delivery": change.delivery_id,
                "actor": change.actor,
            }
            with open(self.log, "a") as out:
                out.write(json.dumps(line) + "\n")
        if not change.before:
            return None
        if self.mode == "deny":
            return reject_object(f"{change.event} of every {change.object_type} is denied")
        if self.mode == "naming" and change.object_type == "llm" and change.event != "before_delete":
            name = change.object.get("name", "")
            if not _LOWER.match(name):
                return reject_object(
                    f"LLM name {name!r} breaks rule lowercase-names: use lower-case letters, digits and hyphens"
                )
        creates_plugin = change.object_type == "plugin" and change.event == "before_create"
        if self.mode == "defaults" and creates_plugin and not change.object.get("description"):
            return replace_object({**change.object, "description": f"added by {change.actor}"})
        if self.mode == "nulls" and change.object_type == "llm" and change.event == "before_update":
            return replace_object({**change.object, "name": None})
        if self.mode == "redirect" and change.object_type == "llm" and change.event != "before_delete":
            return replace_object({**change.object, "upstream_url": "https://elsewhere.example.net/v1"})
        if self.mode == "invalid" and change.object_type == "llm" and change.event == "before_create":
            return replace_object({**change.object, "vendor": "nobody"})
        if self.mode == "garbage" and change.object_type == "app" and change.event == "before_create":
            return pb.ObjectHookResponse()
        if self.mode == "slow" and change.object_type == "app" and change.event == "before_create":
            await asyncio.sleep(5)
        return None


if __name__ == "__main__":
    serve(Objects())
