"""`solstice tokens`: create, list and revoke API tokens (needs an admin token)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from solstice.cli.client import (
    JsonOption,
    TokenOption,
    UrlOption,
    api,
    cell,
    console,
    fail,
    print_json,
    print_object,
    ref_path,
    table,
    when,
)

app = typer.Typer(help="Manage API tokens (admin token required).", no_args_is_help=True)

_PREFIX = "/api/v1/tokens"


@app.command()
def create(
    name: Annotated[
        str | None, typer.Argument(metavar="NAME", help="Who or what uses the token.", show_default=False)
    ] = None,
    name_option: Annotated[
        str | None, typer.Option("--name", help="The same as NAME, for older scripts.", show_default=False)
    ] = None,
    scope: Annotated[
        str, typer.Option("--scope", help="admin (may change things), read, or edge (may only sync an edge).")
    ] = "read",
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create a token and print its secret, which the server never shows again."""
    name = _one_name(name, name_option)
    with api(url, token) as client:
        created = client.request("POST", _PREFIX, body={"name": name, "scope": scope})
    if as_json:
        print_json(created)
        return
    secret = created.pop("token")
    out = console()
    out.print(Text(f"Created token {created['name']} (id {created['id']}, scope {created['scope']})."))
    out.print("Its secret is shown this once; store it now:\n")
    # On a line of its own and unstyled, so it copies cleanly.
    out.print(Text(f"  {secret}"), highlight=False)
    out.print()


def _one_name(argument: str | None, option: str | None) -> str:
    """The token's name, given as NAME or (as scripts written before NAME did) as --name."""
    if argument is not None and option is not None and argument != option:
        fail(f"the token's name is given twice ({argument!r} and --name {option!r}); give it once, as NAME")
    name = argument if argument is not None else option
    if name is None:
        fail("a token needs a name; run solstice tokens create NAME --scope SCOPE")
    return name


@app.command("list")
def list_tokens(url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Every token, without secrets."""
    with api(url, token) as client:
        tokens = client.request("GET", _PREFIX)
    if as_json:
        print_json(tokens)
        return
    if not tokens:
        console().print("No tokens.")
        return
    rows = table("id", "name", "scope", "prefix", "created", "last used", "revoked")
    for item in tokens:
        rows.add_row(
            cell(item["id"]),
            cell(item["name"]),
            cell(item["scope"]),
            cell(item["prefix"]),
            cell(when(item["created_at"])),
            cell(when(item["last_used_at"])),
            Text(when(item["revoked_at"]) or "-", style="red" if item["revoked_at"] else "dim"),
        )
    console().print(rows)


@app.command()
def revoke(
    token_id: Annotated[int, typer.Argument(metavar="ID", help="Token id, from `solstice tokens list`.")],
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Revoke a token; it stops working at once."""
    with api(url, token) as client:
        revoked = client.request("DELETE", ref_path(_PREFIX, token_id))
    if as_json:
        print_json(revoked)
        return
    console().print(Text(f"Revoked token {revoked['name']} (id {revoked['id']})."))
    print_object(revoked)
