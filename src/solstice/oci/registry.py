"""A client of the distribution API v2: manifests, blobs, tags, referrers and uploads.

It answers the registry's auth challenges (Basic, Bearer token exchange with scope upgrades),
sends entitlement and static tokens directly, follows redirects without carrying credentials to
another host, retries transient failures within a total time bound, and checks every digest.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import httpcore
import httpx

from solstice.oci import media
from solstice.oci.credentials import Credential, env_names
from solstice.oci.descriptors import check_digest, check_document, hasher_for, is_digest
from solstice.oci.errors import (
    ContentError,
    NotFoundError,
    RegistryAuthError,
    RegistryError,
)
from solstice.oci.reference import DIGEST, TAG

MAX_MANIFEST_BYTES = 4 << 20
MAX_REDIRECTS = 5
CHUNK = 1 << 16
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')

# Registries (loopback or listed insecure) that answered only plain HTTP in this process.
_PLAIN_HTTP_HOSTS: set[str] = set()

Progress = Callable[[int], None]
UrlGuard = Callable[[httpx.URL], Awaitable[None]]


@dataclass(frozen=True)
class Manifest:
    """A manifest or index exactly as the registry sent it, with the digest of those bytes."""

    digest: str
    media_type: str
    raw: bytes = field(repr=False)

    @cached_property
    def data(self) -> dict[str, Any]:
        """The parsed JSON document."""
        document = json.loads(self.raw)
        if not isinstance(document, dict):  # manifest() checked it is one before making this
            raise ContentError(f"manifest {self.digest} is not a JSON object")
        return document

    @property
    def is_index(self) -> bool:
        """True for an OCI image index or a Docker manifest list."""
        return self.media_type in media.INDEXES


@dataclass(frozen=True)
class ClientOptions:
    """Transport settings shared by every registry client of a process."""

    insecure_registries: frozenset[str] = frozenset()
    ca_bundle: str | None = None
    timeout: float = 30.0
    total_timeout: float = 300.0
    retries: int = 3
    url_guard: UrlGuard | None = None
    # Where TCP connections go (the security policy's checked addresses); None: the default.
    network_backend: httpcore.AsyncNetworkBackend | None = None


@functools.lru_cache(maxsize=8)
def tls_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The TLS context for registries, built once: loading CA certificates takes milliseconds."""
    return ssl.create_default_context(cafile=ca_bundle)


def sha256_digest(data: bytes) -> str:
    """The OCI digest of `data`."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def may_use_http(host: str, insecure: frozenset[str]) -> bool:
    """Loopback registries and those listed as insecure may be reached over plain HTTP."""
    bare = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return host in insecure or bare in _LOCAL_HOSTS or bare in insecure


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, params = header.strip().partition(" ")
    return scheme.lower(), dict(_CHALLENGE_PARAM.findall(params))


class RegistryClient:
    """One registry, with the credential for it; use as an async context manager."""

    def __init__(self, host: str, credential: Credential | None, options: ClientOptions) -> None:
        self.host = host
        self.credential = credential
        self.options = options
        # Like Docker: HTTPS first, then plain HTTP, for registries that are allowed to use it.
        allowed_http = may_use_http(host, options.insecure_registries)
        known_plain = allowed_http and host in _PLAIN_HTTP_HOSTS
        self.base = f"{'http' if known_plain else 'https'}://{host}"
        self._may_downgrade = allowed_http and not known_plain
        verify = tls_context(options.ca_bundle)
        timeout = httpx.Timeout(options.timeout, connect=min(options.timeout, 10.0))
        # Redirects are followed by hand, so credentials never travel to another host.
        self._http = httpx.AsyncClient(
            verify=verify,
            timeout=timeout,
            follow_redirects=False,
            trust_env=False,
            transport=_transport(verify, options.network_backend),
        )
        self._tokens: dict[str, tuple[str, float]] = {}
        self._basic = False
        self._deadline = time.monotonic() + options.total_timeout

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    # -- reads ---------------------------------------------------------------------------------

    async def resolve(self, repository: str, ref: str) -> str:
        """The digest a tag (or digest) points at, from a HEAD request when the registry says it."""
        if DIGEST.fullmatch(ref):
            return ref
        headers = {"Accept": media.MANIFEST_ACCEPT}
        path = f"/v2/{repository}/manifests/{_checked_ref(ref, repository)}"
        async with self._open("HEAD", path, repository, headers) as answer:
            digest: str = answer.headers.get("docker-content-digest", "")
        if DIGEST.fullmatch(digest):
            return digest
        return (await self.manifest(repository, ref)).digest

    async def manifest(self, repository: str, ref: str) -> Manifest:
        """A manifest or index by tag or digest; by digest, its bytes must hash to that digest.

        Every descriptor it holds is checked before a caller can use one in a request.
        """
        headers = {"Accept": media.MANIFEST_ACCEPT}
        path = f"/v2/{repository}/manifests/{_checked_ref(ref, repository)}"
        async with self._open("GET", path, repository, headers) as answer:
            raw = await _read_capped(answer, MAX_MANIFEST_BYTES, f"manifest {repository}:{ref}")
            content_type = answer.headers.get("content-type", "").split(";")[0].strip()
        digest = sha256_digest(raw)
        if is_digest(ref) and _digest_of(raw, ref) != ref:
            raise ContentError(
                f"registry {self.host} sent a manifest for {repository}@{ref} whose digest is "
                f"{_digest_of(raw, ref)}; the content was rejected"
            )
        try:
            document = json.loads(raw)
        except ValueError:
            raise ContentError(f"manifest {repository}:{ref} on {self.host} is not JSON") from None
        if not isinstance(document, dict):
            raise ContentError(f"manifest {repository}:{ref} on {self.host} is not a JSON object")
        check_document(document, f"manifest {self.host}/{repository}@{digest}")
        media_type = document.get("mediaType") or content_type
        return Manifest(digest, media_type, raw)

    async def blob_bytes(self, repository: str, digest: str, max_bytes: int) -> bytes:
        """A small blob (config, signature payload) in memory, after checking its digest."""
        path = f"/v2/{repository}/blobs/{check_digest(digest, f'a blob of {repository}')}"
        async with self._open("GET", path, repository) as answer:
            data = await _read_capped(answer, max_bytes, f"blob {digest}")
        if _digest_of(data, digest) != digest:
            raise ContentError(f"blob {digest} of {repository} on {self.host} does not match its digest")
        return data

    async def blob_to_file(
        self, repository: str, digest: str, dest: Path, max_bytes: int, progress: Progress | None = None
    ) -> int:
        """Stream a blob into `dest` (created, then fsynced) checking size and digest; returns its size.

        On any failure `dest` is removed, so nothing unverified is left for a caller to use.
        """
        path = f"/v2/{repository}/blobs/{check_digest(digest, f'a blob of {repository}')}"
        hasher = hasher_for(digest)
        size = 0
        try:
            async with self._open("GET", path, repository) as answer:
                declared = int(answer.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise ContentError(_too_large(f"blob {digest}", declared, max_bytes))
                with dest.open("xb") as out:
                    async for chunk in _chunks(answer, self.host, f"blob {digest}"):
                        size += len(chunk)
                        if size > max_bytes:
                            raise ContentError(_too_large(f"blob {digest}", size, max_bytes))
                        hasher.update(chunk)
                        out.write(chunk)
                        if progress:
                            progress(len(chunk))
                    out.flush()
                    await asyncio.to_thread(os.fsync, out.fileno())
            if f"{hasher.name}:{hasher.hexdigest()}" != digest:
                raise ContentError(
                    f"blob {digest} of {repository} on {self.host} does not match its digest; "
                    "it was discarded"
                )
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(dest)
            raise
        return size

    async def tags(self, repository: str) -> list[str]:
        """Every tag of a repository."""
        async with self._open("GET", f"/v2/{repository}/tags/list", repository) as answer:
            data = await _read_capped(answer, MAX_MANIFEST_BYTES, f"tag list of {repository}")
        tags = _json_object(data, f"the tag list of {repository} on {self.host}").get("tags")
        return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []

    async def referrers(self, repository: str, digest: str) -> list[dict[str, Any]] | None:
        """Manifests whose subject is `digest`, from the referrers API; None when it is missing."""
        headers = {"Accept": media.OCI_INDEX}
        path = f"/v2/{repository}/referrers/{check_digest(digest, f'a manifest of {repository}')}"
        try:
            async with self._open("GET", path, repository, headers) as answer:
                data = await _read_capped(answer, MAX_MANIFEST_BYTES, f"referrers of {digest}")
                content_type = answer.headers.get("content-type", "")
        except NotFoundError:
            return None
        if not content_type.startswith(media.OCI_INDEX):
            return None
        document = _json_object(data, f"the referrers of {digest} on {self.host}")
        check_document(document, f"the referrers of {self.host}/{repository}@{digest}")
        return _dicts(document.get("manifests"))

    async def exists(self, repository: str, ref: str) -> bool:
        """Whether a manifest exists under `ref`."""
        headers = {"Accept": media.MANIFEST_ACCEPT}
        path = f"/v2/{repository}/manifests/{_checked_ref(ref, repository)}"
        try:
            async with self._open("HEAD", path, repository, headers):
                return True
        except NotFoundError:
            return False

    # -- writes --------------------------------------------------------------------------------

    async def has_blob(self, repository: str, digest: str) -> bool:
        """Whether the repository already holds a blob (so a push can skip it)."""
        path = f"/v2/{repository}/blobs/{check_digest(digest, f'a blob of {repository}')}"
        try:
            async with self._open("HEAD", path, repository, push=True):
                return True
        except NotFoundError:
            return False

    async def push_blob(
        self,
        repository: str,
        digest: str,
        source: bytes | Path,
        progress: Progress | None = None,
    ) -> None:
        """Upload a blob in one PUT, unless the registry already has it."""
        if await self.has_blob(repository, digest):
            size = len(source) if isinstance(source, bytes) else os.stat(source).st_size
            if progress:
                progress(size)
            return
        path = f"/v2/{repository}/blobs/uploads/"
        async with self._open("POST", path, repository, push=True) as answer:
            location = answer.headers.get("location")
        if not location:
            raise RegistryError(f"registry {self.host} started an upload without a Location header")
        # The upload URL carries state in its query: the digest is appended, never replacing it.
        url = str(httpx.URL(self.base).join(location))
        url += ("&" if "?" in url else "?") + f"digest={digest}"
        body: bytes | AsyncIterator[bytes] = (
            source if isinstance(source, bytes) else _file_chunks(source, progress)
        )
        size = len(source) if isinstance(source, bytes) else os.stat(source).st_size
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        async with self._open("PUT", url, repository, headers, content=body, push=True, retry=False):
            pass
        if isinstance(source, bytes) and progress:
            progress(size)

    async def put_manifest(self, repository: str, ref: str, raw: bytes, media_type: str) -> str:
        """Store a manifest or index under a tag or its digest; returns its digest."""
        headers = {"Content-Type": media_type}
        path = f"/v2/{repository}/manifests/{_checked_ref(ref, repository)}"
        async with self._open("PUT", path, repository, headers, content=raw, push=True):
            pass
        return sha256_digest(raw)

    # -- the request machinery -----------------------------------------------------------------

    @asynccontextmanager
    async def _open(
        self,
        method: str,
        path_or_url: str,
        repository: str,
        headers: dict[str, str] | None = None,
        *,
        content: bytes | AsyncIterator[bytes] | None = None,
        push: bool = False,
        retry: bool = True,
    ) -> AsyncIterator[httpx.Response]:
        """A successful (2xx) streamed response; errors become RegistryError subclasses."""
        call = _Call(
            method,
            path_or_url,
            f"repository:{repository}:{'pull,push' if push else 'pull'}",
            headers or {},
            content,
            retry,
        )
        if "://" in path_or_url:
            answer = await self._send_with_retries(call)
        else:
            answer = await self._send_to_registry(call)
        try:
            yield answer
        finally:
            await answer.aclose()

    async def _send_to_registry(self, call: _Call) -> httpx.Response:
        path = call.url
        if self._may_downgrade:
            try:
                answer = await self._send_authenticated(call.at(self.base + path))
            except _TlsRefused:
                self.base = f"http://{self.host}"
            else:
                self._may_downgrade = False
                return answer
            self._may_downgrade = False
            answer = await self._send_with_retries(call.at(self.base + path))
            # Remembered for this process once plain HTTP worked: later pulls skip the TLS attempt.
            _PLAIN_HTTP_HOSTS.add(self.host)
            return answer
        return await self._send_with_retries(call.at(self.base + path))

    async def _send_with_retries(self, call: _Call) -> httpx.Response:
        attempt = 0
        while True:
            try:
                return await self._send_authenticated(call)
            except RegistryError as exc:
                attempt += 1
                delay = 0.2 * 2 ** (attempt - 1)
                if not (call.retry and exc.retryable and attempt <= self.options.retries):
                    raise
                if time.monotonic() + delay > self._deadline:
                    raise RegistryError(
                        f"{exc} (gave up after {self.options.total_timeout:.0f} s in all)",
                        status=exc.status,
                    ) from None
                await asyncio.sleep(delay)

    async def _send_authenticated(self, call: _Call) -> httpx.Response:
        tried: set[str] = set()
        while True:
            answer = await self._send_following(call, self._authorization(call.scope))
            if answer.status_code != 401:
                return await self._check(answer, call.method, call.url)
            challenge = answer.headers.get("www-authenticate", "")
            challenger = answer.request.url
            await answer.aclose()
            if not self._is_registry(challenger):
                # A host the registry redirected to may not steer our credentials anywhere.
                raise RegistryAuthError(
                    f"{challenger.host}, where registry {self.host} redirected {call.method} "
                    f"{httpx.URL(call.url).path}, asked for authentication; credentials go only to "
                    "the registry and its token service, so the request failed",
                    status=401,
                )
            scheme, params = _parse_challenge(challenge)
            # A 401 may name a wider scope than we asked for (several repositories, or push).
            wanted = params.get("scope") or call.scope
            key = f"{scheme}:{wanted}"
            if key in tried or scheme not in ("basic", "bearer"):
                raise self._refused(challenge)
            tried.add(key)
            if scheme == "basic":
                if self.credential is None:
                    raise self._refused(challenge)
                self._basic = True
            else:
                await self._fetch_token(params, wanted, call.scope)

    def _is_registry(self, url: httpx.URL) -> bool:
        """True when `url` is on the registry's own origin (its scheme, host and port)."""
        origin = httpx.URL(self.base)
        return (url.scheme, url.host, url.port) == (origin.scheme, origin.host, origin.port)

    def _authorization(self, scope: str) -> str | None:
        token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return f"Bearer {token[0]}"
        if self.credential is None:
            return None
        if direct := self.credential.direct_header():
            return direct
        return self.credential.basic_header() if self._basic else None

    async def _fetch_token(self, params: dict[str, str], wanted: str, scope: str) -> None:
        realm = params.get("realm")
        if not realm:
            raise RegistryError(f"registry {self.host} sent a Bearer challenge without a realm")
        url = httpx.URL(realm)
        if service := params.get("service"):
            url = url.copy_add_param("service", service)
        for item in sorted({wanted, scope}):
            url = url.copy_add_param("scope", item)
        headers: dict[str, str] = {}
        if self.credential is not None and self.credential.kind in ("basic", "entitlement"):
            # The Docker token spec sends Basic credentials to the realm the registry names, which
            # is often another host (auth.docker.io): never in clear text to a remote one.
            if url.scheme != "https" and not may_use_http(
                url.netloc.decode(), self.options.insecure_registries
            ):
                raise RegistryAuthError(
                    f"registry {self.host} names the token service {url.scheme}://{url.netloc.decode()}, "
                    "which is not https; its credentials were not sent (list that host in "
                    "OCI_PLUGINS_INSECURE_REGISTRIES if plain HTTP is intended)",
                    status=401,
                )
            headers["Authorization"] = self.credential.basic_header()
        if self.options.url_guard:
            await self.options.url_guard(url)
        try:
            answer = await self._http.get(url, headers=headers)
        except httpx.HTTPError as exc:
            raise RegistryError(
                f"token service {url.host} of registry {self.host} is unreachable: {_why(exc)}",
                retryable=True,
            ) from None
        if answer.status_code in (401, 403):
            raise self._refused("token service")
        if answer.status_code != 200:
            raise RegistryError(
                f"token service {url.host} of registry {self.host} answered {answer.status_code}",
                status=answer.status_code,
                retryable=answer.status_code >= 500,
            )
        try:
            body = answer.json()
            token = body.get("token") or body.get("access_token")
            lifetime = float(body.get("expires_in") or 60)
        except (ValueError, AttributeError):
            token = None
        if not token:
            raise RegistryError(f"token service {url.host} of registry {self.host} sent no token")
        expiry = time.monotonic() + max(lifetime - 10, 5)
        # The token serves both the scope the challenge named and the one we were asked for.
        self._tokens[wanted] = self._tokens[scope] = (token, expiry)

    def _refused(self, challenge: str) -> RegistryAuthError:
        if self.credential is None:
            return RegistryAuthError(
                f"registry {self.host} requires authentication; set OCI_PLUGINS_REGISTRY_<NAME>_* "
                f"variables for it (NAME is {env_names(self.host)[0]!r} or the name given "
                "by ?auth=) or add it to Docker's config.json",
                status=401,
            )
        return RegistryAuthError(
            f"registry {self.host} refused the credentials from {self.credential.source} "
            f"({self.credential.kind}); check them and their access to the repository",
            status=401,
        )

    async def _send_following(self, call: _Call, auth: str | None) -> httpx.Response:
        method = call.method
        # Only the registry's own origin gets credentials: an upload URL or redirect elsewhere not.
        target = httpx.URL(call.url)
        for _ in range(MAX_REDIRECTS + 1):
            if self.options.url_guard:
                await self.options.url_guard(target)
            sent = dict(call.headers)
            if auth and self._is_registry(target):
                sent["Authorization"] = auth
            request = self._http.build_request(method, target, headers=sent, content=call.content)
            try:
                answer = await self._http.send(request, stream=True)
            except httpx.TimeoutException:
                raise RegistryError(
                    f"registry {self.host} did not answer {method} {target.path} within "
                    f"{self.options.timeout:.0f} s",
                    retryable=True,
                ) from None
            except httpx.HTTPError as exc:
                if _certificate_failure(exc):
                    # The server speaks TLS: never downgrade, say which trust is missing.
                    raise RegistryError(
                        f"registry {self.host} presented a certificate that is not trusted "
                        f"({_why(exc)}); set OCI_PLUGINS_CA_BUNDLE to the PEM of its CA"
                    ) from None
                if self._may_downgrade and _tls_failure(exc):
                    raise _TlsRefused() from None
                raise RegistryError(
                    f"registry {self.host} is unreachable at {self.base}: {_why(exc)}", retryable=True
                ) from None
            if answer.status_code not in (301, 302, 303, 307, 308) or method not in ("GET", "HEAD"):
                return answer
            location = answer.headers.get("location")
            await answer.aclose()
            if not location:
                raise RegistryError(f"registry {self.host} redirected without a Location header")
            target = target.join(location)
        raise RegistryError(f"registry {self.host} redirected more than {MAX_REDIRECTS} times")

    async def _check(self, answer: httpx.Response, method: str, url: str) -> httpx.Response:
        status = answer.status_code
        if 200 <= status < 300:
            return answer
        detail = ""
        if method != "HEAD":
            detail = _error_detail(await answer.aread())
        await answer.aclose()
        where = httpx.URL(url).path
        if status == 404:
            raise NotFoundError(
                f"registry {self.host} has no {where}" + (f" ({detail})" if detail else ""), status=404
            )
        if status == 403:
            raise RegistryAuthError(
                f"registry {self.host} denied access to {where}" + (f": {detail}" if detail else ""),
                status=403,
            )
        raise RegistryError(
            f"registry {self.host} answered {status} to {method} {where}" + (f": {detail}" if detail else ""),
            status=status,
            retryable=status == 429 or status >= 500,
        )


@dataclass(frozen=True)
class _Call:
    """One registry request as the retry, auth and redirect layers pass it down."""

    method: str
    url: str
    scope: str
    headers: dict[str, str]
    content: bytes | AsyncIterator[bytes] | None
    retry: bool

    def at(self, url: str) -> _Call:
        """The same request sent to `url`."""
        return dataclasses.replace(self, url=url)


def _transport(
    verify: ssl.SSLContext, backend: httpcore.AsyncNetworkBackend | None
) -> httpx.AsyncHTTPTransport:
    transport = httpx.AsyncHTTPTransport(verify=verify)
    if backend is not None:
        # httpx takes no network backend: give its transport a pool built with ours.
        transport._pool = httpcore.AsyncConnectionPool(ssl_context=verify, network_backend=backend)
    return transport


class _TlsRefused(Exception):
    """HTTPS failed on a registry that may also be reached over plain HTTP."""


async def _read_capped(answer: httpx.Response, limit: int, what: str) -> bytes:
    declared = int(answer.headers.get("content-length") or 0)
    if declared > limit:
        raise ContentError(_too_large(what, declared, limit))
    chunks: list[bytes] = []
    size = 0
    async for chunk in _chunks(answer, answer.request.url.netloc.decode(), what):
        size += len(chunk)
        if size > limit:
            raise ContentError(_too_large(what, size, limit))
        chunks.append(chunk)
    return b"".join(chunks)


async def _chunks(answer: httpx.Response, host: str, what: str) -> AsyncIterator[bytes]:
    """The body in chunks; a connection lost mid-body is a retryable RegistryError."""
    try:
        async for chunk in answer.aiter_bytes(CHUNK):
            yield chunk
    except httpx.HTTPError as exc:
        raise RegistryError(
            f"the download of {what} from {host} broke off: {_why(exc)}", retryable=True
        ) from None


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ContentError(f"{what} is not a JSON object")
    return document


def _dicts(value: object) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


async def _file_chunks(path: Path, progress: Progress | None) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := source.read(1 << 20):
            if progress:
                progress(len(chunk))
            yield chunk


def _checked_ref(ref: str, repository: str) -> str:
    """A tag or digest that is safe in a manifest URL; anything else is refused before a request."""
    if TAG.fullmatch(ref):
        return ref
    return check_digest(ref, f"a manifest reference of {repository}")


def _digest_of(data: bytes, like: str) -> str:
    """The digest of `data` with the algorithm of the digest `like`."""
    hasher = hasher_for(like)
    hasher.update(data)
    return f"{hasher.name}:{hasher.hexdigest()}"


def _too_large(what: str, size: int, limit: int) -> str:
    return f"{what} is larger than the limit of {limit} bytes ({size} or more); it was not used"


def _error_detail(body: bytes) -> str:
    """The first error message of a distribution error body, if it has one."""
    try:
        errors = json.loads(body).get("errors") or []
        first = errors[0]
        return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


def _tls_failure(exc: BaseException) -> bool:
    """A TLS handshake that failed (e.g. the server speaks plain HTTP), not a refused connection."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _certificate_failure(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _why(exc: httpx.HTTPError) -> str:
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:200]
