"""Registry authentication as the reference page documents it, against real registries."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

from solstice.oci.errors import OciDisabledError, RegistryAuthError
from solstice.oci.puller import OciConfig, Pulled, Puller
from solstice.oci.reference import parse_reference
from solstice.oci.registry import ClientOptions
from tests.oci.images import push_image_with_umoci, write_plugin_executable
from tests.oci.registries import Registry


async def pull(tmp_path: Path, reference: str, environ: dict[str, str]) -> Pulled:
    config = OciConfig(tmp_path / "cache", client=ClientOptions(retries=0, timeout=5), environ=environ)
    return await Puller(config).pull(parse_reference(reference))


def pushed(registry: Registry, tmp_path: Path, repo: str = "plugins/auth") -> str:
    push_image_with_umoci(registry, f"{repo}:v1", write_plugin_executable(tmp_path / "exe", "auth"))
    return f"oci://{registry.host}/{repo}:v1"


async def test_entitlement_is_sent_as_basic_on_every_request(
    basic_registry: Registry, tmp_path: Path
) -> None:
    environ = {
        "OCI_PLUGINS_REGISTRY_REG_ENTITLEMENT": basic_registry.password or "",
        "OCI_PLUGINS_REGISTRY_REG_ENTITLEMENTUSERNAME": basic_registry.user or "",
        "OCI_PLUGINS_REGISTRY_REG_HOST": basic_registry.host,
    }
    result = await pull(tmp_path, pushed(basic_registry, tmp_path) + "?auth=REG", environ)
    assert result.digest.startswith("sha256:")


async def test_static_bearer_token_from_an_env_variable(token_registry: Registry, tmp_path: Path) -> None:
    reference = pushed(token_registry, tmp_path)
    server = token_registry.token_server
    answer = httpx.get(
        server.realm,
        params={"service": token_registry.service, "scope": "repository:plugins/auth:pull"},
        auth=(token_registry.user or "", token_registry.password or ""),
    )
    environ = {
        "OCI_PLUGINS_REGISTRY_REG_TOKENENV": "MY_REGISTRY_TOKEN",
        "MY_REGISTRY_TOKEN": answer.json()["token"],
        "OCI_PLUGINS_REGISTRY_REG_HOST": token_registry.host,
    }
    before = len(server.requests)
    result = await pull(tmp_path, reference + "?auth=REG", environ)
    assert result.digest.startswith("sha256:")
    assert len(server.requests) == before  # the token was used as given, never exchanged


async def test_username_and_password_exchange_a_token_for_the_named_scope(
    token_registry: Registry, tmp_path: Path
) -> None:
    reference = pushed(token_registry, tmp_path)
    environ = {
        "OCI_PLUGINS_REGISTRY_REG_USERNAME": token_registry.user or "",
        "OCI_PLUGINS_REGISTRY_REG_PASSWORD": token_registry.password or "",
        "OCI_PLUGINS_REGISTRY_REG_HOST": token_registry.host,
    }
    before = len(token_registry.token_server.requests)
    await pull(tmp_path, reference + "?auth=REG", environ)
    asked = token_registry.token_server.requests[before:]
    assert asked and all(r.auth_present for r in asked)
    assert {"repository:plugins/auth:pull"} <= {s for r in asked for s in r.scopes}


async def test_docker_config_json_is_the_fallback(basic_registry: Registry, tmp_path: Path) -> None:
    reference = pushed(basic_registry, tmp_path)
    config_dir = tmp_path / "docker"
    config_dir.mkdir()
    auth = base64.b64encode(f"{basic_registry.user}:{basic_registry.password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {basic_registry.host: {"auth": auth}}}))
    result = await pull(tmp_path, reference, {"DOCKER_CONFIG": str(config_dir)})
    assert result.digest.startswith("sha256:")


async def test_wrong_password_names_the_source_never_the_secret(
    basic_registry: Registry, tmp_path: Path
) -> None:
    reference = pushed(basic_registry, tmp_path)
    secret = "not-the-password-9f8e7d"
    environ = {
        "OCI_PLUGINS_REGISTRY_REG_USERNAME": "alice",
        "OCI_PLUGINS_REGISTRY_REG_PASSWORD": secret,
        "OCI_PLUGINS_REGISTRY_REG_HOST": basic_registry.host,
    }
    with pytest.raises(RegistryAuthError) as info:
        await pull(tmp_path, reference + "?auth=REG", environ)
    assert "OCI_PLUGINS_REGISTRY_REG_*" in str(info.value)
    assert secret not in str(info.value) and secret not in repr(info.value)


async def test_hosts_with_ports_match_the_sanitized_variable_name(
    basic_registry: Registry, tmp_path: Path
) -> None:
    reference = pushed(basic_registry, tmp_path)
    name = basic_registry.host.replace(".", "_").replace(":", "_")
    environ = {
        f"OCI_PLUGINS_REGISTRY_{name}_USERNAME": basic_registry.user or "",
        f"OCI_PLUGINS_REGISTRY_{name}_PASSWORD": basic_registry.password or "",
    }
    result = await pull(tmp_path, reference, environ)
    assert result.digest.startswith("sha256:")


async def test_registries_outside_the_allowed_list_are_refused(registry: Registry, tmp_path: Path) -> None:
    reference = pushed(registry, tmp_path)
    config = OciConfig(tmp_path / "cache", allowed_registries=("registry.example.com", "*.corp.example"))
    with pytest.raises(OciDisabledError, match="not in the allowed registries"):
        await Puller(config).pull(parse_reference(reference))
    allowed = OciConfig(tmp_path / "cache2", allowed_registries=("127.0.0.1:*",))
    assert (await Puller(allowed).pull(parse_reference(reference))).digest
