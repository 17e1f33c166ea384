"""The registry fixtures behave like real registries do for a client (and document distribution's quirks)."""

from __future__ import annotations

import io
import json
import socket
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.conftest import pid_alive
from tests.oci.conftest import RegistryFactory
from tests.oci.images import (
    OCI_INDEX,
    OCI_MANIFEST,
    layout_files,
    pull_with_skopeo,
    push_image_with_umoci,
    push_multi_platform_index,
    sha256_digest,
    skopeo_inspect_raw,
    write_plugin_executable,
)
from tests.oci.registries import MANIFEST_ACCEPT, Registry
from tests.oci.tokenserver import decode_jwt_unverified


def bearer_challenge(header: str) -> dict[str, str]:
    """`Bearer realm="..",service=".."` -> {"realm": .., "service": ..}."""
    scheme, _, params = header.partition(" ")
    assert scheme == "Bearer", header
    fields = {}
    for part in params.split('",'):
        key, _, value = part.partition("=")
        fields[key.strip()] = value.strip().strip('"')
    return fields


def test_noauth_push_inspect_pull(registry: Registry, tmp_path: Path) -> None:
    exe = write_plugin_executable(tmp_path / "echo", "noauth payload")
    digest = push_image_with_umoci(registry, "plugins/echo:v1", exe)

    raw = skopeo_inspect_raw(registry, "plugins/echo:v1")
    assert sha256_digest(raw) == digest
    manifest = json.loads(raw)
    # umoci 0.4.7 omits the optional top-level mediaType; the Content-Type header carries it.
    assert manifest["schemaVersion"] == 2 and manifest.get("mediaType", OCI_MANIFEST) == OCI_MANIFEST
    assert len(manifest["layers"]) == 1
    assert skopeo_inspect_raw(registry, f"plugins/echo@{digest}") == raw

    assert registry.url.startswith("http://127.0.0.1:")
    assert registry.host == registry.url.removeprefix("http://")
    assert registry.mode == "noauth" and registry.creds is None
    with registry.client() as client:
        assert client.get("/v2/").status_code == 200
        assert client.get("/v2/plugins/echo/tags/list").json() == {"name": "plugins/echo", "tags": ["v1"]}
        config = client.get(f"/v2/plugins/echo/blobs/{manifest['config']['digest']}").json()
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["config"]["Entrypoint"] == ["/plugin"]

    layout = pull_with_skopeo(registry, "plugins/echo:v1", tmp_path / "pulled")
    files = layout_files(layout)
    assert files == {"plugin": exe.read_bytes()}


def test_manifest_get_needs_oci_accept_header(registry: Registry, tmp_path: Path) -> None:
    """distribution 2.8 answers 404 for an OCI manifest unless Accept names the OCI media type."""
    digest = push_image_with_umoci(
        registry, "plugins/quirk:v1", write_plugin_executable(tmp_path / "q", "quirk")
    )
    with registry.client() as client:
        bare = client.get("/v2/plugins/quirk/manifests/v1")
        assert bare.status_code == 404
        assert bare.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        assert client.head("/v2/plugins/quirk/manifests/v1").status_code == 404

        good = client.get("/v2/plugins/quirk/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert good.status_code == 200
        assert good.headers["Content-Type"] == OCI_MANIFEST
        assert good.headers["Docker-Content-Digest"] == digest == sha256_digest(good.content)
        # No referrers API in 2.8: clients need the tag-schema fallback.
        assert client.get(f"/v2/plugins/quirk/referrers/{digest}").status_code == 404


def test_basic_auth(basic_registry: Registry, tmp_path: Path) -> None:
    assert basic_registry.mode == "basic" and basic_registry.user and basic_registry.password
    with basic_registry.client() as client:
        anonymous = client.get("/v2/")
        assert anonymous.status_code == 401
        assert anonymous.headers["Www-Authenticate"] == f'Basic realm="{basic_registry.realm}"'
        assert client.get("/v2/", auth=(basic_registry.user, "wrong")).status_code == 401
        assert client.get("/v2/", auth=(basic_registry.user, basic_registry.password)).status_code == 200

    exe = write_plugin_executable(tmp_path / "echo", "basic payload")
    digest = push_image_with_umoci(basic_registry, "plugins/echo:v1", exe)
    assert sha256_digest(skopeo_inspect_raw(basic_registry, "plugins/echo:v1")) == digest
    with pytest.raises(RuntimeError, match=r"authentication required|unauthorized"):
        skopeo_inspect_raw(basic_registry, "plugins/echo:v1", anonymous=True)


def test_token_auth_challenge_and_token(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None and token_registry.user and token_registry.password
    digest = push_image_with_umoci(
        token_registry, "plugins/echo:v1", write_plugin_executable(tmp_path / "echo", "token payload")
    )
    with token_registry.client() as client:
        challenge = client.get("/v2/")
        assert challenge.status_code == 401
        fields = bearer_challenge(challenge.headers["Www-Authenticate"])
        assert fields == {"realm": token_registry.realm, "service": token_registry.service}
        assert fields["realm"] == server.realm

        scope = "repository:plugins/echo:pull"
        params = {"service": token_registry.service, "scope": scope}
        wrong = httpx.get(server.realm, params=params, auth=(token_registry.user, "wrong"))
        assert wrong.status_code == 401
        answer = httpx.get(server.realm, params=params, auth=(token_registry.user, token_registry.password))
        assert answer.status_code == 200
        body = answer.json()
        assert body["token"] == body["access_token"] and body["expires_in"] == 300 and body["issued_at"]
        header, claims = decode_jwt_unverified(body["token"])
        assert header["alg"] == "ES256" and len(header["x5c"]) == 1
        assert claims["iss"] == token_registry.issuer and claims["aud"] == token_registry.service
        assert claims["sub"] == token_registry.user
        assert claims["access"] == [{"type": "repository", "name": "plugins/echo", "actions": ["pull"]}]

        bearer = {"Authorization": f"Bearer {body['token']}", "Accept": MANIFEST_ACCEPT}
        pulled = client.get("/v2/plugins/echo/manifests/v1", headers=bearer)
        assert pulled.status_code == 200 and pulled.headers["Docker-Content-Digest"] == digest

        # A pull-only token cannot start an upload: a client must ask for pull,push to push.
        upload = client.post("/v2/plugins/echo/blobs/uploads/", headers=bearer)
        assert upload.status_code == 401
        assert 'error="insufficient_scope"' in upload.headers["Www-Authenticate"]
        assert "scope=" in upload.headers["Www-Authenticate"]

        # Anonymous callers get a token that grants nothing, like a private registry.
        anonymous = httpx.get(server.realm, params=params).json()
        assert decode_jwt_unverified(anonymous["token"])[1]["access"] == []
        denied = client.get(
            "/v2/plugins/echo/manifests/v1",
            headers={"Authorization": f"Bearer {anonymous['token']}", "Accept": MANIFEST_ACCEPT},
        )
        assert denied.status_code == 401
        assert 'error="insufficient_scope"' in denied.headers["Www-Authenticate"]

    recorded = [(r.auth_present, r.user, r.status) for r in server.requests if r.scopes == [scope]]
    assert recorded[-3:] == [
        (True, token_registry.user, 401),
        (True, token_registry.user, 200),
        (False, None, 200),
    ]
    assert all(r.path == "/token" and r.service == token_registry.service for r in server.requests)
    # The password never lands in what the server keeps.
    assert token_registry.password not in repr(server.requests)


def test_token_auth_with_skopeo(token_registry: Registry, tmp_path: Path) -> None:
    server = token_registry.token_server
    assert server is not None
    exe = write_plugin_executable(tmp_path / "echo", "token skopeo payload")
    digest = push_image_with_umoci(token_registry, "plugins/echo:v1", exe)
    # skopeo asked for push access on the repository it pushed to.
    assert any("repository:plugins/echo:pull,push" in r.scopes for r in server.requests)
    assert all(r.auth_present for r in server.requests)

    layout = pull_with_skopeo(token_registry, f"plugins/echo@{digest}", tmp_path / "pulled")
    assert layout_files(layout) == {"plugin": exe.read_bytes()}

    before = len(server.requests)
    with pytest.raises(RuntimeError, match=r"authentication required|denied"):
        skopeo_inspect_raw(token_registry, "plugins/echo:v1", anonymous=True)
    assert [r.auth_present for r in server.requests[before:]] == [False] * (len(server.requests) - before)
    assert len(server.requests) > before


def test_token_auth_anonymous_pull_flag(make_registry: RegistryFactory, tmp_path: Path) -> None:
    public = make_registry("token", allow_anonymous_pull=True)
    digest = push_image_with_umoci(public, "plugins/open:v1", write_plugin_executable(tmp_path / "o", "open"))
    assert sha256_digest(skopeo_inspect_raw(public, "plugins/open:v1", anonymous=True)) == digest
    assert public.token_server is not None
    anonymous = [t for t in public.token_server.issued if t.subject == "anonymous"]
    assert anonymous and all(a["actions"] == ["pull"] for t in anonymous for a in t.access)


def test_tls_registry(tls_registry: Registry, tmp_path: Path) -> None:
    assert tls_registry.url.startswith("https://127.0.0.1:") and tls_registry.ca_path is not None
    assert tls_registry.ca_path.read_text().startswith("-----BEGIN CERTIFICATE-----")
    with httpx.Client(verify=tls_registry.ssl_context()) as client:
        assert client.get(f"{tls_registry.url}/v2/").status_code == 200
        assert client.get(f"https://localhost:{tls_registry.port}/v2/").status_code == 200
    # The system trust store does not know the test CA.
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{tls_registry.url}/v2/")
    # Plain http to the TLS port gets Go's "client sent an HTTP request to an HTTPS server".
    plain = httpx.get(f"http://{tls_registry.host}/v2/")
    assert plain.status_code == 400

    digest = push_image_with_umoci(
        tls_registry, "plugins/echo:v1", write_plugin_executable(tmp_path / "t", "tls")
    )
    assert sha256_digest(skopeo_inspect_raw(tls_registry, "plugins/echo:v1")) == digest


def test_multi_platform_index(registry: Registry, tmp_path: Path) -> None:
    executables = {
        "linux/amd64": write_plugin_executable(tmp_path / "amd64", "multi amd64"),
        "linux/arm64": write_plugin_executable(tmp_path / "arm64", "multi arm64"),
    }
    digest = push_multi_platform_index(registry, "plugins/multi:v1", executables)
    raw = skopeo_inspect_raw(registry, "plugins/multi:v1")
    assert sha256_digest(raw) == digest
    index = json.loads(raw)
    assert index["mediaType"] == OCI_INDEX
    platforms = [m["platform"] for m in index["manifests"]]
    assert platforms == [{"architecture": "amd64", "os": "linux"}, {"architecture": "arm64", "os": "linux"}]

    for entry, (platform, exe) in zip(index["manifests"], executables.items(), strict=True):
        assert entry["mediaType"] == OCI_MANIFEST
        child = skopeo_inspect_raw(registry, f"plugins/multi@{entry['digest']}")
        assert sha256_digest(child) == entry["digest"] and len(child) == entry["size"]
        layout = pull_with_skopeo(
            registry, f"plugins/multi@{entry['digest']}", tmp_path / platform.replace("/", "-")
        )
        assert layout_files(layout) == {"plugin": exe.read_bytes()}
    with registry.client() as client:
        answer = client.get("/v2/plugins/multi/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert answer.headers["Content-Type"] == OCI_INDEX


def test_stop_and_start_keep_port_and_content(registry: Registry, tmp_path: Path) -> None:
    digest = push_image_with_umoci(
        registry, "plugins/echo:v1", write_plugin_executable(tmp_path / "e", "warm")
    )
    first_pid, host, storage = registry.pid, registry.host, registry.storage_dir
    assert first_pid is not None

    registry.stop()
    assert registry.pid is None and not pid_alive(first_pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{registry.url}/v2/")

    registry.start()
    assert registry.pid not in (None, first_pid)
    assert (registry.host, registry.storage_dir) == (host, storage)
    assert sha256_digest(skopeo_inspect_raw(registry, "plugins/echo:v1")) == digest


def test_close_stops_registry_and_token_server(tmp_path: Path) -> None:
    with Registry(tmp_path / "reg", "token") as registry:
        pid = registry.pid
        assert pid is not None and pid_alive(pid)
        realm = registry.realm
        assert realm is not None
        assert httpx.get(realm).status_code == 200
    assert not pid_alive(pid)
    with pytest.raises(httpx.ConnectError):
        httpx.get(realm)


def test_umoci_insert_layers_are_truncated_tars(registry: Registry, tmp_path: Path) -> None:
    """umoci 0.4.7 `insert` omits the tar footer (umoci#436): strict readers reject the layer."""
    exe = write_plugin_executable(tmp_path / "i", "insert")
    digest = push_image_with_umoci(registry, "plugins/insert:v1", exe, layer="insert")
    manifest = json.loads(skopeo_inspect_raw(registry, f"plugins/insert@{digest}"))
    with registry.client() as client:
        blob = client.get(f"/v2/plugins/insert/blobs/{manifest['layers'][0]['digest']}").content
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        # The first member and its data are intact; only reading past it fails.
        member = tar.next()
        assert member is not None and member.name == "plugin"
        extracted = tar.extractfile(member)
        assert extracted is not None and extracted.read() == exe.read_bytes()
        with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
            tar.next()


def test_missing_registry_binary_fails_loudly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(pytest.fail.Exception, match="apt-get install"):
        Registry(tmp_path / "reg")


def test_registry_that_cannot_start_fails_with_its_output(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "reg")
    with socket.socket() as squatter:
        # Hold the port so docker-registry exits at once with "address already in use".
        squatter.bind(("127.0.0.1", registry.port))
        squatter.listen()
        with pytest.raises(pytest.fail.Exception, match=r"(?s)exited with 1.*address already in use"):
            registry.start()
    assert registry.pid is None
