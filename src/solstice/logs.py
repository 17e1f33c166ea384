"""Logging setup: structlog records (and stdlib ones, e.g. uvicorn's), as text or JSON lines."""

from __future__ import annotations

import logging
import sys

import structlog

# Libraries whose debug records carry SQL parameters or HTTP headers, which hold secrets (an LLM's
# upstream key, registry credentials): they log at WARNING at most, whatever SOLSTICE_LOG_LEVEL says.
QUIET_LIBRARIES = ("sqlalchemy", "aiosqlite", "asyncpg", "httpcore", "hpack", "h2", "grpc", "aiohttp")


def configure_logging(level: str = "info", fmt: str = "console") -> None:
    """Route structlog and stdlib logging to stderr at `level`, rendered as text or JSON."""
    numeric = logging.getLevelNamesMapping()[level.upper()]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the stdlib (uvicorn, alembic): render their records the same way.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
