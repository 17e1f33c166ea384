"""The control-plane ASGI application: API routers, error handling and lifecycle."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI

from solstice import __version__
from solstice.api import audit, ops, plugins, problems, tokens
from solstice.api.middleware import RequestContextMiddleware
from solstice.control.bootstrap import ensure_admin_token, ensure_plugins
from solstice.control.manager import PluginManager
from solstice.host import PluginHost, PluginSpec
from solstice.settings import Settings
from solstice.store.database import create_engine, migrate, session_factory

log = structlog.get_logger("solstice.api")


def create_app(settings: Settings, initial_plugins: Sequence[PluginSpec] = ()) -> FastAPI:
    """The application; `initial_plugins` are created or updated in the store at start."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        await migrate(engine)
        sessions = session_factory(engine)
        generated = await ensure_admin_token(sessions, settings)
        if generated:
            # Printed once, on the terminal only: the store keeps just its hash.
            sys.stderr.write(
                "\n  No admin token existed, so one was created. It is shown this once; store it now:\n"
                f"  SOLSTICE_TOKEN={generated}\n\n"
            )
            sys.stderr.flush()
        await ensure_plugins(sessions, initial_plugins)
        manager = PluginManager(settings, sessions, PluginHost(settings))
        app.state.settings = settings
        app.state.sessions = sessions
        app.state.manager = manager
        app.state.token_touches = {}
        starting = asyncio.create_task(manager.start())
        try:
            yield
        finally:
            starting.cancel()
            await manager.aclose()
            await engine.dispose()

    app = FastAPI(
        title="Solstice",
        version=__version__,
        description="Plugin platform and LLM gateway: the control-plane API.",
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (plugins, tokens, audit, ops):
        app.include_router(module.router)
    app.add_middleware(RequestContextMiddleware)
    return app
