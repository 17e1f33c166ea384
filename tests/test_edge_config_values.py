"""plugins.yaml values obey the API's rules: finite numbers, bounded nesting, no booleans for numbers."""

from __future__ import annotations

from pathlib import Path

import pytest

from solstice.edge.plugins_yaml import ConfigFileError, snapshot_from_file

PLUGIN = "plugins:\n  - slug: guard\n    command: file:///usr/local/bin/guard\n    hook_types: [pre_auth]\n"


def _load(tmp_path: Path, text: str) -> dict[str, object]:
    path = tmp_path / "plugins.yaml"
    path.write_text(text)
    return snapshot_from_file(path, {})


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_non_finite_config_values_are_refused(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigFileError) as caught:
        _load(tmp_path, PLUGIN + f"    config: {{limit: {value}}}\n")
    message = str(caught.value)
    assert "plugins.0.config" in message and "finite" in message and "\n" not in message


def test_override_and_options_values_are_checked_too(tmp_path: Path) -> None:
    llm = "llms:\n  - slug: m\n    vendor: mock\n"
    with pytest.raises(ConfigFileError, match=r"llms\.0\.options: .*finite"):
        _load(tmp_path, PLUGIN + llm + "    options: {delay_ms: .nan}\n")
    with pytest.raises(ConfigFileError, match=r"llms\.0\.plugins\.0\.config_override: .*64 levels"):
        _load(
            tmp_path,
            PLUGIN
            + llm
            + "    plugins: [{plugin: guard, config_override: "
            + "{a: " * 70
            + "1"
            + "}" * 70
            + "}]\n",
        )


def test_nesting_past_the_parser_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError) as caught:
        _load(tmp_path, PLUGIN + "    config: {a: " + "[" * 5000 + "]" * 5000 + "}\n")
    assert "nested" in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("    timeout_ms: true\n", "timeout_ms"),
        ('    timeout_ms: "100"\n', "timeout_ms"),
        ("    global: 1\n", "global"),
    ],
)
def test_booleans_and_strings_are_not_numbers(tmp_path: Path, line: str, field: str) -> None:
    with pytest.raises(ConfigFileError, match=field):
        _load(tmp_path, PLUGIN + line)


def test_good_values_load(tmp_path: Path) -> None:
    snapshot = _load(
        tmp_path,
        PLUGIN + "    timeout_ms: 250\n    config: {limit: 1.5, deep: " + "[" * 30 + "]" * 30 + "}\n",
    )
    plugin = snapshot["plugins"][0]  # type: ignore[index]
    assert plugin["timeout_ms"] == 250 and plugin["config"]["limit"] == 1.5


def _alias_bomb(levels: int = 9) -> str:
    """Nine lines that stand for 9**9 (387 million) strings once the aliases are written out."""
    lines = ["    config:", "      bomb:", '        - &l0 ["x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, levels):
        lines.append(f"        - &l{level} [" + ", ".join([f"*l{level - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_built(tmp_path: Path) -> None:
    # Today's answer is immediate; before the bound, building this took minutes and gigabytes.
    with pytest.raises(ConfigFileError) as caught:
        _load(tmp_path, PLUGIN + _alias_bomb())
    message = str(caught.value)
    assert "aliases expand to more than 100,000 values" in message and "\n" not in message


def test_an_alias_that_contains_itself_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="refers to a value that contains it"):
        _load(tmp_path, PLUGIN + "    config: {loop: &a [1, *a]}\n")


def test_ordinary_aliases_still_load(tmp_path: Path) -> None:
    text = PLUGIN + "    config: &shared {limit: 3, tags: [a, b]}\n"
    text += "  - slug: guard2\n    command: file:///usr/local/bin/guard\n    hook_types: [pre_auth]\n"
    text += "    config: *shared\n"
    plugins = _load(tmp_path, text)["plugins"]
    assert [p["config"] for p in plugins] == [{"limit": 3, "tags": ["a", "b"]}] * 2  # type: ignore[index]


def test_mock_delay_options_are_bounded_numbers(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"options\.delay_ms is \"abc\"; .* from 0 to 60000"):
        _load(tmp_path, "llms:\n  - slug: m\n    vendor: mock\n    options: {delay_ms: abc}\n")


def test_an_app_may_name_only_agent_plugins_as_its_agents(tmp_path: Path) -> None:
    config = tmp_path / "plugins.yaml"
    plugins = (
        "plugins:\n"
        "  - {slug: bot, command: 'grpc://127.0.0.1:1', hook_types: [agent]}\n"
        "  - {slug: guard, command: 'grpc://127.0.0.1:2', hook_types: [pre_auth]}\n"
    )
    config.write_text(plugins + "apps:\n  - {name: ui, agents: [bot, bot], keys_env: [K]}\n")
    [app] = snapshot_from_file(config, {"K": "sk-1"})["apps"]
    assert app.get("agents") == ["bot"]
    config.write_text(plugins + "apps:\n  - {name: ui, agents: [guard], keys_env: [K]}\n")
    with pytest.raises(
        ConfigFileError, match="app ui names 'guard' in agents, which is no plugin with agent"
    ):
        snapshot_from_file(config, {"K": "sk-1"})
