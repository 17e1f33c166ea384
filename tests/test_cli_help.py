"""Every command's --help: no help text loses words to Rich markup, and no sentence ends in " ."."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from rich.markup import render
from typer.main import get_command
from typer.testing import CliRunner

from solstice.cli.app import app

ROOT = get_command(app)


def _commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    # Typer ships its own copy of click: groups are recognised by what they can do.
    yield path, command
    if hasattr(command, "list_commands"):
        context = typer.Context(command)
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            assert sub is not None
            yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands(ROOT))


def _texts(command: Any) -> Iterator[str]:
    for text in (command.help, command.short_help, command.epilog):
        if text:
            yield text
    for param in command.params:
        text = getattr(param, "help", None)
        if text:
            yield text


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "solstice")
def test_help_has_no_stray_space_before_a_full_stop(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    strays = [line.strip() for line in result.output.splitlines() if re.search(r"\s\.(\s|$)", line)]
    assert not strays, strays


@pytest.mark.parametrize("path", sorted(COMMANDS), ids=lambda p: " ".join(p) or "solstice")
def test_help_texts_print_as_written(path: tuple[str, ...]) -> None:
    # Typer renders help as Rich markup: "[env: X]" would be taken for a tag and vanish.
    for text in _texts(COMMANDS[path]):
        assert render(text).plain == text, f"{text!r} prints as {render(text).plain!r}"
