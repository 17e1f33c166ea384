"""The import contracts in pyproject.toml hold for the tree, and break when a package imports upward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

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


def test_the_gateway_importing_the_store_breaks_the_build(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    module = root / "src/solstice/gateway/openai_errors.py"
    module.write_text(module.read_text() + "\nfrom solstice.store.models import AppRow  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert (
        "The data plane imports nothing from the API, the store or the control plane BROKEN" in result.stdout
    )
    assert "solstice.gateway.openai_errors -> solstice.store.models" in result.stdout


def test_the_edge_importing_the_api_breaks_the_layers(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    module = root / "src/solstice/edge/source.py"
    module.write_text(module.read_text() + "\nimport solstice.api.problems  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "Packages import only the layers below them BROKEN" in result.stdout
    assert "solstice.edge.source -> solstice.api.problems" in result.stdout


def test_the_sdk_importing_the_host_breaks_its_contract(tmp_path: Path) -> None:
    root = _copy_of_the_tree(tmp_path)
    module = root / "src/solstice/sdk/stdio.py"
    module.write_text(module.read_text() + "\nimport solstice.host.errors  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "Shared modules, the protocol and the plugin SDK import no runtime package BROKEN" in result.stdout


def test_a_shared_module_importing_sqlalchemy_breaks_the_edge_contract(tmp_path: Path) -> None:
    # The edge loads sealing.py; SQLAlchemy there cost every edge a tenth of a second at start.
    root = _copy_of_the_tree(tmp_path)
    module = root / "src/solstice/sealing.py"
    module.write_text(module.read_text() + "\nfrom sqlalchemy import text  # noqa\n")
    result = _lint(root)
    assert result.returncode != 0
    assert "The data plane and the shared modules import no database library BROKEN" in result.stdout
    assert "solstice.sealing -> sqlalchemy" in result.stdout
