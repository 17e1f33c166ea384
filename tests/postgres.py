"""A throwaway PostgreSQL server from Debian's package, on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

from tests.conftest import wait_until
from tests.server import free_port

_USER = "solstice"


def _bindir() -> Path:
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not versions:
        raise RuntimeError(
            "PostgreSQL is not installed; run `make test` as root to install Debian's postgresql"
        )
    return versions[-1].parent


def _as_postgres() -> list[str]:
    """The prefix that runs a command as the postgres user when we are root (postgres refuses root)."""
    if os.geteuid() != 0:
        return []
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"]


class Postgres:
    """initdb into a temporary directory, then `postgres` listening on 127.0.0.1:<free port>."""

    def __init__(self) -> None:
        self.bindir = _bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="solstice-pg-"))
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
        self.port = free_port()
        data = self.dir / "data"
        subprocess.run(
            [
                *_as_postgres(),
                str(self.bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                _USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        self.proc = subprocess.Popen(
            [
                *_as_postgres(),
                str(self.bindir / "postgres"),
                "-D",
                str(data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_ready()

    def _psql(self, sql: str, database: str = "postgres") -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                str(self.bindir / "psql"),
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                _USER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
        )

    def _wait_ready(self) -> None:
        wait_until(self._accepts, 30, what="postgres to accept connections", interval=0.1)

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"postgres exited: {self.proc.stderr.read().decode() if self.proc.stderr else ''}"
            )
        return self._psql("SELECT 1").returncode == 0

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"t_{uuid.uuid4().hex[:12]}"
        done = self._psql(f"CREATE DATABASE {name}")
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return f"postgresql://{_USER}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        """Fast shutdown (SIGINT), then remove the directory."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)
