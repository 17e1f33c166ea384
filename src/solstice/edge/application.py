"""The edge gateway's application: the LLM proxy, health, readiness and metrics; no write API."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from solstice import __version__
from solstice.edge.plugin_data import FileKv
from solstice.edge.plugin_services import edge_services, forget_data_of
from solstice.edge.plugins_yaml import FileSource
from solstice.edge.reconcile import Reconciler
from solstice.edge.snapshot_file import SnapshotStore, edge_id
from solstice.edge.source import ControlPlaneSource
from solstice.gateway.proxy import Gateway
from solstice.gateway.routes import ConfigHolder
from solstice.host import PluginHost
from solstice.host.oci_config import config_from_settings
from solstice.sealing import load_keyring
from solstice.settings import Settings
from solstice.web.middleware import RequestContextMiddleware
from solstice.web.proxy_route import mount_proxy

log = structlog.get_logger("solstice.edge")


def create_edge_app(settings: Settings) -> FastAPI:
    """The edge application; its lifespan syncs from the control plane until shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        host = PluginHost(settings, oci=config_from_settings(settings, edge=True))
        holder = ConfigHolder()
        # Before any plugin starts: a plugin that declares scopes gets its service channel at start.
        gateway = Gateway(settings, holder, host)
        plugin_data = FileKv(settings.data_dir)
        host.services = edge_services(
            settings, gateway, plugin_data, file_config=settings.edge_config is not None
        )
        reconciler = Reconciler(host, holder, on_removed=forget_data_of(plugin_data))
        source: ControlPlaneSource | FileSource
        if settings.edge_config is not None:
            source = FileSource(settings.edge_config, settings.environ, reconciler.apply)
            await source.load()
        else:
            store = SnapshotStore(settings.data_dir, load_keyring(settings))
            identity = edge_id(settings.data_dir, settings.edge_id)
            source = ControlPlaneSource(settings, identity, reconciler.apply, store.save)
            persisted = store.load()
            if persisted is not None:
                # Serve what was last applied at once: the control plane may be down.
                await reconciler.apply(persisted)
                source.served_from_disk(persisted)
                log.info("serving the persisted configuration", version=persisted.get("version"))
        gateway.start()
        app.state.gateway = gateway
        app.state.sync = source
        app.state.reconciler = reconciler
        syncing = asyncio.create_task(source.run())
        try:
            yield
        finally:
            syncing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await syncing
            if isinstance(source, ControlPlaneSource):
                await source.aclose()
            await gateway.aclose()
            await host.aclose()
            plugin_data.close()

    app = FastAPI(title="Solstice edge", version=__version__, lifespan=lifespan, openapi_url=None)
    app.add_middleware(RequestContextMiddleware)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(request: Request) -> JSONResponse:
        # Ready once any configuration is applied; a stale one still serves, and says so.
        status = request.app.state.sync.status
        ready = request.app.state.reconciler.version is not None
        body = {"status": "ready" if ready else "not ready", "config": status.as_dict()}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    mount_proxy(app)
    return app
