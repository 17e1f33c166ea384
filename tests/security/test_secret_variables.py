"""One list of secret variables, refused in a plugin's env by the API and by an edge's plugins.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from solstice.edge.plugins_yaml import ConfigFileError, snapshot_from_file
from tests.conftest import TESTBED
from tests.server import Server

SECRETS = (
    "SOLSTICE_ADMIN_TOKEN",
    "SOLSTICE_EDGE_TOKEN",
    "SOLSTICE_SECRET_KEY",
    "OCI_PLUGINS_REGISTRY_CORP_PASSWORD",
    "oci_plugins_registry_docker_tyk_io_token",
    "COSIGN_PASSWORD",
    "CORP_REGISTRY_SECRET",  # named by OCI_PLUGINS_REGISTRY_CORP_PASSWORDENV below
)
ENVIRON = {
    "OCI_PLUGINS_REGISTRY_CORP_USERNAME": "ci",
    "OCI_PLUGINS_REGISTRY_CORP_PASSWORDENV": "CORP_REGISTRY_SECRET",
}


def test_the_api_refuses_every_secret_variable(tmp_path: Path) -> None:
    server = Server(tmp_path, env={**ENVIRON, "CORP_REGISTRY_SECRET": "hunter2"}).wait_ready()
    try:
        with server.client() as client:
            for number, name in enumerate(SECRETS):
                body = {
                    "name": f"p{number}",
                    "command": f"file://{TESTBED}",
                    "hook_type": "pre_auth",
                    "env": [name],
                }
                refused = client.post("/api/v1/plugins", json=body)
                assert refused.status_code == 422, (name, refused.text)
                detail = refused.json()["detail"]
                assert name in detail and "never passed on" in detail and "hunter2" not in detail
            body = {
                "name": "ok",
                "command": f"file://{TESTBED}",
                "hook_type": "pre_auth",
                "env": ["MY_API_KEY"],
            }
            assert client.post("/api/v1/plugins", json=body).status_code == 201
    finally:
        server.stop()


def _file(tmp_path: Path, env: list[str]) -> Path:
    document = {
        "plugins": [
            {"slug": "guard", "command": f"file://{TESTBED}", "hook_types": ["pre_auth"], "env": env}
        ],
        "llms": [{"slug": "echo", "vendor": "mock", "api_key_env": "ECHO_UPSTREAM_KEY"}],
        "apps": [{"name": "demo", "llms": ["echo"], "keys_env": ["DEMO_APP_KEY"]}],
    }
    path = tmp_path / "plugins.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


@pytest.mark.parametrize("name", [*SECRETS, "ECHO_UPSTREAM_KEY", "DEMO_APP_KEY"])
def test_an_edge_file_refuses_every_secret_variable(tmp_path: Path, name: str) -> None:
    environ = {**ENVIRON, "ECHO_UPSTREAM_KEY": "sk-up", "DEMO_APP_KEY": "sk-app"}
    with pytest.raises(ConfigFileError, match=f"plugin guard: env entry '{name}' is .* never passed on"):
        snapshot_from_file(_file(tmp_path, [name]), environ)
    assert snapshot_from_file(_file(tmp_path, ["MY_API_KEY"]), environ)["plugins"][0]["env"] == ["MY_API_KEY"]


def test_an_edge_file_refuses_credentials_in_upstream_url(tmp_path: Path) -> None:
    path = tmp_path / "plugins.yaml"
    path.write_text(
        yaml.safe_dump({"llms": [{"slug": "up", "upstream_url": "https://u:hunter2@api.example.com/v1"}]})
    )
    with pytest.raises(ConfigFileError, match="llm up: upstream_url must not carry credentials") as refused:
        snapshot_from_file(path, {})
    assert "hunter2" not in str(refused.value)
