"""Schedules, object hooks and agents work for oci:// plugins as for file:// ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx

from tests.conftest import ROOT, wait_until
from tests.oci.images import push_image_with_umoci
from tests.oci.registries import Registry
from tests.server import Server

PLUGINS = ROOT / "tests" / "plugins"


def _image(registry: Registry, tmp_path: Path, name: str) -> str:
    script = tmp_path / name
    shutil.copyfile(PLUGINS / f"{name}.py", script)
    script.chmod(0o755)
    push_image_with_umoci(registry, f"plugins/{name}:v1", script)
    return f"oci://{registry.host}/plugins/{name}:v1"


def test_oci_plugins_run_tasks_police_objects_and_answer_chats(registry: Registry, tmp_path: Path) -> None:
    log = tmp_path / "runs.jsonl"
    images = {name: _image(registry, tmp_path, name) for name in ("scheduled", "objects", "agents")}
    server = Server(tmp_path, env={"SOLSTICE_SCHEDULE_INTERVAL": "0.2"}).wait_ready()
    try:
        with server.client() as client:
            plugins = [
                (
                    "ticker",
                    images["scheduled"],
                    "scheduled_task",
                    {"log": str(log)},
                    ["schedules.run", "kv.readwrite"],
                ),
                ("naming", images["objects"], "object_hooks", {"mode": "naming"}, ["objects.hook"]),
                ("bot", images["agents"], "agent", {}, ["llms.call"]),
            ]
            for slug, command, hook, config, scopes in plugins:
                made = client.post(
                    "/api/v1/plugins",
                    json={"name": slug, "command": command, "hook_type": hook, "config": config},
                )
                assert made.status_code == 201 and made.json()["status"] == "healthy", made.text
                client.post(f"/api/v1/plugins/{slug}/scopes/approve", json={"scopes": scopes})

            ran = wait_until(
                lambda: [line for line in log.read_text().splitlines()] if log.exists() else None,
                15,
                server.log,
                what="a scheduled run",
            )
            assert json.loads(ran[0])["schedule"] == "tick"

            refused = client.post("/api/v1/llms", json={"name": "Bad Name", "vendor": "mock"})
            assert refused.status_code == 422 and "plugin naming rejected" in refused.json()["detail"]
            assert client.post("/api/v1/llms", json={"name": "mock", "vendor": "mock"}).status_code == 201
            key = client.post(
                "/api/v1/apps", json={"name": "ui", "llms": ["mock"], "agents": ["bot"]}
            ).json()["key"]
        answer = httpx.post(
            f"{server.url}/agents/bot/chat",
            json={"message": "ask"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.status_code == 200 and "event: done" in answer.text
        assert "echo: ask" in answer.text
    finally:
        assert server.stop() == 0
