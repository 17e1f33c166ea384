"""Top-level Typer application: one sub-command per module."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from solstice import __version__
from solstice.cli import develop, oci, plugins, tokens

# Locals in a crash traceback could include an API token; never print them.
app = typer.Typer(
    help="Solstice: a plugin platform and LLM gateway.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(plugins.app, name="plugins")
app.add_typer(tokens.app, name="tokens")
app.add_typer(oci.app, name="oci")
app.add_typer(oci.keys_app, name="keys")
app.add_typer(develop.app, name="plugin")

HostOption = Annotated[
    str | None,
    typer.Option(
        "--host", help="Address to bind, e.g. 0.0.0.0 in a container. Default: SOLSTICE_HOST or 127.0.0.1."
    ),
]
PortOption = Annotated[
    int | None,
    typer.Option("--port", min=1, max=65535, help="Port to listen on. Default: SOLSTICE_PORT or 3000."),
]


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
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Run the control plane: the plugin host and the plugins given with --plugin."""
    # Imported here: the server stack (FastAPI, SQLAlchemy, gRPC) takes about a second to import,
    # which every client command such as `solstice plugins list` would otherwise pay.
    from solstice.cli.serve import run_serve

    raise typer.Exit(run_serve(plugin or [], host, port))


@app.command()
def edge(
    control_url: Annotated[
        str | None, typer.Option("--control-url", help="The control plane, e.g. http://control:3000.")
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", help="Serve global items and this namespace's.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Serve LLMs, apps and plugins from this YAML file (watched) instead."),
    ] = None,
    host: HostOption = None,
    port: PortOption = None,
) -> None:
    """Run an edge gateway: the LLM proxy with plugins, configured by a control plane or a file."""
    from solstice.cli.serve import run_edge

    raise typer.Exit(run_edge(control_url, namespace, config, host, port))


@app.command("mock-llm")
def mock_llm(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8400,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    delay_ms: Annotated[int, typer.Option(help="Delay before each answer, in milliseconds.")] = 0,
) -> None:
    """Serve the mock OpenAI-compatible LLM (echo, usage counts, streaming) for demos and benchmarks."""
    import uvicorn

    from solstice.gateway.mock_server import create_mock_app

    uvicorn.run(create_mock_app(delay_ms), host=host, port=port, log_level="warning", access_log=False)


@app.command()
def version() -> None:
    """Print the Solstice version."""
    typer.echo(__version__)


def main() -> None:
    """Entry point of the `solstice` console script."""
    app()
