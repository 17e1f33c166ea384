"""Whether the store can write: a failed write (full disk, read-only) marks it, a successful one clears it.

/readyz reports the mark, and the API turns such failures into a 503 with one sentence.
"""

from __future__ import annotations

import errno
import weakref
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, ExceptionContext
from sqlalchemy.ext.asyncio import AsyncEngine

# OS errors that mean "the disk cannot take this write", not a bug.
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO})
# SQLite result codes (Python 3.11+ names them) for the same conditions.
_SQLITE_CODES = ("SQLITE_FULL", "SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN")
# PostgreSQL SQLSTATEs: disk_full, read_only_sql_transaction, io_error.
_PG_STATES = frozenset({"53100", "25006", "58030"})


class StoreHealth:
    """The last storage failure of one engine, or None while writes work."""

    def __init__(self) -> None:
        self.failure: str | None = None

    def failed(self, reason: str) -> None:
        """Record that a write failed for `reason`."""
        self.failure = reason

    def ok(self) -> None:
        """Record that a write succeeded."""
        self.failure = None


_HEALTH: weakref.WeakKeyDictionary[Engine, StoreHealth] = weakref.WeakKeyDictionary()


def storage_failure(exc: BaseException) -> str | None:
    """A short reason when `exc` means the store cannot write (full, read-only, I/O error), else None."""
    for candidate in (exc, getattr(exc, "orig", None), getattr(exc, "__cause__", None)):
        if isinstance(candidate, OSError) and candidate.errno in _STORAGE_ERRNOS:
            return candidate.strerror or errno.errorcode.get(candidate.errno or 0, "I/O error")
        name = getattr(candidate, "sqlite_errorname", "") or ""
        if name.startswith(_SQLITE_CODES):
            return str(candidate)
        if getattr(candidate, "sqlstate", None) in _PG_STATES:
            return str(candidate).splitlines()[0] if str(candidate) else "the server refused the write"
    return None


def health_of(engine: AsyncEngine) -> StoreHealth:
    """The health of `engine`, watching its writes from the first call on."""
    sync = engine.sync_engine
    health = _HEALTH.get(sync)
    if health is None:
        health = _HEALTH[sync] = StoreHealth()
        _watch(sync, health)
    return health


def _watch(engine: Engine, health: StoreHealth) -> None:
    @event.listens_for(engine, "handle_error")
    def _error(context: ExceptionContext) -> None:
        reason = storage_failure(context.original_exception)
        if reason is not None:
            health.failed(reason)

    # Connections with a write not yet committed. Not `conn.info`: reading it on a connection whose
    # transaction a cancelled task left invalid raises PendingRollbackError, which would replace the
    # task's CancelledError during the session's close.
    wrote: weakref.WeakSet[Any] = weakref.WeakSet()

    @event.listens_for(engine, "after_cursor_execute")
    def _executed(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if context is not None and (context.isinsert or context.isupdate or context.isdelete):
            wrote.add(conn)

    @event.listens_for(engine, "commit")
    def _commit(conn: Any) -> None:
        # Fired just before the commit: a commit that then fails is reported by handle_error after this.
        if conn in wrote:
            wrote.discard(conn)
            health.ok()

    @event.listens_for(engine, "rollback")
    def _rollback(conn: Any) -> None:
        wrote.discard(conn)


async def probe(engine: AsyncEngine) -> str | None:
    """Try a real write (a no-op update, still written to disk); the reason it failed, or None."""
    health = health_of(engine)
    try:
        async with engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
    except Exception as exc:  # any failure means the store cannot write; say why when we know
        reason = storage_failure(exc) or type(exc).__name__
        health.failed(reason)
        return reason
    health.ok()
    return None
