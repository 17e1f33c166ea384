"""A real CNCF distribution registry (`docker-registry serve`) on 127.0.0.1, stopped by PID."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import secrets
import shutil
import signal
import ssl
import subprocess
from pathlib import Path
from typing import IO, Literal

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.conftest import wait_until
from tests.oci.tokenserver import TokenServer
from tests.server import free_port

Mode = Literal["noauth", "basic", "token", "tls"]
MODES: tuple[Mode, ...] = ("noauth", "basic", "token", "tls")
INSTALL_HINT = "apt-get install -y --no-install-recommends docker-registry skopeo umoci apache2-utils"

# distribution 2.8 answers 404 MANIFEST_UNKNOWN to a manifest GET for an OCI manifest unless the
# Accept header names the OCI types (it tries a schema1 conversion otherwise): always send these.
MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def require_tool(name: str) -> str:
    """Absolute path of `name`, or fail the test loudly with the install command (never skip)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"`{name}` is missing; install the OCI test tools with `{INSTALL_HINT}`", pytrace=False)
    return path


class Registry:
    """`docker-registry serve` with a generated config; `stop()`/`start()` keep the port and storage."""

    def __init__(
        self,
        root: Path,
        mode: Mode = "noauth",
        *,
        tls: bool | None = None,
        user: str = "alice",
        password: str | None = None,
        allow_anonymous_pull: bool = False,
        ready_timeout: float = 10.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown registry mode {mode!r}; expected one of {MODES}")
        self.binary = require_tool("docker-registry")
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.mode: Mode = mode
        # "tls" is TLS without auth; other modes can add TLS with tls=True.
        self.tls = mode == "tls" if tls is None else tls
        self.auth: Literal["none", "basic", "token"] = (
            "basic" if mode == "basic" else "token" if mode == "token" else "none"
        )
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.url = f"{'https' if self.tls else 'http'}://{self.host}"
        self.storage_dir = root / "storage"
        self.storage_dir.mkdir(exist_ok=True)
        self.config_path = root / "config.yml"
        self.log_path = root / "registry.log"
        self.user: str | None = None
        self.password: str | None = None
        self.realm: str | None = None
        self.service: str | None = None
        self.issuer: str | None = None
        self.token_server: TokenServer | None = None
        self.ca_path: Path | None = None
        self.cert_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None

        auth_yaml = ""
        if self.auth == "basic":
            self.user = user
            self.password = password or "pw-" + secrets.token_hex(8)
            self.realm = "solstice-test-basic"
            htpasswd = root / "htpasswd"
            # distribution only accepts bcrypt entries (-B); -n prints instead of editing a file.
            entry = subprocess.run(
                [require_tool("htpasswd"), "-Bbn", self.user, self.password],
                capture_output=True,
                check=True,
                timeout=30,
            ).stdout
            htpasswd.write_bytes(entry.strip() + b"\n")
            auth_yaml = f"""auth:
  htpasswd:
    realm: {self.realm}
    path: {htpasswd}
"""
        elif self.auth == "token":
            token_server = TokenServer(
                root / "token",
                user=user,
                allow_anonymous_pull=allow_anonymous_pull,
                **({"password": password} if password else {}),
            )
            # The token server must be up before the registry starts so the realm has a real port.
            self.token_server = token_server.start()
            self.user = token_server.user
            self.password = token_server.password
            self.realm = token_server.realm
            self.service = token_server.service
            self.issuer = token_server.issuer
            auth_yaml = f"""auth:
  token:
    realm: {self.realm}
    service: {self.service}
    issuer: {self.issuer}
    rootcertbundle: {token_server.rootcertbundle}
"""
        tls_yaml = ""
        if self.tls:
            # cert_dir holds only ca.crt: skopeo's --cert-dir reads *.crt as CAs, *.cert/*.key as client pairs.
            self.cert_dir = root / "certs"
            self.ca_path, cert, key = write_test_ca(self.cert_dir, root / "tls")
            tls_yaml = f"""  tls:
    certificate: {cert}
    key: {key}
"""
        self.config_path.write_text(
            f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {self.storage_dir}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: {self.host}
  secret: {secrets.token_hex(16)}
{tls_yaml}{auth_yaml}"""
        )

    @property
    def pid(self) -> int | None:
        """PID of the running registry process (a new one after each `start()`), else None."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def creds(self) -> str | None:
        """`user:password` for skopeo's --creds, or None without auth."""
        return f"{self.user}:{self.password}" if self.user is not None else None

    def ssl_context(self) -> ssl.SSLContext | bool:
        """What to pass as httpx's `verify`: a context trusting the test CA, or True for http."""
        # httpx 0.28 deprecates verify=<path>; a context built from the CA file is the supported way.
        return ssl.create_default_context(cafile=str(self.ca_path)) if self.ca_path else True

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client for this registry's base URL that trusts its CA."""
        return httpx.Client(base_url=self.url, verify=self.ssl_context(), timeout=10, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        """Everything the registry process wrote to stdout/stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Registry:
        """Start the registry (same port, config and storage as before) and wait until /v2/ answers."""
        if self.pid is not None:
            return self
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._proc = subprocess.Popen(
            [self.binary, "serve", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            # Own process group: a Ctrl-C aimed at pytest must not reach it before teardown does.
            start_new_session=True,
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        """Poll GET /v2/ until 200 (noauth) or 401 (auth); fail with the process log otherwise."""
        last_error = ["no attempt"]
        with httpx.Client(verify=self.ssl_context(), timeout=1) as client:

            def answers() -> bool:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    self.close()
                    pytest.fail(
                        f"docker-registry exited with {self._proc.returncode} before answering on "
                        f"{self.url}/v2/\nconfig {self.config_path}:\n{self.config_path.read_text()}\n"
                        f"output:\n{self.log()}",
                        pytrace=False,
                    )
                try:
                    status = client.get(f"{self.url}/v2/").status_code
                except httpx.TransportError as exc:
                    last_error[0] = repr(exc)
                    return False
                last_error[0] = f"HTTP {status}"
                return status in (200, 401)

            try:
                wait_until(
                    answers,
                    self.ready_timeout,
                    lambda: f"last: {last_error[0]}\noutput:\n{self.log()}",
                    what=f"docker-registry to answer {self.url}/v2/",
                    interval=0.01,
                )
            except AssertionError:
                self.close()
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the registry by PID, wait, SIGKILL if needed; storage and port are kept."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
        self._close_log()

    def close(self) -> None:
        """Stop the registry and, in token mode, its token server."""
        self.stop()
        if self.token_server is not None:
            self.token_server.stop()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> Registry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Registry(mode={self.mode!r}, url={self.url!r}, pid={self.pid})"


def write_test_ca(ca_dir: Path, server_dir: Path) -> tuple[Path, Path, Path]:
    """Write a P-256 test CA and a server cert/key for 127.0.0.1/localhost; return (ca, cert, key)."""
    ca_dir.mkdir(parents=True, exist_ok=True)
    server_dir.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "solstice test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = ca_dir / "ca.crt"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path = server_dir / "server.pem"
    key_path = server_dir / "server-key.pem"
    cert_path.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path
