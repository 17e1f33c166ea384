"""`solstice plugin`: plugin authoring, from `new` (a project) through `build` (one executable) to `dev`.

`dev` is the reference page's reload loop without the loop to write: it watches a plugin's file and
asks the server to reload every plugin whose command is that file, so an edit (or a fresh build)
is live within a second. `new` and `build` only parse options and print; solstice.authoring works.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from solstice.cli.client import ApiClient, CliError, TokenOption, UrlOption, api, console, fail, ref_path
from solstice.hooks import PLUGIN_HOOKS

app = typer.Typer(
    help="Plugin authoring: scaffold a project, build one executable, the development reload loop.",
    no_args_is_help=True,
)
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
        # Fingerprint before announcing: an edit made right after the announcement must count.
        seen = _fingerprint(target)
        out.print(f"watching {target} for {', '.join(slugs)}; Ctrl-C to stop", highlight=False)
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


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="The plugin's name and directory, a slug such as my-plugin.")],
    hook: Annotated[
        list[str] | None,
        typer.Option(
            "--hook",
            help=f"A hook to implement; repeatable. One of {', '.join(PLUGIN_HOOKS)} (default: pre_auth).",
            show_default=False,
        ),
    ] = None,
    parent: Annotated[Path, typer.Option("--dir", help="Create the project in this directory.")] = Path("."),
) -> None:
    """Create a plugin project NAME: plugin.py, tests, a Makefile (build, test, package, push), a README."""
    from solstice.authoring import AuthoringError
    from solstice.authoring.scaffold import new_project

    try:
        made = new_project(name, hook or [], parent)
    except AuthoringError as exc:
        fail(str(exc))
    out = console()
    out.print(f"Created {made.directory} ({', '.join(made.hooks)}):", highlight=False, markup=False)
    for relative in made.files:
        out.print(f"  {relative}", highlight=False, markup=False)
    out.print(
        "Next steps:\n"
        f"  cd {made.directory}\n"
        "  make test                         # the plugin's tests, in process\n"
        "  solstice plugin dev ./plugin.py   # once registered as file://…/plugin.py (README.md)\n"
        f"  make build                        # dist/{name}: one executable, no Python needed\n"
        f"  make push REGISTRY=… VERSION=…    # to oci://REGISTRY/plugins/{name}:VERSION",
        highlight=False,
        markup=False,
    )


@app.command()
def build(
    script: Annotated[Path, typer.Argument(metavar="PLUGIN.py", help="The plugin's Python file.")],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Where to write the executable (default: dist/NAME).", show_default=False
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            help="The executable's name (default: the directory of plugin.py, else the file's stem).",
            show_default=False,
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", help="Show PyInstaller's log.")] = False,
) -> None:
    """Build PLUGIN.py into one self-contained executable (PyInstaller --onefile) that needs no Python."""
    from solstice.authoring import AuthoringError
    from solstice.authoring.build import build_plugin

    try:
        built = build_plugin(script, output, name, verbose=verbose)
    except AuthoringError as exc:
        fail(str(exc))
    out = console()
    out.print(f"Built {built.path} in {built.seconds:.1f} s", highlight=False, markup=False)
    out.print(
        f"  size     {built.size} bytes ({built.size / (1 << 20):.1f} MiB)", highlight=False, markup=False
    )
    out.print(f"  sha256   {built.sha256}", highlight=False, markup=False)
    out.print(f"  platform {built.platform}", highlight=False, markup=False)
