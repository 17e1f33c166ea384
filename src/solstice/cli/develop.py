"""`solstice plugin dev PATH`: the reference page's reload loop, without the loop to write.

It watches a plugin's file and asks the server to reload every plugin whose command is that file,
so an edit (or a fresh build) is live within a second.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from solstice.cli.client import ApiClient, CliError, TokenOption, UrlOption, api, console, fail, ref_path

app = typer.Typer(help="Plugin authoring: the development reload loop.", no_args_is_help=True)
_PREFIX = "/api/v1/plugins"
_PAGE = 200


def _fingerprint(path: Path) -> str | None:
    """The file's content hash (a rebuild with the same bytes is not a change), None if absent."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _plugins_running(client: ApiClient, path: Path) -> list[dict[str, Any]]:
    """The registered plugins whose command is file://PATH."""
    wanted = f"file://{path}"
    found, offset = [], 0
    while True:
        page = client.request("GET", f"{_PREFIX}?limit={_PAGE}&offset={offset}")
        found += [p for p in page["data"] if p["command"] == wanted]
        offset += _PAGE
        if offset >= page["total"]:
            return found


def _reload(client: ApiClient, slug: str) -> str:
    try:
        plugin = client.request("POST", ref_path(_PREFIX, slug, "reload"))
    except CliError as exc:
        return f"reload of {slug} failed, the previous instance keeps serving: {exc}"
    return f"reloaded {slug}: {plugin['status']}"


@app.command()
def dev(
    path: Annotated[Path, typer.Argument(help="The plugin's executable (what its file:// command names).")],
    plugin: Annotated[
        list[str] | None,
        typer.Option("--plugin", help="Reload these slugs; default: every plugin using PATH."),
    ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between checks of the file.", min=0.1)] = 0.5,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Watch PATH and reload its plugins whenever it changes, until Ctrl-C."""
    target = path.resolve() if path.exists() else path.absolute()
    out = console()
    with api(url, token) as client:
        slugs = list(plugin or []) or [p["slug"] for p in _plugins_running(client, target)]
        if not slugs:
            fail(
                f"no plugin has the command file://{target}; register it first "
                "(solstice plugins create) or name it with --plugin"
            )
        out.print(f"watching {target} for {', '.join(slugs)}; Ctrl-C to stop", highlight=False)
        seen = _fingerprint(target)
        try:
            while True:
                time.sleep(interval)
                now = _fingerprint(target)
                if now is None or now == seen:
                    continue  # missing mid-build, or unchanged
                seen = now
                for slug in slugs:
                    out.print(_reload(client, slug), highlight=False)
        except KeyboardInterrupt:
            out.print("stopped", highlight=False)
