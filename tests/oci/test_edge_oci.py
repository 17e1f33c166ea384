"""An oci:// plugin on two edges: each pulls with its own registry credentials and signature policy."""

from __future__ import annotations

from pathlib import Path

from solstice.oci import signing
from solstice.oci.credentials import Credential
from solstice.oci.keys import generate_keypair, load_private_key
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions, RegistryClient
from tests.conftest import wait_until
from tests.oci.images import push_image_with_umoci
from tests.oci.registries import Registry
from tests.oci.test_oci_plugins import copy_testbed
from tests.server import Server
from tests.test_edge import Edge


async def test_each_edge_pulls_with_its_own_credentials_and_signature_policy(
    basic_registry: Registry, tmp_path: Path
) -> None:
    digest = push_image_with_umoci(basic_registry, "plugins/guard:v1", copy_testbed(tmp_path, "edge-oci"))
    image = f"oci://{basic_registry.host}/plugins/guard:v1"
    private_pem, public_pem = generate_keypair(b"pw")
    (tmp_path / "cosign.pub").write_bytes(public_pem)
    credential = Credential("basic", basic_registry.user or "", basic_registry.password or "", "test")
    async with RegistryClient(basic_registry.host, credential, ClientOptions()) as client:
        await signing.sign(client, parse_reference(image), digest, load_private_key(private_pem, b"pw"))

    auth = {
        "OCI_PLUGINS_REGISTRY_LOCAL_USERNAME": basic_registry.user or "",
        "OCI_PLUGINS_REGISTRY_LOCAL_PASSWORD": basic_registry.password or "",
        "OCI_PLUGINS_REGISTRY_LOCAL_HOST": basic_registry.host,
    }
    (tmp_path / "control").mkdir()
    control = Server(tmp_path / "control", env=auth).wait_ready()
    try:
        with control.client() as client:
            token = client.post("/api/v1/tokens", json={"name": "e", "scope": "edge"}).json()["token"]
            created = client.post(
                "/api/v1/plugins",
                json={
                    "name": "g",
                    "slug": "guard",
                    "command": f"{image}?auth=LOCAL",
                    "hook_type": "pre_auth",
                },
            )
            assert created.status_code == 201 and created.json()["digest"] == digest, created.text
        trusting = Edge(
            tmp_path / "trusting",
            control,
            token,
            "",
            env={**auth, "OCI_PLUGINS_PUBLIC_KEY_1": str(tmp_path / "cosign.pub")},
        )
        keyless = Edge(tmp_path / "keyless", control, token, "", env=auth)  # signatures required by default
        for edge in (trusting, keyless):
            edge.start()
        try:
            wait_until(lambda: any("plugin" in c for c in trusting.plugin_commands()), 20, trusting.read_log)
            refused = "must be signed but no public key is configured"
            wait_until(lambda: refused in keyless.read_log(), 20, keyless.read_log)
            assert keyless.plugin_commands() == []
            assert (trusting.root / "oci" / "plugins").is_dir()
        finally:
            for edge in (trusting, keyless):
                edge.stop()
    finally:
        control.stop()
