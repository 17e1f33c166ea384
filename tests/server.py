"""A real `solstice serve` process for API tests, on 127.0.0.1 with its own data directory."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import child_pids, terminate, wait_until

ADMIN_TOKEN = "sol_test_admin_token_0123456789abcdefghij"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """`solstice serve` started with the given environment; stopped by PID."""

    def __init__(
        self,
        data_dir: Path,
        *,
        database_url: str = "",
        admin_token: str | None = ADMIN_TOKEN,
        plugins: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = data_dir
        self.log_path = data_dir / f"serve-{self.port}.log"
        environment = {
            **os.environ,
            "SOLSTICE_PORT": str(self.port),
            "SOLSTICE_HOST": "127.0.0.1",
            "SOLSTICE_DATA_DIR": str(data_dir),
            "SOLSTICE_LOG_FORMAT": "json",
            "SOLSTICE_PLUGIN_HEALTH_INTERVAL": "0.5",
            "SOLSTICE_RECONCILE_INTERVAL": "0.5",
            # Test plugins serve on 127.0.0.1; the policy's internal-network rules have their own tests.
            "ALLOW_INTERNAL_NETWORK_ACCESS": "true",
            **(env or {}),
        }
        environment.pop("SOLSTICE_ADMIN_TOKEN", None)
        if admin_token is not None:
            environment["SOLSTICE_ADMIN_TOKEN"] = admin_token
        if database_url:
            environment["SOLSTICE_DATABASE_URL"] = database_url
        args = [sys.executable, "-m", "solstice", "serve"]
        for plugin in plugins:
            args += ["--plugin", plugin]
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(args, env=environment, stdout=self._log, stderr=subprocess.STDOUT)
        self.token = admin_token or ""

    def wait_ready(self, timeout: float = 60.0) -> Server:
        """Block until /readyz answers 200; fail with the server's log otherwise."""
        wait_until(self._ready, timeout, self.log, what="solstice serve to be ready")
        return self

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"solstice serve exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace")

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the API with `token` (default: the admin token; "" sends none)."""
        secret = self.token if token is None else token
        headers = {"Authorization": f"Bearer {secret}"} if secret else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)

    def plugin_pids(self) -> list[int]:
        """PIDs of the plugin processes this server started."""
        return child_pids(self.proc.pid)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the server and wait for it; SIGKILL if it does not exit in time."""
        code = terminate(self.proc, sig, timeout)
        self._log.close()
        return code

    def json(self, response: httpx.Response) -> Any:
        """The JSON body of a response, with the server log attached when it is not JSON."""
        try:
            return response.json()
        except ValueError:
            raise AssertionError(
                f"not JSON ({response.status_code}): {response.text}\n{self.log()}"
            ) from None
