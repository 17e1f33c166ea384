"""A store that cannot write: one-sentence 503s, /readyz not ready until it can, and a clear start error."""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import httpx

from tests.conftest import TESTBED, wait_until
from tests.server import Server, free_port

PROBLEM = "application/problem+json"


def _largest_database_file(data_dir: Path) -> int:
    return max(path.stat().st_size for path in data_dir.glob("solstice.db*"))


def _create(client: httpx.Client, blob: str = "") -> httpx.Response:
    body = {
        "name": "S",
        "command": f"file://{TESTBED}",
        "hook_type": "pre_auth",
        "slug": f"s-{uuid.uuid4().hex[:8]}",
        "is_active": False,
        "config": {"blob": blob},
    }
    return client.post("/api/v1/plugins", json=body)


def _wait_for_status(server: Server, path: str, status: int) -> httpx.Response:
    """The answer to GET `path` once it has `status`."""

    def answered() -> httpx.Response | None:
        response = httpx.get(f"{server.url}{path}", timeout=10)
        return response if response.status_code == status else None

    return wait_until(answered, 30, server.log, what=f"{path} to answer {status}")


def test_a_full_disk_gives_503_and_not_ready_until_writes_work_again(tmp_path: Path) -> None:
    server = Server(tmp_path).wait_ready()
    soft, hard = resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE)
    try:
        with server.client() as client:
            assert _create(client).status_code == 201
            # The kernel refuses to grow any file of the server past its current size (EFBIG), as a full
            # disk refuses new blocks: a real failed write, without mount privileges.
            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (_largest_database_file(tmp_path), hard))
            refused = _create(client, "x" * 900_000)
            assert refused.status_code == 503, refused.text
            assert refused.headers["content-type"] == PROBLEM
            detail = refused.json()["detail"]
            assert "cannot write" in detail and "\n" not in detail, detail
            ready = httpx.get(f"{server.url}/readyz", timeout=10)
            assert ready.status_code == 503, ready.text
            assert ready.json()["checks"]["database"].startswith("not writable"), ready.text
            assert client.get("/api/v1/plugins").status_code == 200  # reads still work

            resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
            assert _wait_for_status(server, "/readyz", 200).status_code == 200
            assert _create(client, "x" * 900_000).status_code == 201
    finally:
        server.stop()


def test_an_unwritable_data_dir_stops_serve_with_one_line() -> None:
    # A directory every user can reach (pytest's own are private to root), read-only to the server.
    base = Path(tempfile.mkdtemp(prefix="solstice-ro-", dir="/tmp"))
    base.chmod(0o755)
    data_dir = base / "data"
    data_dir.mkdir()
    data_dir.chmod(0o555)
    # Root writes anywhere: run the server as nobody, for whom the directory is read-only.
    prefix = (
        ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] if os.geteuid() == 0 else []
    )
    env = {
        **os.environ,
        "SOLSTICE_DATA_DIR": str(data_dir),
        "SOLSTICE_ADMIN_TOKEN": "sol_" + "x" * 40,
        "SOLSTICE_HOST": "127.0.0.1",
        "SOLSTICE_PORT": str(free_port()),
    }
    env.pop("SOLSTICE_DATABASE_URL", None)
    try:
        done = subprocess.run(
            [*prefix, sys.executable, "-m", "solstice", "serve"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        shutil.rmtree(base)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(data_dir) in lines[0] and "SOLSTICE_DATA_DIR" in lines[0], lines[0]
