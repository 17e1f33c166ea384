"""The `solstice` command."""

from solstice.cli.app import app, main

__all__ = ["app", "main"]
