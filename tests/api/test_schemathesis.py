"""Property-based requests generated from /openapi.json: no input may cause a 500."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.server import Server

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


# About a minute per store on an idle machine; the run's own timeout (400 s) bounds it, not the
# suite's default per-test 120 s, which a loaded machine exceeded.
@pytest.mark.timeout(420)
def test_no_generated_request_causes_a_server_error(api: Server, tmp_path: Path) -> None:
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.api.schemathesis_hooks", "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run(
        [
            str(SCHEMATHESIS), "--no-color", "run", f"{api.url}/openapi.json",
            "--checks", "not_a_server_error",
            "--header", f"Authorization: Bearer {api.token}",
            "--max-examples", "30",
            "--seed", "20261128",
            "--generation-deterministic",
            "--request-timeout", "30",
            "--report-dir", str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert " generated" in done.stdout and "ST101" not in done.stdout
