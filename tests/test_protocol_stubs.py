"""The committed generated stubs must match what `make proto` produces from the .proto files."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ["solstice/protocol/plugin/v1/plugin.proto", "solstice/protocol/goplugin/goplugin.proto"]


def _tree(base: Path, suffixes: tuple[str, ...]) -> dict[str, bytes]:
    return {
        str(p.relative_to(base)): p.read_bytes()
        for p in sorted(base.rglob("*"))
        if p.is_file() and p.name.endswith(suffixes)
    }


def test_python_stubs_are_current(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for proto in PROTOS:
        (src / proto).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / "src" / proto, src / proto)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{src}",
            f"--python_out={src}",
            f"--pyi_out={src}",
            f"--grpc_python_out={src}",
            # mypy-protobuf types the gRPC stubs; its plugin is installed beside this interpreter.
            f"--plugin=protoc-gen-mypy_grpc={Path(sys.executable).parent / 'protoc-gen-mypy_grpc'}",
            f"--mypy_grpc_out={src}",
            *[str(src / p) for p in PROTOS],
        ],
        check=True,
    )
    suffixes = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
    fresh = _tree(src / "solstice" / "protocol", suffixes)
    committed = _tree(ROOT / "src" / "solstice" / "protocol", suffixes)
    assert fresh.keys() == committed.keys()
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stubs out of date, run `make proto`: {stale}"


def test_go_stubs_are_current(tmp_path: Path) -> None:
    if shutil.which("protoc-gen-go") is None or shutil.which("protoc") is None:
        pytest.fail("protoc and protoc-gen-go are missing; run `make test` as root", pytrace=False)
    out = tmp_path / "go"
    out.mkdir()
    subprocess.run(
        ["protoc", f"-I{ROOT / 'src'}", f"--go_out={out}", f"--go-grpc_out={out}", PROTOS[0]],
        cwd=ROOT / "src",
        check=True,
    )
    committed = ROOT / "go" / "src" / "solstice" / "pluginv1"
    for name in ("plugin.pb.go", "plugin_grpc.pb.go"):
        assert filecmp.cmp(out / "solstice" / "pluginv1" / name, committed / name, shallow=False), (
            f"go/src/solstice/pluginv1/{name} is out of date, run `make proto`"
        )
