from pathlib import Path

import pytest
from pydantic import ValidationError

from solstice.settings import Settings


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
    from solstice.settings import SettingsError, get_settings

    monkeypatch.setenv("SOLSTICE_PORT", "70000")
    get_settings.cache_clear()
    try:
        with pytest.raises(SettingsError) as info:
            get_settings()
    finally:
        get_settings.cache_clear()
    message = str(info.value)
    assert message.startswith("SOLSTICE_PORT='70000' is invalid: input should be less than or equal to 65535")
    assert message.endswith("; correct or unset it")
    assert "\n" not in message
