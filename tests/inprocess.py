"""The control-plane app in this test process: its lifespan on a loop thread, clients through httpx's
ASGITransport, a real store and a real plugin host, and the log as structlog records."""

from __future__ import annotations

import asyncio
import io
import json
import os
import threading
from collections.abc import Coroutine, MutableMapping
from concurrent.futures import Future
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import httpx
import structlog

from solstice.api.application import create_app
from solstice.settings import Settings
from tests.conftest import child_pids, pid_alive, wait_until
from tests.server import ADMIN_TOKEN

T = TypeVar("T")
BASE_URL = "http://solstice.test"


def app_settings(data_dir: Path, *, database_url: str = "", **overrides: object) -> Settings:
    """What tests/server.py gives `solstice serve`, as Settings: short health and reconcile intervals."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "admin_token": ADMIN_TOKEN,
        "plugin_health_interval": 0.5,
        "reconcile_interval": 0.5,
        # Test plugins serve on 127.0.0.1; the policy's internal-network rules have their own tests.
        "allow_internal_network_access": True,
        **overrides,
    }
    return Settings(**values)  # type: ignore[arg-type]


class _LogCapture:
    """structlog records while the app runs; rendered as JSON lines, like `SOLSTICE_LOG_FORMAT=json`."""

    def __init__(self) -> None:
        self.records: list[MutableMapping[str, Any]] = []
        self._lock = threading.Lock()
        self._previous: list[Any] | None = None

    def __call__(self, _logger: object, method: str, event: MutableMapping[str, Any]) -> str:
        with self._lock:
            self.records.append({**event, "level": method})
        raise structlog.DropEvent

    def start(self) -> None:
        self._previous = structlog.get_config()["processors"]
        structlog.configure(processors=[self])

    def stop(self) -> None:
        if self._previous is not None:
            structlog.configure(processors=self._previous)

    def text(self) -> str:
        with self._lock:
            return "\n".join(json.dumps(dict(r), default=str) for r in self.records)


class _Bridge(httpx.AsyncBaseTransport):
    """Sends each request to the app on its loop thread, whatever loop (or thread) the caller is on."""

    def __init__(self, app: InProcess) -> None:
        self.app = app

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        status, headers, content = await asyncio.wrap_future(self.app.submit(self.app.dispatch(forwarded)))
        return httpx.Response(status, headers=headers, content=content, request=request)


class _SyncBridge(httpx.BaseTransport):
    """The same for blocking clients: the calling thread waits for the app's answer."""

    def __init__(self, app: InProcess) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        status, headers, content = self.app.submit(self.app.dispatch(forwarded)).result(timeout=120)
        return httpx.Response(status, headers=headers, content=content, request=request)


class InProcess:
    """`create_app(settings)` with its lifespan running; the interface of tests.server.Server where it
    makes sense in one process (clients, log, plugin PIDs)."""

    url = BASE_URL

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.admin_token
        self.app = create_app(settings)
        self._capture = _LogCapture()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="solstice-app", daemon=True)
        self._lifespan: AbstractAsyncContextManager[None] | None = None
        self._asgi = httpx.AsyncClient(transport=httpx.ASGITransport(app=self.app), base_url=BASE_URL)
        self._before: set[int] = set()

    def start(self, timeout: float = 60.0) -> InProcess:
        """Run the app's start-up on its loop and wait until /readyz answers 200."""
        self._before = set(child_pids(os.getpid()))
        self._capture.start()
        self._thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.submit(self._lifespan.__aenter__()).result(timeout)
        wait_until(self._ready, timeout, self.log, what="the in-process app to be ready")
        return self

    def _ready(self) -> bool:
        with httpx.Client(transport=_SyncBridge(self), base_url=BASE_URL) as client:
            return client.get("/readyz").status_code == 200

    def submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        """Run a coroutine on the app's loop."""
        return asyncio.run_coroutine_threadsafe(work, self._loop)

    async def dispatch(self, request: httpx.Request) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request through ASGITransport, answered with the whole body."""
        response = await self._asgi.send(request)
        return response.status_code, response.headers.raw, await response.aread()

    def stop(self) -> None:
        """Run the app's shutdown (plugins stopped, store closed) and end the loop thread."""
        try:
            if self._lifespan is not None:
                shutdown = self.submit(self._lifespan.__aexit__(None, None, None))
                try:
                    shutdown.result(30)
                except TimeoutError:
                    raise AssertionError(f"the app's shutdown took over 30 s:\n{self._stacks()}") from None
            self.submit(self._asgi.aclose()).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()
            self._capture.stop()

    def _stacks(self) -> str:
        """Where each task on the app's loop is waiting, for a shutdown that does not end."""

        async def dump() -> str:
            out = io.StringIO()
            for task in asyncio.all_tasks():
                out.write(f"{task!r}\n")
                for frame in task.get_stack(limit=8):
                    out.write(f"  {frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}\n")
            return out.getvalue()

        return self.submit(dump()).result(10)

    def client(self, token: str | None = None) -> httpx.Client:
        """A blocking client for the app with `token` (default: the admin token; "" sends none)."""
        return httpx.Client(transport=_SyncBridge(self), base_url=BASE_URL, headers=self._auth(token))

    def async_client(self, token: str | None = None) -> httpx.AsyncClient:
        """An async client for the app, usable from any event loop."""
        return httpx.AsyncClient(transport=_Bridge(self), base_url=BASE_URL, headers=self._auth(token))

    def _auth(self, token: str | None) -> dict[str, str]:
        secret = self.token if token is None else token
        return {"Authorization": f"Bearer {secret}"} if secret else {}

    def log(self) -> str:
        """Everything the app logged so far, one JSON object a line."""
        return self._capture.text()

    def plugin_pids(self) -> list[int]:
        """Live child processes of this test process started since the app started: its plugins."""
        return [p for p in child_pids(os.getpid()) if p not in self._before and pid_alive(p)]

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of a response, with the log attached when it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise AssertionError(
                f"not JSON ({response.status_code}): {response.text}\n{self.log()}"
            ) from None
