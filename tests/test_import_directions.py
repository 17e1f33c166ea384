"""The import contracts in pyproject.toml hold for the tree, and break when a package imports upward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter with the project's contracts over the `solstice` package under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root / "src")}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def _copy_of_the_tree(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "src" / "solstice", tmp_path / "src" / "solstice",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# One forbidden import per contract: the module it is added to, the line, the contract it breaks,
# and the edge import-linter must name.
VIOLATIONS = {
    "the gateway importing the store": (
        "gateway/openai_errors.py", "from solstice.store.models import AppRow",
        "The data plane imports nothing from the API, the store or the control plane",
        "solstice.gateway.openai_errors -> solstice.store.models",
    ),
    "the edge importing the API": (
        "edge/source.py", "import solstice.api.problems",
        "Packages import only the layers below them", "solstice.edge.source -> solstice.api.problems",
    ),
    "the SDK importing the host": (
        "sdk/stdio.py", "import solstice.host.errors",
        "Shared modules, the protocol and the plugin SDK import no runtime package",
        "solstice.sdk.stdio -> solstice.host.errors",
    ),
    # The edge loads sealing.py; SQLAlchemy there cost every edge a tenth of a second at start.
    "a shared module importing SQLAlchemy": (
        "sealing.py", "from sqlalchemy import text",
        "The data plane and the shared modules import no database library", "solstice.sealing -> sqlalchemy",
    ),
}  # fmt: skip


@pytest.mark.parametrize("violation", VIOLATIONS)
def test_a_forbidden_import_breaks_its_contract(violation: str, tmp_path: Path) -> None:
    path, line, contract, edge = VIOLATIONS[violation]
    root = _copy_of_the_tree(tmp_path)
    module = root / "src/solstice" / path
    module.write_text(module.read_text() + f"\n{line}  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
    assert edge in result.stdout
