"""What the API-client commands share: server URL and token, HTTP calls, errors and output."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any, NoReturn
from urllib.parse import quote

import httpx
import typer
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from solstice import __version__

DEFAULT_URL = "http://127.0.0.1:3000"
# Create, update and reload answer only once the plugin has started, which the server allows up
# to its handshake timeout (60 s by default); the read timeout must outlast that.
_TIMEOUT = httpx.Timeout(120.0, connect=5.0)
_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")

STATUS_STYLES = {
    "healthy": "green",
    "starting": "yellow",
    "restarting": "yellow",
    "unhealthy": "red",
    "failed": "bold red",
    "stopped": "dim",
    "inactive": "dim",
}


class ClientConfig(BaseSettings):
    """Where the CLI finds the server: SOLSTICE_URL and SOLSTICE_TOKEN, overridden by --url/--token.

    Client-side, so apart from solstice.settings.Settings: that configures the server process and
    validates variables a client neither needs nor should fail on.
    """

    model_config = SettingsConfigDict(env_prefix="SOLSTICE_", extra="ignore", env_ignore_empty=True)

    url: str = DEFAULT_URL
    token: str = ""


UrlOption = Annotated[
    str | None,
    typer.Option("--url", help=f"Server URL (env: SOLSTICE_URL; default {DEFAULT_URL}).", show_default=False),
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        help="API token (env: SOLSTICE_TOKEN, which keeps it out of shell history and ps).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the server's JSON instead of a table.")]


class CliError(Exception):
    """An error shown as one line, `solstice: <message>`, ending the command with status 1."""


def fail(message: str) -> NoReturn:
    """Print `solstice: <message>` on one line to stderr and exit with status 1."""
    sys.stderr.write(f"solstice: {' '.join(message.split())}\n")
    raise typer.Exit(1)


def _server_url(url: str) -> str:
    """The URL without a trailing slash; CliError when it is not http(s)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise CliError(
            f"server URL {url!r} is not an http:// or https:// URL; set --url or SOLSTICE_URL, "
            f"e.g. {DEFAULT_URL}"
        )
    return url.rstrip("/")


def _reason(exc: Exception) -> str:
    text = _ERRNO.sub("", str(exc)).strip() or type(exc).__name__
    return text[0].lower() + text[1:]


def _problem_detail(response: httpx.Response, where: str) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    # Not a Solstice problem: most likely --url names some other server or a proxy in between.
    return f"HTTP {response.status_code} {response.reason_phrase} from {where}; is that a Solstice server?"


class ApiClient:
    """Calls /api/v1 with a bearer token; every failure becomes a CliError with a one-line message."""

    def __init__(self, url: str, token: str) -> None:
        # Userinfo in the URL would be a credential; messages show the URL without it.
        self.shown_url = str(httpx.URL(url).copy_with(userinfo=b""))
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"solstice-cli/{__version__}"},
            timeout=_TIMEOUT,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one), or CliError with the problem's detail."""
        try:
            response = self._http.request(method, path, params=params, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise CliError(
                f"cannot reach {self.shown_url}: {_reason(exc)}; is `solstice serve` running? "
                "(set --url or SOLSTICE_URL)"
            ) from None
        except httpx.TimeoutException:
            raise CliError(
                f"{self.shown_url} did not answer {method} {path} within {_TIMEOUT.read:.0f} s"
            ) from None
        except httpx.HTTPError as exc:
            raise CliError(f"the connection to {self.shown_url} failed: {_reason(exc)}") from None
        if not response.is_success:
            raise CliError(_problem_detail(response, f"{self.shown_url}{path}"))
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(
                f"{self.shown_url} answered {method} {path} with something other than JSON; "
                "is that a Solstice server?"
            ) from None


def ref_path(prefix: str, ref: str | int, *rest: str) -> str:
    """An API path with `ref` as one escaped segment, so a REF can never reach another route."""
    return "/".join([prefix, quote(str(ref), safe=""), *rest])


@contextmanager
def api(url: str | None, token: str | None) -> Iterator[ApiClient]:
    """A client for --url/--token (or the environment); a CliError in the block exits with status 1."""
    try:
        config = ClientConfig()
        server = _server_url(url if url is not None else config.url)
        token = token if token is not None else config.token
        if not token:
            raise CliError("no API token; pass --token or set SOLSTICE_TOKEN")
        with ApiClient(server, token) as client:
            yield client
    except CliError as exc:
        fail(str(exc))


def console() -> Console:
    """Rich console for stdout; piped output gets whole rows so grep and cut see complete lines."""
    out = Console()
    return out if out.is_terminal else Console(width=10_000)


def print_json(data: Any) -> None:
    """The server's JSON, indented, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def cell(value: Any) -> Text:
    """A table cell; Text, not markup, so names with [brackets] print as they are."""
    if value is None or value == "" or value == []:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return Text(", ".join(value))
    if isinstance(value, dict | list):
        return Text(json.dumps(value, ensure_ascii=False))
    return Text(str(value))


def when(value: str | None) -> str | None:
    """An API timestamp in local time, to the second; as given when it does not parse."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def status_cell(status: str) -> Text:
    """A status, coloured on a terminal."""
    return Text(status, style=STATUS_STYLES.get(status, ""))


def table(*columns: str, caption: str | None = None) -> Table:
    """A plain table: no vertical rules, so piped rows stay easy to parse."""
    result = Table(box=box.SIMPLE, show_edge=False, caption=caption, caption_justify="left")
    for column in columns:
        result.add_column(column, overflow="fold")
    return result


def print_object(data: Mapping[str, Any], labels: Mapping[str, str] | None = None) -> None:
    """One object as a two-column key/value table, in the server's field order."""
    rows = Table(box=None, show_header=False)
    rows.add_column(style="bold", no_wrap=True)
    rows.add_column(overflow="fold")
    for key, value in data.items():
        label = (labels or {}).get(key, key.replace("_", " "))
        if key.endswith("_at"):
            value = when(value)
        rows.add_row(label, status_cell(value) if key == "status" else cell(value))
    console().print(rows)
