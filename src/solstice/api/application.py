"""The control-plane ASGI application: API routers, error handling and lifecycle."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from solstice import __version__
from solstice.api import audit, client_apps, edges, llms, ops, plugins, problems, schedules, sync, tokens
from solstice.control.bootstrap import ensure_admin_token, ensure_plugins
from solstice.control.changes import ChangeFeed
from solstice.control.gateway_view import StoredGatewayConfig
from solstice.control.manager import PluginManager
from solstice.control.object_deliveries import ObjectDeliveries
from solstice.control.object_hooks import ObjectHooks
from solstice.control.plugin_services import control_plane_services
from solstice.control.scheduler import Scheduler
from solstice.gateway.proxy import Gateway
from solstice.host import PluginHost, PluginSpec
from solstice.oci.puller import cache_dir_of
from solstice.sealing import load_keyring
from solstice.settings import Settings
from solstice.store.database import create_engine, migrate, session_factory
from solstice.web.middleware import RequestContextMiddleware
from solstice.web.proxy_route import mount_proxy

log = structlog.get_logger("solstice.api")


def _announce_oci_cache(settings: Settings) -> None:
    """Say where oci:// plugins are cached, and that it is a default when the variable is unset."""
    if settings.oci_cache_dir is None:
        log.info(
            "oci:// plugins are cached in the default directory; set AI_STUDIO_OCI_CACHE_DIR to move it",
            cache_dir=str(cache_dir_of(settings)),
        )
    else:
        log.info("oci:// plugins are cached", cache_dir=str(settings.oci_cache_dir))


async def _start(manager: PluginManager, scheduler: Scheduler, deliveries: ObjectDeliveries) -> None:
    """Load the stored plugins, then run their schedules and deliver their notifications (a due
    run or a queued notification finds its plugin up)."""
    await manager.start()
    scheduler.start()
    deliveries.start()


def create_app(settings: Settings, initial_plugins: Sequence[PluginSpec] = ()) -> FastAPI:
    """The application; `initial_plugins` are created or updated in the store at start."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        keyring = load_keyring(settings)
        await migrate(engine, keyring)
        sessions = session_factory(engine, keyring)
        generated = await ensure_admin_token(sessions, settings)
        if generated:
            # Printed once, on the terminal only: the store keeps just its hash.
            sys.stderr.write(
                "\n  No admin token existed, so one was created. It is shown this once; store it now:\n"
                f"  SOLSTICE_TOKEN={generated}\n\n"
            )
            sys.stderr.flush()
        await ensure_plugins(sessions, initial_plugins)
        _announce_oci_cache(settings)
        host = PluginHost(settings)
        manager = PluginManager(settings, sessions, host)
        routes = StoredGatewayConfig(sessions)
        changes = ChangeFeed()
        routes.listeners.append(changes.changed)  # every change reaches waiting edges
        await routes.refresh()
        manager.listeners.append(routes.refresh)
        gateway = Gateway(settings, routes, host)
        host.services = control_plane_services(settings, sessions, gateway)
        gateway.start()
        scheduler = Scheduler(settings, sessions, host)
        object_hooks = ObjectHooks(sessions, host)
        manager.object_hooks = object_hooks
        deliveries = ObjectDeliveries(settings, sessions, host, object_hooks, scheduler.server)
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.manager = manager
        app.state.routes = routes
        app.state.gateway = gateway
        app.state.token_touches = {}
        app.state.changes = changes
        app.state.object_hooks = object_hooks
        starting = asyncio.create_task(_start(manager, scheduler, deliveries))
        try:
            yield
        finally:
            starting.cancel()
            await scheduler.aclose()
            await deliveries.aclose()
            await gateway.aclose()
            await manager.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Solstice",
        version=__version__,
        description="Plugin platform and LLM gateway: the control-plane API.",
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (plugins, schedules, llms, client_apps, tokens, audit, edges, sync, ops):
        app.include_router(module.router)
    mount_proxy(app)
    app.add_middleware(RequestContextMiddleware)
    return app
