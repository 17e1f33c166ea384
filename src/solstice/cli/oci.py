"""`solstice oci` and `solstice keys`: push, pull, inspect, sign and verify plugins in OCI registries.

Registry access is configured as for the server (OCI settings, OCI_PLUGINS_REGISTRY_* credentials,
OCI_PLUGINS_PUBLIC_KEY_* keys), so a command that works here works in `solstice serve` too.
The OCI modules are imported inside the commands: they bring cryptography and the metrics, which
every other `solstice` command would otherwise pay for at start.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Coroutine, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from solstice.cli.client import CliError, cell, console, fail, print_json, print_object, table

if TYPE_CHECKING:
    from solstice.oci.cache import Cache, Entry
    from solstice.oci.keys import PublicKey
    from solstice.oci.puller import OciConfig
    from solstice.oci.reference import OciReference
    from solstice.oci.registry import RegistryClient
    from solstice.oci.signing import Verified
    from solstice.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    help="Push, pull, inspect, sign and verify plugins in OCI registries.", no_args_is_help=True
)
cache_app = typer.Typer(help="The local cache of pulled plugins.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
keys_app = typer.Typer(help="Make cosign key pairs for signing plugins.", no_args_is_help=True)

PASSWORD_ENV = "COSIGN_PASSWORD"
SOURCE_DATE_EPOCH = "SOURCE_DATE_EPOCH"

Reference = Annotated[
    str,
    typer.Argument(metavar="oci://REF", help="registry/repository[:tag|@sha256:…][?auth=NAME&arch=os/arch]."),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


# -- shared plumbing ------------------------------------------------------------------------------


@contextmanager
def _reported() -> Iterator[None]:
    """Failures a user can act on end the command with one `solstice: …` line and status 1."""
    from solstice.oci.errors import OciError
    from solstice.settings import SettingsError

    try:
        yield
    except (CliError, OciError, SettingsError) as exc:
        fail(str(exc))
    except OSError as exc:
        fail(_os_reason(exc))


def _os_reason(exc: OSError) -> str:
    reason = exc.strerror or str(exc) or type(exc).__name__
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{reason[0].lower()}{reason[1:]}"


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with _reported():
        return asyncio.run(work())
    raise AssertionError("unreachable")  # fail() exits; this keeps the return type honest


def _settings() -> Settings:
    from solstice.settings import get_settings

    return get_settings()


def _config(settings: Settings) -> OciConfig:
    """The puller's configuration exactly as the server builds it, so both behave the same."""
    from solstice.host.oci_config import config_from_settings

    return config_from_settings(settings)


def _client(settings: Settings, ref: OciReference) -> RegistryClient:
    from solstice.oci import credentials
    from solstice.oci.registry import RegistryClient

    credential = credentials.resolve(ref.registry, settings.environ, ref.auth)
    return RegistryClient(ref.registry, credential, _config(settings).client)


def _reference(text: str) -> OciReference:
    from solstice.oci.reference import parse_reference

    return parse_reference(text)


class _Transfer:
    """A Rich progress bar on stderr for one transfer; nothing is drawn when stderr is not a terminal."""

    def __init__(self, description: str) -> None:
        screen = Console(stderr=True)
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=screen,
            transient=True,
            disable=not screen.is_terminal,
        )
        self._task = self._bar.add_task(description, total=None)

    def __enter__(self) -> _Transfer:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def advance(self, size: int) -> None:
        """Count `size` more bytes sent or received."""
        self._bar.update(self._task, advance=size)

    def set_total(self, size: int) -> None:
        """The bytes the whole transfer will move, once known."""
        self._bar.update(self._task, total=size)


def _note(message: str) -> None:
    """A line for the person at the terminal, on stderr so stdout stays parseable."""
    Console(stderr=True, highlight=False).print(Text(message))


def _size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _local_time(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _password(environ: Mapping[str, str], prompt: str, *, confirm: bool) -> bytes:
    """COSIGN_PASSWORD, as cosign reads it, else a hidden prompt on a terminal."""
    if PASSWORD_ENV in environ:
        return environ[PASSWORD_ENV].encode()
    if not sys.stdin.isatty():
        raise CliError(f"no password for the key: set {PASSWORD_ENV} or run the command in a terminal")
    password: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return password.encode()


# -- push -----------------------------------------------------------------------------------------


@app.command()
def push(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="Plugin executables.", show_default=False)
    ],
    reference: Reference,
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            help="os/arch or os/arch/variant of each FILE, in order; several files need one each.",
        ),
    ] = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="image (FROM scratch, ENTRYPOINT /plugin) or artifact (the raw executable)."
        ),
    ] = "image",
) -> None:
    """Push plugin executables to a tag (several, each with --platform, make an index); prints the digest."""
    with _reported():
        settings = _settings()
        ref = _reference(reference)
        pairs = _pair_platforms(files, platform or [])
        if ref.digest:
            raise CliError(f"{reference} names a digest; push to a tag, e.g. oci://{ref.name}:v1")
        if ref.platform:
            raise CliError(f"?arch= has no meaning for push; give --platform {ref.platform} instead")
        created = _source_date(settings.environ)
        from solstice.oci.push import push_format

        push_fmt = push_format(fmt)

    async def work() -> str:
        from solstice.oci.push import push as push_files

        async with _client(settings, ref) as client:
            with _Transfer(f"push {ref.name}:{ref.tag}") as bar:
                return await push_files(
                    client,
                    ref.repository,
                    ref.tag or "latest",
                    pairs,
                    fmt=push_fmt,
                    progress=bar.advance,
                    on_total=bar.set_total,
                    created=created,
                )

    digest = _run(work)
    _note(f"Pushed {len(pairs)} file{'s' if len(pairs) > 1 else ''} as {fmt} to {ref.name}:{ref.tag}.")
    typer.echo(digest)


def _pair_platforms(files: list[Path], platforms: list[str]) -> list[tuple[Path, str | None]]:
    if platforms and len(platforms) != len(files):
        raise CliError(
            f"{len(files)} files and {len(platforms)} --platform options; give one --platform per FILE, "
            "in the same order"
        )
    given: list[str | None] = [*platforms] if platforms else [None] * len(files)
    return list(zip(files, given, strict=True))


def _source_date(environ: Mapping[str, str]) -> datetime | None:
    """SOURCE_DATE_EPOCH, the reproducible-builds variable, fixes the created time when set."""
    value = environ.get(SOURCE_DATE_EPOCH)
    if not value:
        return None
    if not value.isdigit():
        raise CliError(f"{SOURCE_DATE_EPOCH}={value!r} is not a number of seconds; correct or unset it")
    return datetime.fromtimestamp(int(value), UTC)


# -- pull -----------------------------------------------------------------------------------------


@app.command()
def pull(
    reference: Reference,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also copy the executable here (mode 0755).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Pull a plugin into the cache (verifying it when signatures are required) and print where it is."""
    with _reported():
        settings = _settings()
        ref = _reference(reference)

    async def work() -> dict[str, Any]:
        from solstice.logs import configure_logging
        from solstice.oci.puller import Puller

        # The command reports the outcome itself; the puller's log records would only repeat it.
        configure_logging("error")
        with _Transfer(f"pull {ref.image}") as bar:
            pulled = await Puller(_config(settings)).pull(ref, bar.advance)
        for warning in pulled.warnings:
            _note(f"warning: {warning}")
        copied = await asyncio.to_thread(_copy_executable, pulled.path, output, ref) if output else None
        return {
            "reference": str(ref),
            "digest": pulled.digest,
            "manifest_digest": pulled.manifest_digest,
            "platform": pulled.platform,
            "path": str(pulled.path),
            "output": str(copied) if copied else None,
            "cached": pulled.cached,
            "verified_key": pulled.verified_key or None,
        }

    result = _run(work)
    if as_json:
        print_json(result)
    else:
        print_object(result)


def _copy_executable(source: Path, output: Path, ref: OciReference) -> Path:
    """Copy atomically (a temporary file beside the target, then rename); a directory gets the repo's name."""
    target = output / ref.repository.rsplit("/", 1)[-1] if output.is_dir() else output
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out, source.open("rb") as data:
            shutil.copyfileobj(data, out, 1 << 20)
        os.chmod(temporary, 0o755)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return target


# -- inspect --------------------------------------------------------------------------------------


@app.command()
def inspect(reference: Reference, as_json: AsJson = False) -> None:
    """Show what a reference resolves to: digest, media type, platforms, layers and signatures."""
    with _reported():
        settings = _settings()
        ref = _reference(reference)

    async def work() -> dict[str, Any]:
        async with _client(settings, ref) as client:
            return await _describe(client, ref)

    report = _run(work)
    if as_json:
        print_json(report)
        return
    _print_report(report)


async def _describe(client: RegistryClient, ref: OciReference) -> dict[str, Any]:
    from solstice.oci import platform as platforms
    from solstice.oci.media import TITLE_ANNOTATION
    from solstice.oci.signing import list_signatures

    digest = await client.resolve(ref.repository, ref.ref)
    top = await client.manifest(ref.repository, digest)
    data = top.data
    report: dict[str, Any] = {
        "reference": str(ref),
        "digest": top.digest,
        "media_type": top.media_type,
        "artifact_type": data.get("artifactType"),
        "size": len(top.raw),
    }
    signed = [top.digest]
    if top.is_index:
        report["platforms"] = [
            {
                "platform": platforms.describe(entry),
                "digest": entry.get("digest"),
                "media_type": entry.get("mediaType"),
                "artifact_type": entry.get("artifactType"),
                "size": entry.get("size"),
            }
            for entry in data.get("manifests") or []
            if isinstance(entry, dict)
        ]
        signed += [str(p["digest"]) for p in report["platforms"]]
    else:
        config = data.get("config") or {}
        report["config"] = {
            "media_type": config.get("mediaType"),
            "digest": config.get("digest"),
            "size": config.get("size"),
        }
        report["layers"] = [
            {
                "media_type": layer.get("mediaType"),
                "digest": layer.get("digest"),
                "size": layer.get("size"),
                "title": (layer.get("annotations") or {}).get(TITLE_ANNOTATION),
            }
            for layer in data.get("layers") or []
            if isinstance(layer, dict)
        ]
    report["signatures"] = [
        {"signed": target, **found.as_dict()}
        for target in signed
        for found in await list_signatures(client, ref.repository, target)
    ]
    return report


def _print_report(report: dict[str, Any]) -> None:
    out = console()
    print_object({key: report[key] for key in ("reference", "digest", "media_type", "artifact_type", "size")})
    if "platforms" in report:
        rows = table("platform", "digest", "media type", "size")
        for entry in report["platforms"]:
            rows.add_row(*(cell(entry[key]) for key in ("platform", "digest", "media_type", "size")))
        out.print(Text("\nPlatforms", style="bold"), rows)
    else:
        rows = table("media type", "digest", "size", "title")
        for layer in report["layers"]:
            rows.add_row(*(cell(layer[key]) for key in ("media_type", "digest", "size", "title")))
        out.print(Text("\nLayers", style="bold"), rows)
    if not report["signatures"]:
        out.print(Text("\nNo cosign signatures."))
        return
    rows = table("signed", "format", "where", "signature manifest", "created")
    for found in report["signatures"]:
        keys = ("signed", "kind", "where", "manifest", "created")
        rows.add_row(*(cell(found[key]) for key in keys))
    out.print(Text("\nSignatures", style="bold"), rows)


# -- sign and verify ------------------------------------------------------------------------------


@app.command()
def sign(
    reference: Reference,
    key: Annotated[Path, typer.Option("--key", help="cosign.key to sign with.", show_default=False)],
    fmt: Annotated[
        str,
        typer.Option("--format", help="bundle (cosign v3, a referrer) or legacy (the sha256-….sig tag)."),
    ] = "bundle",
) -> None:
    """Sign the digest a reference resolves to, as cosign does; the password comes from COSIGN_PASSWORD."""
    with _reported():
        from solstice.oci.keys import load_private_key
        from solstice.oci.signing import SIGN_FORMATS

        sign_fmt = next((known for known in SIGN_FORMATS if known == fmt), None)
        if sign_fmt is None:
            raise CliError(f"--format {fmt!r} is unknown; use bundle or legacy")
        settings = _settings()
        ref = _reference(reference)
        pem = key.read_bytes()
        private_key = load_private_key(pem, _password(settings.environ, f"Password for {key}", confirm=False))

    async def work() -> tuple[str, str]:
        from solstice.oci.signing import sign as sign_digest

        async with _client(settings, ref) as client:
            digest = await client.resolve(ref.repository, ref.ref)
            return digest, await sign_digest(client, ref, digest, private_key, fmt=sign_fmt)

    digest, signature = _run(work)
    typer.echo(f"Signed {ref.name}@{digest} with {key} ({fmt} signature manifest {signature}).")


@app.command()
def verify(
    reference: Reference,
    key: Annotated[
        list[Path] | None,
        typer.Option(
            "--key",
            help="cosign.pub to trust; repeatable. Default: OCI_PLUGINS_PUBLIC_KEY_<N> (or ?pubkey=N).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Check that a reference carries a valid cosign signature; exits 1 with the reason when not."""
    with _reported():
        settings = _settings()
        ref = _reference(reference)
        trusted = _trusted_keys(settings.environ, key or [], ref)

    async def work() -> Verified:
        async with _client(settings, ref) as client:
            return await _verify_reference(client, ref, trusted)

    verified = _run(work)
    found = verified.signature
    typer.echo(
        f"Verified {ref.name}@{verified.digest}: {found.kind} signature in {found.where}, key {verified.key}."
    )


def _trusted_keys(environ: Mapping[str, str], paths: list[Path], ref: OciReference) -> dict[str, PublicKey]:
    from solstice.oci.keys import load_public_key, public_keys_from_environ

    if paths:
        return {str(path): load_public_key(str(path), "--key") for path in paths}
    configured = public_keys_from_environ(environ)
    if ref.pubkey:
        if ref.pubkey not in configured:
            raise CliError(
                f"?pubkey={ref.pubkey} names no configured key; set OCI_PLUGINS_PUBLIC_KEY_{ref.pubkey} "
                "or pass --key cosign.pub"
            )
        return {ref.pubkey: configured[ref.pubkey]}
    if not configured:
        raise CliError("no public key to verify with; pass --key cosign.pub or set OCI_PLUGINS_PUBLIC_KEY_1")
    return configured


async def _verify_reference(
    client: RegistryClient, ref: OciReference, keys: Mapping[str, PublicKey]
) -> Verified:
    """As the puller decides: a signature of the resolved digest or of the platform's manifest in an index."""
    from solstice.oci import platform as platforms
    from solstice.oci.errors import SignatureRequiredError
    from solstice.oci.signing import verify as verify_digest

    digest = await client.resolve(ref.repository, ref.ref)
    try:
        return await verify_digest(client, ref.repository, digest, keys)
    except SignatureRequiredError as exc:
        first = exc
    top = await client.manifest(ref.repository, digest)
    if not top.is_index:
        raise first
    wanted = ref.platform or platforms.host_platform()
    entry = platforms.select(top.data, wanted, ref.pinned(digest).image)
    try:
        return await verify_digest(client, ref.repository, str(entry.get("digest")), keys)
    except SignatureRequiredError as exc:
        raise SignatureRequiredError(f"{first}; for its {wanted} manifest: {exc}") from None


# -- cache ----------------------------------------------------------------------------------------


def _cache(settings: Settings) -> Cache:
    from solstice.oci.cache import Cache

    config = _config(settings)
    return Cache(config.cache_dir, config.cache_max_bytes)


def _entry_row(entry: Entry) -> dict[str, Any]:
    return {
        "key": entry.key,
        "reference": entry.reference,
        "digest": entry.digest,
        "platform": entry.platform,
        "size": entry.size,
        "last_used": _local_time(entry.last_used),
    }


def _print_entries(entries: list[Entry], caption: str) -> None:
    rows = table("key", "reference", "digest", "platform", "size", "last used", caption=caption)
    for entry in entries:
        row = _entry_row(entry)
        row["size"] = _size(entry.size)
        rows.add_row(*(cell(value) for value in row.values()))
    console().print(rows)


@cache_app.command("ls")
def cache_ls(as_json: AsJson = False) -> None:
    """Every cached plugin executable, least recently used first."""
    with _reported():
        cache = _cache(_settings())
        entries = cache.entries()
    if as_json:
        print_json([_entry_row(entry) | {"path": str(entry.path)} for entry in entries])
        return
    if not entries:
        console().print(Text(f"The cache {cache.root} is empty."))
        return
    total = sum(entry.size for entry in entries)
    _print_entries(entries, f"{len(entries)} entries, {_size(total)} in {cache.root}")


@cache_app.command("prune")
def cache_prune(
    remove_all: Annotated[bool, typer.Option("--all", help="Remove every entry.")] = False,
    max_bytes: Annotated[
        int | None,
        typer.Option("--max-bytes", min=0, help="Remove least recently used entries until the cache fits."),
    ] = None,
) -> None:
    """Remove cached plugins (default: down to OCI_PLUGINS_CACHE_MAX_BYTES) and list what was removed.

    A running server keeps executing what it already started; it pulls removed plugins again on restart.
    """
    with _reported():
        if remove_all and max_bytes is not None:
            raise CliError("give --all or --max-bytes, not both")
        cache = _cache(_settings())
        limit = 0 if remove_all else cache.max_bytes if max_bytes is None else max_bytes
        if cache.plugins.is_dir():
            # evict() moves entries into tmp/ before deleting them; it may not exist yet.
            cache.tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        removed = cache.evict((), limit)
        left = cache.entries()
    if not removed:
        console().print(
            Text(
                f"Nothing removed: {len(left)} entries, {_size(sum(e.size for e in left))}, "
                f"fit within {_size(limit)}."
            )
        )
        return
    freed = _size(sum(entry.size for entry in removed))
    _print_entries(removed, f"Removed {len(removed)} entries ({freed}); {len(left)} left.")


# -- keys -----------------------------------------------------------------------------------------


@keys_app.command("generate")
def generate(
    output_prefix: Annotated[
        str, typer.Option("--output-prefix", help="Write PREFIX.key (0600) and PREFIX.pub.")
    ] = "cosign",
) -> None:
    """Make an ECDSA P-256 key pair in cosign's format; the password comes from COSIGN_PASSWORD."""
    with _reported():
        from solstice.oci.keys import generate_keypair

        private_path, public_path = Path(f"{output_prefix}.key"), Path(f"{output_prefix}.pub")
        for path in (private_path, public_path):
            if path.exists():
                raise CliError(f"{path} already exists; remove it or choose another --output-prefix")
        settings = _settings()
        password = _password(settings.environ, f"Password for {private_path}", confirm=True)
        private_pem, public_pem = generate_keypair(password)
        _write_new(private_path, private_pem, 0o600)
        try:
            _write_new(public_path, public_pem, 0o644)
        except BaseException:
            private_path.unlink(missing_ok=True)
            raise
    typer.echo(
        f"Wrote {private_path} (keep it secret) and {public_path} "
        "(give it to verifiers, e.g. as OCI_PLUGINS_PUBLIC_KEY_1)."
    )


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the start, refusing to replace a file that appeared meanwhile."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    # The umask may have removed bits; the mode asked for is the mode wanted.
    os.chmod(path, mode)
