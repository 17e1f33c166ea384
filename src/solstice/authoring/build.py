"""`solstice plugin build`: one self-contained executable from a Python plugin, with PyInstaller.

The executable carries the interpreter, the SDK, grpc and protobuf, so it runs where neither
Python nor Solstice is installed (same OS and CPU architecture, glibc at least as new as here).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from solstice.authoring.errors import AuthoringError

INSTALL_HINT = "pip install 'solstice[build]'"
# Checked against PyInstaller 6.22 (with grpcio 1.85, protobuf 7.36): its import analysis finds
# every module the SDK loads at run time, in both start modes (handshake and --listen), so no
# --hidden-import is needed; tests/test_plugin_build.py runs the result in a bare environment.
# grpc_tools is only grpc's optional `grpc.tools` alias, never used by a plugin: leaving it out
# saves its 8 MB protoc compiler.
_EXCLUDED = ("grpc_tools",)
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm/v7"}
_TAIL_LINES = 15


@dataclass(frozen=True)
class Built:
    """The executable `build_plugin` wrote."""

    path: Path
    size: int
    sha256: str
    seconds: float
    platform: str


def default_name(script: Path) -> str:
    """header-enricher for header-enricher/plugin.py; the file's stem for any other name."""
    if script.stem == "plugin" and script.resolve().parent.name:
        return script.resolve().parent.name
    return script.stem


def host_platform() -> str:
    """This machine as os/arch, the value `solstice oci push --platform` takes."""
    machine = platform.machine().lower()
    return f"{platform.system().lower()}/{_ARCH.get(machine, machine)}"


def check_pyinstaller() -> None:
    """AuthoringError with the install command when PyInstaller is not importable."""
    try:
        import PyInstaller  # noqa: F401  # the build runs it as `python -m PyInstaller`
    except ImportError:
        raise AuthoringError(f"PyInstaller is not installed; run {INSTALL_HINT} and build again") from None


def build_plugin(
    script: Path, output: Path | None = None, name: str | None = None, *, verbose: bool = False
) -> Built:
    """Build `script` into one executable at `output` (default dist/<name>); replaces it atomically."""
    check_pyinstaller()
    if not script.is_file():
        raise AuthoringError(f"plugin file {script} does not exist; give the path of the plugin's .py file")
    script = script.resolve()
    name = name or default_name(script)
    if not name or "/" in name or name.startswith("."):
        raise AuthoringError(f"--name {name!r} is not a file name; give a name like my-plugin")
    target = _target(output, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    # PyInstaller's build, spec and dist directories all live in a temporary directory, so
    # nothing lands in the plugin's directory or the current one but the executable itself.
    with tempfile.TemporaryDirectory(prefix="solstice-build-") as scratch:
        work = Path(scratch)
        command = [
            sys.executable, "-m", "PyInstaller", str(script),
            "--onefile", "--noconfirm", "--name", name,
            "--distpath", str(work / "dist"), "--workpath", str(work / "build"),
            "--specpath", str(work), "--paths", str(script.parent),
            "--log-level", "INFO" if verbose else "WARN",
            *(arg for module in _EXCLUDED for arg in ("--exclude-module", module)),
        ]  # fmt: skip
        _run_pyinstaller(command, script, verbose)
        built = work / "dist" / name
        if not built.is_file():
            raise AuthoringError(f"PyInstaller finished without writing {built.name}; rerun with --verbose")
        _install(built, target)
    seconds = time.monotonic() - started
    return Built(target, target.stat().st_size, _sha256(target), seconds, host_platform())


def _target(output: Path | None, name: str) -> Path:
    """`output`, or `output/<name>` for an existing directory, or dist/<name> by default."""
    if output is None:
        return Path("dist", name).absolute()
    return (output / name if output.is_dir() else output).absolute()


def _run_pyinstaller(command: list[str], script: Path, verbose: bool) -> None:
    # The scratch directory as cwd: PyInstaller may write logs or caches relative to it.
    cwd = Path(command[command.index("--specpath") + 1])
    if verbose:
        shown = subprocess.run(command, cwd=cwd, check=False)
        if shown.returncode:
            raise AuthoringError(f"PyInstaller failed (exit {shown.returncode}) building {script}; see above")
        return
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode:
        lines = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if "ERROR" in line or "Error" in line]
        reason = (errors or lines or ["no output"])[-1].strip()
        # The tail goes to stderr so the failure can be diagnosed without a second, verbose build.
        sys.stderr.write("\n".join(lines[-_TAIL_LINES:]) + "\n")
        raise AuthoringError(
            f"PyInstaller failed (exit {done.returncode}) building {script}: {reason}; "
            "rerun with --verbose for the whole log"
        )


def _install(built: Path, target: Path) -> None:
    """Copy to a temporary file beside the target, then rename: never a half-written executable."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, built.open("rb") as data:
            while chunk := data.read(1 << 20):
                out.write(chunk)
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        while chunk := data.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
