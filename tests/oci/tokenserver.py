"""An in-process bearer token server for distribution's `auth.token` (ES256 JWT with an x5c header)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.server import free_port

DEFAULT_SERVICE = "test-registry"
DEFAULT_ISSUER = "test-issuer"


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered; never holds the password."""

    method: str
    path: str
    query: dict[str, list[str]]
    auth_present: bool
    user: str | None
    status: int

    @property
    def scopes(self) -> list[str]:
        """The `scope` parameters, in request order (a client may send several)."""
        return self.query.get("scope", [])

    @property
    def service(self) -> str | None:
        """The `service` parameter, if any."""
        return self.query.get("service", [None])[0]


@dataclass
class IssuedToken:
    """A token the server handed out, decoded, so tests can compare what was granted."""

    subject: str
    access: list[dict[str, Any]]
    token: str


def b64url(data: bytes) -> str:
    """Unpadded base64url, as JWS requires."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def parse_scope(scope: str) -> dict[str, Any] | None:
    """`repository:name:pull,push` -> an access entry; None if malformed."""
    # Actions come last and the type first; split that way so names with ':' (none today) survive.
    head, sep, actions = scope.rpartition(":")
    kind, sep2, name = head.partition(":")
    if not sep or not sep2 or not kind or not name:
        return None
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


def decode_jwt_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT without checking the signature; for assertions in tests."""

    def part(text: str) -> dict[str, Any]:
        return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))

    header, claims, _signature = token.split(".")
    return part(header), part(claims)


@dataclass
class TokenServer:
    """Basic-auth protected `/token` endpoint issuing registry bearer tokens; runs in a daemon thread."""

    directory: Path
    user: str = "alice"
    password: str = field(default_factory=lambda: "pw-" + secrets.token_hex(8))
    service: str = DEFAULT_SERVICE
    issuer: str = DEFAULT_ISSUER
    allow_anonymous_pull: bool = False
    expires_in: int = 300
    requests: list[TokenRequest] = field(default_factory=list)
    issued: list[IssuedToken] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._cert = _self_signed(self._key, "solstice test token signer")
        self._x5c = base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode("ascii")
        # distribution reads this bundle at startup and trusts tokens whose x5c leaf is in it.
        self.rootcertbundle = self.directory / "token-root.pem"
        self.rootcertbundle.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        self.port = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def realm(self) -> str:
        """The token endpoint URL to put into the registry's `auth.token.realm`."""
        return f"http://127.0.0.1:{self.port}/token"

    def start(self) -> TokenServer:
        """Bind 127.0.0.1 on a free port and serve in a background thread."""
        if self._httpd is not None:
            return self
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port or free_port()), handler)
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        # A short poll interval keeps shutdown() (and so test teardown) fast.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> TokenServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def check_credentials(self, user: str, password: str) -> bool:
        """Constant-time comparison of the Basic credentials."""
        return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    def issue(self, subject: str, scopes: list[str], *, authenticated: bool) -> dict[str, Any]:
        """Sign a token granting the requested scopes (pull only, or nothing, when anonymous)."""
        access: list[dict[str, Any]] = []
        for scope in scopes:
            entry = parse_scope(scope)
            if entry is None:
                continue
            if not authenticated:
                # Like a private registry: anonymous callers get a token that grants nothing,
                # so the registry answers 401 insufficient_scope instead of serving content.
                if not self.allow_anonymous_pull or "pull" not in entry["actions"]:
                    continue
                entry["actions"] = ["pull"]
            access.append(entry)
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expires_in,
            # A little slack for clock granularity between this process and the registry.
            "nbf": now - 5,
            "iat": now,
            "jti": secrets.token_hex(16),
            "access": access,
        }
        signing_input = (
            b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + b64url(json.dumps(claims, separators=(",", ":")).encode())
        )
        der = self._key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
        r, s = decode_dss_signature(der)
        # JWS ES256 wants the raw 64-byte r||s, not the DER encoding cryptography returns.
        token = signing_input + "." + b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))
        with self._lock:
            self.issued.append(IssuedToken(subject=subject, access=access, token=token))
        return {
            "token": token,
            "access_token": token,
            "expires_in": self.expires_in,
            "issued_at": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }

    def record(self, request: TokenRequest) -> None:
        """Append to `requests` under a lock (the HTTP server is threaded)."""
        with self._lock:
            self.requests.append(request)

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the signing certificate (DER), for diagnostics."""
        return hashlib.sha256(self._cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str) -> x509.Certificate:
    """A self-signed certificate for the token signing key, valid around now."""
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )


def _make_handler(server: TokenServer) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `server`."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            # Silence the default stderr access log; requests are recorded in `server.requests`.
            return

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query, keep_blank_values=True)
            auth = self.headers.get("Authorization")
            user: str | None = None
            authenticated = False
            status = 200
            if url.path != "/token":
                status = 404
            elif auth is not None:
                user, authenticated = _basic_user(auth, server)
                if not authenticated:
                    status = 401
            server.record(
                TokenRequest(
                    method="GET",
                    path=url.path,
                    query=query,
                    auth_present=auth is not None,
                    user=user,
                    status=status,
                )
            )
            if status == 404:
                self._send(404, {"errors": [{"code": "NOT_FOUND", "message": "no such endpoint"}]})
            elif status == 401:
                self._send(
                    401,
                    {"errors": [{"code": "UNAUTHORIZED", "message": "invalid credentials"}]},
                    {"WWW-Authenticate": 'Basic realm="solstice-test-token"'},
                )
            else:
                subject = user if authenticated and user else "anonymous"
                self._send(200, server.issue(subject, query.get("scope", []), authenticated=authenticated))

        def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _basic_user(header: str, server: TokenServer) -> tuple[str | None, bool]:
    """(user name, credentials valid) from an `Authorization: Basic` header."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None, False
    try:
        user, _, password = base64.b64decode(value.strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None, False
    return user, server.check_credentials(user, password)
