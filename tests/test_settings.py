from pathlib import Path

import pytest
from pydantic import ValidationError

from solstice.host.oci_config import config_from_settings
from solstice.settings import Settings, SettingsError, get_settings
from tests.conftest import settings_error


def test_defaults() -> None:
    settings = Settings()
    assert settings.port == 3000
    assert settings.plugin_handshake_timeout == 60.0
    assert settings.plugin_stop_grace == 2.0
    assert settings.data_dir == Path("data")


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT", "5")
    monkeypatch.setenv("SOLSTICE_PORT", "3100")
    settings = Settings()
    assert settings.plugin_handshake_timeout == 5.0
    assert settings.port == 3100


def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOLSTICE_PLUGIN_HANDSHAKE_TIMEOUT", "soon")
    with pytest.raises(ValidationError, match="plugin_handshake_timeout"):
        Settings()


def test_host_environment_is_a_snapshot_of_named_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANTED", "1")
    monkeypatch.setenv("SECRET_TOKEN", "x")
    settings = Settings()
    monkeypatch.setenv("WANTED", "2")
    assert settings.host_environment(["WANTED", "MISSING"]) == {"WANTED": "1"}


def test_get_settings_explains_bad_values_in_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    message = settings_error(monkeypatch, SOLSTICE_PORT="70000")
    assert message.startswith("SOLSTICE_PORT='70000' is invalid: input should be less than or equal to 65535")
    assert message.endswith("; correct or unset it")
    assert "\n" not in message


def test_oci_variables_use_the_reference_page_names(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AI_STUDIO_OCI_CACHE_DIR", str(tmp_path / "studio"))
    monkeypatch.setenv("AI_STUDIO_OCI_REQUIRE_SIGNATURE", "TRUE")
    monkeypatch.setenv("OCI_PLUGINS_CACHE_DIR", str(tmp_path / "edge"))
    monkeypatch.setenv("OCI_PLUGINS_REQUIRE_SIGNATURE", "no")
    monkeypatch.setenv("OCI_PLUGINS_INSECURE_REGISTRIES", "reg.local:5000, other.local")
    settings = Settings()
    control, edge = config_from_settings(settings), config_from_settings(settings, edge=True)
    assert (control.cache_dir, control.require_signature) == (tmp_path / "studio", True)
    assert (edge.cache_dir, edge.require_signature) == (tmp_path / "edge", False)
    assert control.client.insecure_registries == {"reg.local:5000", "other.local"}


def test_oci_defaults_differ_between_control_plane_and_edge(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AI_STUDIO_OCI_CACHE_DIR", "OCI_PLUGINS_CACHE_DIR", "OCI_PLUGINS_REQUIRE_SIGNATURE"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(data_dir=tmp_path)
    assert config_from_settings(settings).cache_dir == tmp_path / "oci-cache"
    assert not config_from_settings(settings).require_signature
    edge = config_from_settings(settings, edge=True)
    assert (edge.cache_dir, edge.require_signature) == (Path("/var/lib/microgateway/plugins"), True)


def test_bad_oci_value_names_the_variable_that_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AI_STUDIO_OCI_REQUIRE_SIGNATURE", "maybe")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError, match=r"^AI_STUDIO_OCI_REQUIRE_SIGNATURE='maybe' is invalid"):
            get_settings()
    finally:
        get_settings.cache_clear()


def test_empty_boolean_variables_mean_their_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOW_INTERNAL_NETWORK_ACCESS", "")
    monkeypatch.setenv("OCI_PLUGINS_REQUIRE_SIGNATURE", " ")
    settings = Settings()
    assert settings.allow_internal_network_access is False
    assert settings.edge_oci_require_signature is True
