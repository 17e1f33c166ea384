"""`solstice oci` and `solstice keys` run as a user runs them, against a real registry."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from solstice.oci.cache import Cache
from solstice.oci.keys import generate_keypair, load_private_key, public_key_pem
from tests.oci.images import sha256_digest, skopeo_inspect_raw, write_plugin_executable
from tests.oci.registries import Registry

SOLSTICE = [sys.executable, "-m", "solstice"]
PASSWORD = "correct horse battery staple"
# Variables of the developer's shell that would change what the commands do.
_FOREIGN = ("SOLSTICE_", "OCI_PLUGINS_", "AI_STUDIO_", "COSIGN_", "DOCKER_CONFIG", "SOURCE_DATE_EPOCH")


class Cli:
    """The `solstice` command in a scratch directory, with its own HOME, data directory and password."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.env = {name: value for name, value in os.environ.items() if not name.startswith(_FOREIGN)}
        self.env |= {
            "HOME": str(workdir),
            "SOLSTICE_DATA_DIR": str(workdir / "data"),
            "COSIGN_PASSWORD": PASSWORD,
        }

    def start(self, *args: str, **env: str | None) -> subprocess.Popen[str]:
        """Start it with extra variables (None unsets one); stdin is not a terminal."""
        merged = {**self.env, **env}
        return subprocess.Popen(
            [*SOLSTICE, *args],
            cwd=self.workdir,
            env={name: value for name, value in merged.items() if value is not None},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def __call__(self, *args: str, **env: str | None) -> subprocess.CompletedProcess[str]:
        """Run it to the end."""
        return finish(self.start(*args, **env))

    def keypair(self, prefix: str = "cosign") -> tuple[Path, Path]:
        """A key pair made in-process (the `keys generate` test covers the command itself)."""
        private_pem, public_pem = generate_keypair(PASSWORD.encode())
        private, public = self.workdir / f"{prefix}.key", self.workdir / f"{prefix}.pub"
        private.write_bytes(private_pem)
        public.write_bytes(public_pem)
        return private, public


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path)


def finish(process: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return result.stdout


def error(result: subprocess.CompletedProcess[str]) -> str:
    """The message of a failed command, checked to be one `solstice: …` line with exit status 1."""
    assert result.returncode == 1, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert result.stdout == ""
    assert result.stderr.startswith("solstice: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("solstice: ").strip()


def run_output(path: Path) -> str:
    return subprocess.run([str(path)], capture_output=True, text=True, timeout=10, check=True).stdout


def test_generate_push_sign_verify_inspect_pull_and_cache(registry: Registry, cli: Cli) -> None:
    ok(cli("keys", "generate"))
    private, public = cli.workdir / "cosign.key", cli.workdir / "cosign.pub"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    load_private_key(private.read_bytes(), PASSWORD.encode())

    exe = write_plugin_executable(cli.workdir / "my-plugin", "cli plugin")
    ref = f"oci://{registry.host}/plugins/cli:v1"
    digest = ok(cli("oci", "push", "my-plugin", ref)).strip()
    assert digest == sha256_digest(skopeo_inspect_raw(registry, "plugins/cli:v1"))
    assert f"@{digest}" in ok(cli("oci", "sign", ref, "--key", "cosign.key"))

    # Independent commands run side by side to keep the test quick.
    stranger = cli.workdir / "stranger.pub"
    stranger.write_bytes(public_key_pem(ec.generate_private_key(ec.SECP256R1()).public_key()))
    given_key = cli.start("oci", "verify", ref, "--key", "cosign.pub")
    env_key = cli.start("oci", "verify", ref, OCI_PLUGINS_PUBLIC_KEY_1=str(public))
    other_key = cli.start("oci", "verify", ref, "--key", str(stranger))
    inspected = cli.start("oci", "inspect", ref, "--json")
    pulling = cli.start("oci", "pull", ref, "-o", "out", "--json")
    assert "bundle signature" in ok(finish(given_key))
    assert ok(finish(env_key)).startswith(f"Verified {registry.host}/plugins/cli@{digest}")
    refused = error(finish(other_key))
    assert f"plugins/cli@{digest} has no valid signature" in refused and "does not verify" in refused
    report = json.loads(ok(finish(inspected)))
    assert report["digest"] == digest and len(report["layers"]) == 1
    assert [(s["signed"], s["kind"]) for s in report["signatures"]] == [(digest, "bundle")]
    pulled = json.loads(ok(finish(pulling)))
    assert pulled["digest"] == digest and not pulled["cached"]
    assert run_output(cli.workdir / "out") == run_output(Path(pulled["path"])) == "cli plugin\n"
    assert Path(pulled["path"]).is_relative_to(cli.workdir / "data" / "oci-cache")
    assert exe.read_bytes() == (cli.workdir / "out").read_bytes()

    [entry] = json.loads(ok(cli("oci", "cache", "ls", "--json")))
    assert (entry["digest"], entry["reference"]) == (digest, ref)
    pruned = ok(cli("oci", "cache", "prune", "--all"))
    assert "Removed 1 entries" in pruned and entry["key"] in pruned
    assert Cache(cli.workdir / "data" / "oci-cache", 1).entries() == []


def test_multi_platform_artifact_signed_in_the_legacy_format(registry: Registry, cli: Cli) -> None:
    write_plugin_executable(cli.workdir / "amd" / "plugin", "amd64 build")
    write_plugin_executable(cli.workdir / "arm" / "plugin", "arm64 build")
    cli.keypair()
    ref = f"oci://{registry.host}/plugins/multi:v2"
    args = ["amd/plugin", "arm/plugin", ref, "--platform", "linux/amd64", "--platform", "linux/arm64"]
    digest = ok(cli("oci", "push", *args, "--format", "artifact")).strip()
    assert "legacy signature" in ok(cli("oci", "sign", ref, "--key", "cosign.key", "--format", "legacy"))

    verifying = cli.start("oci", "verify", f"{ref}?arch=linux/arm64", "--key", "cosign.pub")
    inspected = cli.start("oci", "inspect", ref, "--json")
    pulling = cli.start("oci", "pull", f"{ref}?arch=linux/arm64", "-o", "arm-plugin", "--json")
    assert "in tag sha256-" in ok(finish(verifying))
    report = json.loads(ok(finish(inspected)))
    assert report["digest"] == digest
    assert [p["platform"] for p in report["platforms"]] == ["linux/amd64", "linux/arm64"]
    assert [s["kind"] for s in report["signatures"]] == ["legacy"]
    arm = json.loads(ok(finish(pulling)))
    assert run_output(cli.workdir / "arm-plugin") == "arm64 build\n"

    ok(cli("oci", "pull", f"{ref}?arch=linux/amd64"))
    # The arm64 entry was used first, so it is the one a smaller cache gives up.
    one_entry = (cli.workdir / "amd" / "plugin").stat().st_size
    pruned = ok(cli("oci", "cache", "prune", "--max-bytes", str(one_entry)))
    assert "Removed 1 entries" in pruned and arm["path"].split("/")[-2] in pruned


def test_registry_credentials_come_from_the_environment(basic_registry: Registry, cli: Cli) -> None:
    write_plugin_executable(cli.workdir / "plugin", "behind basic auth")
    ref = f"oci://{basic_registry.host}/plugins/private:v1"
    anonymous = cli.start("oci", "push", "plugin", ref)
    creds = {
        "OCI_PLUGINS_REGISTRY_CI_USERNAME": str(basic_registry.user),
        "OCI_PLUGINS_REGISTRY_CI_PASSWORD": str(basic_registry.password),
        "OCI_PLUGINS_REGISTRY_CI_HOST": basic_registry.host,
    }
    ok(cli("oci", "push", "plugin", f"{ref}?auth=CI", SOURCE_DATE_EPOCH="1700000000", **creds))
    assert "requires authentication" in error(finish(anonymous))
    manifest = json.loads(skopeo_inspect_raw(basic_registry, "plugins/private:v1"))
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"
    result = cli("oci", "pull", f"{ref}?auth=CI", "-o", "pulled", **creds)
    ok(result)
    assert str(basic_registry.password) not in result.stdout + result.stderr
    assert run_output(cli.workdir / "pulled") == "behind basic auth\n"


def test_mistakes_get_one_line_that_says_what_to_do(registry: Registry, cli: Cli) -> None:
    write_plugin_executable(cli.workdir / "plugin", "x")
    cli.keypair()
    ref = f"oci://{registry.host}/plugins/errors:v1"
    cases: list[tuple[list[str], dict[str, str | None], str]] = [
        (
            ["oci", "push", "plugin", ref, "--platform", "linux/amd64", "--platform", "linux/arm64"],
            {},
            "give one --platform per FILE",
        ),
        (["oci", "push", "plugin", f"{ref}@sha256:{'a' * 64}"], {}, "push to a tag"),
        (["oci", "sign", ref, "--key", "cosign.key"], {"COSIGN_PASSWORD": "wrong"}, "wrong password"),
        (["oci", "sign", ref, "--key", "cosign.key"], {"COSIGN_PASSWORD": None}, "set COSIGN_PASSWORD"),
        (["oci", "sign", ref, "--key", "missing.key"], {}, "missing.key: no such file"),
        (["oci", "verify", ref], {}, "no public key to verify with"),
        (["oci", "inspect", ref], {}, f"registry {registry.host} has no /v2/plugins/errors/manifests/v1"),
        (["oci", "cache", "prune", "--all", "--max-bytes", "1"], {}, "--all or --max-bytes, not both"),
        (["keys", "generate"], {}, "cosign.key already exists"),
    ]
    before = (cli.workdir / "cosign.key").read_bytes()
    # Independent commands: run them side by side to keep the test quick.
    running = [(message, cli.start(*args, **env)) for args, env, message in cases]
    for message, process in running:
        result = finish(process)
        assert message in error(result), result.args
    assert (cli.workdir / "cosign.key").read_bytes() == before
