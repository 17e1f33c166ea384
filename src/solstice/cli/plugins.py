"""`solstice plugins`: list, inspect, create, change, reload and delete plugins, approve their scopes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from solstice.cli.client import (
    CliError,
    JsonOption,
    TokenOption,
    UrlOption,
    api,
    cell,
    console,
    print_json,
    print_object,
    ref_path,
    status_cell,
    table,
)
from solstice.hooks import FAILURE_POLICIES, PLUGIN_HOOKS
from solstice.scopes import DESCRIPTIONS, SCOPES

app = typer.Typer(help="Manage the plugins of a running server.", no_args_is_help=True)

_PREFIX = "/api/v1/plugins"
_HOOKS = ", ".join(PLUGIN_HOOKS)
_LABELS = {"is_active": "active", "timeout_ms": "timeout (ms)", "uptime_s": "uptime"}

Ref = Annotated[str, typer.Argument(help="Plugin id or slug.", show_default=False)]
HookType = Annotated[str | None, typer.Option("--hook-type", help=f"Primary hook: {_HOOKS}.")]
HookTypes = Annotated[
    str | None, typer.Option("--hook-types", help="Every hook it serves, comma-separated: pre_auth,auth.")
]
Name = Annotated[str | None, typer.Option("--name", help="Display name.")]
Command = Annotated[
    str | None, typer.Option("--command", help="file:///abs/path, grpc://host:port or oci://image.")
]
Slug = Annotated[str | None, typer.Option("--slug", help="URL name; derived from --name when left out.")]
Description = Annotated[str | None, typer.Option("--description", help="Free text.")]
PluginType = Annotated[str | None, typer.Option("--plugin-type", help="gateway or data_collector.")]
Config = Annotated[str | None, typer.Option("--config", help="Plugin config as a JSON object: '{\"k\": 1}'.")]
ConfigFile = Annotated[
    Path | None, typer.Option("--config-file", help="Read the config JSON object from a file ('-': stdin).")
]
Namespace = Annotated[str | None, typer.Option("--namespace", help="Group name for filtering.")]
Checksum = Annotated[str | None, typer.Option("--checksum", help="SHA-256 the file:// executable must have.")]
TimeoutMs = Annotated[int | None, typer.Option("--timeout-ms", help="Deadline of one hook call.")]
FailurePolicy = Annotated[
    str | None,
    typer.Option("--failure-policy", help=f"{' or '.join(FAILURE_POLICIES)}: what a failed hook call means."),
]
Env = Annotated[
    list[str] | None,
    typer.Option("--env", help="Host environment variable to pass to the plugin; repeatable."),
]
OciReference = Annotated[str | None, typer.Option("--oci-reference", help="Image of an oci:// command.")]


def _read_config(text: str | None, path: Path | None) -> dict[str, Any] | None:
    if text is not None and path is not None:
        raise CliError("give --config or --config-file, not both")
    if path is not None:
        source = f"--config-file {path}"
        try:
            text = sys.stdin.read() if str(path) == "-" else path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            reason = str(getattr(exc, "strerror", None) or exc)
            raise CliError(f"cannot read {source}: {reason[0].lower()}{reason[1:]}") from None
    elif text is None:
        return None
    else:
        source = "--config"
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise CliError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CliError(f'{source} must be a JSON object such as {{"key": "value"}}')
    return value


def _body(
    fields: dict[str, Any], hook_types: str | None, config: str | None, config_file: Path | None
) -> dict[str, Any]:
    """The request body: only the options given, so PATCH leaves every other field as it is."""
    body = {key: value for key, value in fields.items() if value is not None}
    if hook_types is not None:
        body["hook_types"] = [hook.strip() for hook in hook_types.split(",") if hook.strip()]
    parsed = _read_config(config, config_file)
    if parsed is not None:
        body["config"] = parsed
    return body


def _uptime(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h {minutes}m"
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    return f"{minutes}m {secs}s" if minutes else f"{seconds:.1f}s"


def _show(plugin: dict[str, Any], message: str) -> None:
    console().print(Text(message))
    print_object(plugin, _LABELS)
    if plugin.get("status") == "failed":
        # Stored all the same, so not an error: say why it is not running.
        sys.stderr.write(
            f"solstice: warning: plugin {plugin['slug']} is not running: {plugin['last_error']}\n"
        )


@app.command("list")
def list_plugins(
    hook_type: Annotated[
        str | None, typer.Option("--hook-type", help="Only plugins serving this hook.")
    ] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="Only this namespace.")] = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Only active, or only inactive, plugins.")
    ] = None,
    plugin_type: Annotated[
        str | None, typer.Option("--plugin-type", help="gateway or data_collector.")
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="Page size, at most 500.")] = 50,
    offset: Annotated[int, typer.Option("--offset", help="Plugins to skip.")] = 0,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """List plugins, filtered and paginated."""
    filters = {
        "hook_type": hook_type,
        "namespace": namespace,
        "is_active": active,
        "plugin_type": plugin_type,
    }
    params = {key: value for key, value in filters.items() if value is not None}
    with api(url, token) as client:
        page = client.request("GET", _PREFIX, params={**params, "limit": limit, "offset": offset})
    if as_json:
        print_json(page)
        return
    plugins, total = page["data"], page["total"]
    if not plugins:
        empty = f"No plugins at offset {offset}; {total} in total." if total else "No plugins."
        console().print(Text(empty if total or not params else "No plugins match."))
        return
    shown_to = offset + len(plugins)
    caption = f"{offset + 1}-{shown_to} of {total}"
    if shown_to < total:
        caption += f"; next page: --offset {shown_to}"
    rows = table("id", "slug", "name", "hook types", "status", "command", caption=caption)
    for plugin in plugins:
        rows.add_row(
            cell(plugin["id"]),
            cell(plugin["slug"]),
            cell(plugin["name"]),
            cell(plugin["hook_types"]),
            status_cell(plugin["status"]),
            cell(plugin["command"]),
        )
    console().print(rows)


@app.command()
def get(ref: Ref, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Show one plugin: its definition and live status."""
    with api(url, token) as client:
        plugin = client.request("GET", ref_path(_PREFIX, ref))
    if as_json:
        print_json(plugin)
    else:
        print_object(plugin, _LABELS)


@app.command()
def health(
    ref: Annotated[str | None, typer.Argument(help="Plugin id or slug; all plugins when left out.")] = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Runtime health of one plugin, or of every plugin with a count by status."""
    path = ref_path(_PREFIX, ref, "health") if ref is not None else f"{_PREFIX}/health"
    with api(url, token) as client:
        report = client.request("GET", path)
    if as_json:
        print_json(report)
        return
    if ref is not None:
        latency = report.get("last_check_latency_ms")
        shown = {
            **report,
            "uptime_s": _uptime(report.get("uptime_s")),
            "last_check_latency_ms": f"{latency:.1f} ms" if latency is not None else None,
        }
        print_object(shown, {**_LABELS, "last_check_latency_ms": "last check latency"})
        return
    if not report["plugins"]:
        console().print("No plugins.")
        return
    summary = report["summary"]
    counts = ", ".join(f"{count} {status}" for status, count in sorted(summary["by_status"].items()))
    rows = table(
        "slug",
        "status",
        "restarts",
        "pid",
        "uptime",
        "last error",
        caption=f"{summary['total']} plugin{'' if summary['total'] == 1 else 's'}"
        + (f": {counts}" if counts else ""),
    )
    for plugin in report["plugins"]:
        rows.add_row(
            cell(plugin["slug"]),
            status_cell(plugin["status"]),
            cell(plugin["restarts"]),
            cell(plugin["pid"]),
            cell(_uptime(plugin["uptime_s"])),
            cell(plugin["last_error"]),
        )
    console().print(rows)


def _write(
    method: str,
    path: str,
    verb: str,
    fields: dict[str, Any],
    extra: tuple[str | None, str | None, Path | None],
    server: tuple[str | None, str | None],
    as_json: bool,
) -> None:
    """Send a plugin create (POST) or change (PATCH) and show the plugin the server answers with."""
    with api(*server) as client:
        body = _body(fields, *extra)
        if not body:
            raise CliError("nothing to change; give at least one option, e.g. --config '{...}' or --inactive")
        plugin = client.request(method, path, body=body)
    if as_json:
        print_json(plugin)
    else:
        _show(plugin, f"{verb} plugin {plugin['slug']} (id {plugin['id']}).")


@app.command()
def create(
    name: Annotated[str, typer.Option("--name", help="Display name.", show_default=False)],
    command: Annotated[
        str,
        typer.Option(
            "--command", help="file:///abs/path, grpc://host:port or oci://image.", show_default=False
        ),
    ],
    hook_type: HookType = None,
    hook_types: HookTypes = None,
    slug: Slug = None,
    description: Description = None,
    plugin_type: PluginType = None,
    inactive: Annotated[bool, typer.Option("--inactive", help="Store it without starting it.")] = False,
    config: Config = None,
    config_file: ConfigFile = None,
    namespace: Namespace = None,
    checksum: Checksum = None,
    timeout_ms: TimeoutMs = None,
    failure_policy: FailurePolicy = None,
    env: Env = None,
    oci_reference: OciReference = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Register a plugin; an active one is started before this returns."""
    fields = {
        "name": name,
        "command": command,
        "hook_type": hook_type,
        "slug": slug,
        "description": description,
        "plugin_type": plugin_type,
        "is_active": False if inactive else None,
        "namespace": namespace,
        "checksum": checksum,
        "timeout_ms": timeout_ms,
        "failure_policy": failure_policy,
        "env": env,
        "oci_reference": oci_reference,
    }
    _write("POST", _PREFIX, "Created", fields, (hook_types, config, config_file), (url, token), as_json)


@app.command()
def update(
    ref: Ref,
    name: Name = None,
    command: Command = None,
    hook_type: HookType = None,
    hook_types: HookTypes = None,
    description: Description = None,
    plugin_type: PluginType = None,
    active: Annotated[
        bool | None, typer.Option("--active/--inactive", help="Start, or stop and keep, the plugin.")
    ] = None,
    config: Config = None,
    config_file: ConfigFile = None,
    namespace: Namespace = None,
    checksum: Checksum = None,
    timeout_ms: TimeoutMs = None,
    failure_policy: FailurePolicy = None,
    env: Env = None,
    oci_reference: OciReference = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Change the given fields only; a running plugin restarts when its runtime settings change."""
    fields = {
        "name": name,
        "command": command,
        "hook_type": hook_type,
        "description": description,
        "plugin_type": plugin_type,
        "is_active": active,
        "namespace": namespace,
        "checksum": checksum,
        "timeout_ms": timeout_ms,
        "failure_policy": failure_policy,
        "env": env,
        "oci_reference": oci_reference,
    }
    _write(
        "PATCH",
        ref_path(_PREFIX, ref),
        "Updated",
        fields,
        (hook_types, config, config_file),
        (url, token),
        as_json,
    )


@app.command()
def delete(
    ref: Ref,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Stop a plugin and remove it; asks first unless --yes."""
    with api(url, token) as client:
        if not yes:
            if not sys.stdin.isatty():
                raise CliError(
                    f"not deleting plugin {ref} without confirmation and no terminal to ask on; pass --yes"
                )
            # Reading it first names the plugin in the question and reports a wrong REF before asking.
            plugin = client.request("GET", ref_path(_PREFIX, ref))
            question = f"Delete plugin {plugin['slug']} (id {plugin['id']}, {plugin['name']!r}) and stop it?"
            if not typer.confirm(question, default=False, err=True):
                raise CliError(f"plugin {ref} was not deleted")
        client.request("DELETE", ref_path(_PREFIX, ref))
    if as_json:
        # DELETE answers 204 with no body; scripts still get JSON to parse.
        print_json({"deleted": ref})
    else:
        console().print(Text(f"Deleted plugin {ref}."))


@app.command()
def reload(ref: Ref, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Start a fresh instance and switch to it; the old one keeps serving if the new one fails."""
    with api(url, token) as client:
        plugin = client.request("POST", ref_path(_PREFIX, ref, "reload"))
    if as_json:
        print_json(plugin)
    else:
        _show(plugin, f"Reloaded plugin {plugin['slug']} (id {plugin['id']}).")


ScopeNames = Annotated[list[str], typer.Argument(help=f"Scopes: {', '.join(SCOPES)}.", show_default=False)]


def _show_scopes(state: dict[str, Any], as_json: bool, message: str = "") -> None:
    if as_json:
        print_json(state)
        return
    if message:
        console().print(Text(message))
    approved = {a["scope"]: a for a in state["approved"]}
    rows = table("scope", "requested", "approved", "by", "what it allows")
    for scope in sorted({*state["requested"], *approved}):
        given = approved.get(scope)
        rows.add_row(
            cell(scope),
            cell(scope in state["requested"]),
            cell("pending" if scope in state["pending"] else given["approved_at"] if given else "-"),
            cell(given["approved_by"] if given else None),
            cell(DESCRIPTIONS.get(scope, "")),
        )
    console().print(rows if approved or state["requested"] else Text("The plugin requests no scopes."))


@app.command()
def scopes(ref: Ref, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """Host service API scopes: requested by the plugin, approved, and pending approval."""
    with api(url, token) as client:
        state = client.request("GET", ref_path(_PREFIX, ref, "scopes"))
    _show_scopes(state, as_json)


@app.command()
def approve(
    ref: Ref, names: ScopeNames, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Approve scopes for a plugin; its next call may use them, without a reload."""
    with api(url, token) as client:
        state = client.request("POST", ref_path(_PREFIX, ref, "scopes", "approve"), body={"scopes": names})
    _show_scopes(state, as_json, f"Approved {', '.join(names)} for plugin {state['plugin']}.")


@app.command()
def revoke(
    ref: Ref, names: ScopeNames, url: UrlOption = None, token: TokenOption = None, as_json: JsonOption = False
) -> None:
    """Withdraw approved scopes; the plugin's next call under them is refused."""
    with api(url, token) as client:
        state = client.request("POST", ref_path(_PREFIX, ref, "scopes", "revoke"), body={"scopes": names})
    _show_scopes(state, as_json, f"Revoked {', '.join(names)} for plugin {state['plugin']}.")


@app.command("clear-data")
def clear_data(
    ref: Ref,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Clear without asking.")] = False,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove every key a plugin stored with kv.*; asks first unless --yes."""
    with api(url, token) as client:  # its block turns a CliError into one line and exit status 1
        if not yes:
            if not sys.stdin.isatty():
                raise CliError(f"not clearing the data of plugin {ref} without confirmation; pass --yes")
            if not typer.confirm(f"Remove every key plugin {ref} stored?", default=False, err=True):
                raise CliError(f"the data of plugin {ref} was not cleared")
        cleared = client.request("DELETE", ref_path(_PREFIX, ref, "data"))
    if as_json:
        print_json(cleared)
    else:
        console().print(Text(f"Removed {cleared['deleted_keys']} keys of plugin {cleared['plugin']}."))
