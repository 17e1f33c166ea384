"""Top-level Typer application: one sub-command per module."""

from __future__ import annotations

from typing import Annotated

import typer

from solstice import __version__
from solstice.cli.serve import run_serve

app = typer.Typer(help="Solstice: a plugin platform and LLM gateway.", no_args_is_help=True)


@app.command()
def serve(
    plugin: Annotated[
        list[str] | None,
        typer.Option(
            "--plugin",
            "-p",
            help="Load a plugin at start: [SLUG=]COMMAND, file:///abs/path or grpc://host:port; repeatable.",
        ),
    ] = None,
) -> None:
    """Run the control plane: the plugin host and the plugins given with --plugin."""
    raise typer.Exit(run_serve(plugin or []))


@app.command()
def version() -> None:
    """Print the Solstice version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the `solstice` console script."""
    app()
