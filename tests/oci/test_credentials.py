"""Registry credentials: OCI_PLUGINS_REGISTRY_<NAME>_<FIELD> exactly as the product page documents,
?auth= names, sanitized names for hosts with ports or dashes, and Docker's config.json fallback.

Every test passes its own environment mapping, so nothing depends on (or leaks into) os.environ.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from solstice.oci.credentials import (
    FIELDS,
    Credential,
    docker_config_path,
    env_names,
    from_docker_config,
    from_environment,
    resolve,
)
from solstice.oci.errors import RegistryAuthError

SECRET = "s3cr3t-Value-42"  # distinctive, so "not in message" checks cannot pass by accident
OTHER_SECRET = "0ther-S3cret-99"


def env(host_name: str, **fields: str) -> dict[str, str]:
    """`env("GHCR_IO", USERNAME="u")` → {"OCI_PLUGINS_REGISTRY_GHCR_IO_USERNAME": "u"}."""
    return {f"OCI_PLUGINS_REGISTRY_{host_name}_{field}": value for field, value in fields.items()}


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


# --- the documented examples, verbatim --------------------------------------------------------


def test_documented_entitlement_sends_basic_with_username_token() -> None:
    environ = {"OCI_PLUGINS_REGISTRY_DOCKER_TYK_IO_ENTITLEMENT": SECRET}
    credential = from_environment("docker.tyk.io", environ)
    assert credential is not None
    assert (credential.kind, credential.username, credential.secret) == ("entitlement", "token", SECRET)
    # Sent directly on every request, no challenge needed.
    assert credential.direct_header() == basic("token", SECRET)


def test_documented_entitlement_username_overrides_token() -> None:
    environ = env("DOCKER_TYK_IO", ENTITLEMENT=SECRET, ENTITLEMENTUSERNAME="custom-user")
    credential = from_environment("docker.tyk.io", environ)
    assert credential is not None
    assert credential.username == "custom-user"
    assert credential.direct_header() == basic("custom-user", SECRET)


def test_documented_username_with_passwordenv() -> None:
    environ = {
        "OCI_PLUGINS_REGISTRY_GHCR_IO_USERNAME": "github-user",
        "OCI_PLUGINS_REGISTRY_GHCR_IO_PASSWORDENV": "GITHUB_TOKEN",
        "GITHUB_TOKEN": SECRET,
    }
    credential = from_environment("ghcr.io", environ)
    assert credential is not None
    assert (credential.kind, credential.username, credential.secret) == ("basic", "github-user", SECRET)
    # Basic credentials answer a challenge; nothing is sent unasked.
    assert credential.direct_header() is None
    assert credential.basic_header() == basic("github-user", SECRET)


def test_documented_token() -> None:
    environ = {"OCI_PLUGINS_REGISTRY_REGISTRY_EXAMPLE_COM_TOKEN": SECRET}
    credential = from_environment("registry.example.com", environ)
    assert credential is not None
    assert (credential.kind, credential.secret) == ("token", SECRET)
    assert credential.direct_header() == f"Bearer {SECRET}"


def test_documented_tokenenv() -> None:
    environ = {
        "OCI_PLUGINS_REGISTRY_REGISTRY_EXAMPLE_COM_TOKENENV": "MY_REGISTRY_TOKEN",
        "MY_REGISTRY_TOKEN": SECRET,
    }
    credential = from_environment("registry.example.com", environ)
    assert credential is not None
    assert (credential.kind, credential.secret) == ("token", SECRET)


# --- every field, and where each secret can come from -----------------------------------------


def test_the_fields_are_the_documented_ones() -> None:
    assert set(FIELDS) == {
        "ENTITLEMENT",
        "ENTITLEMENTENV",
        "ENTITLEMENTUSERNAME",
        "USERNAME",
        "PASSWORD",
        "PASSWORDENV",
        "TOKEN",
        "TOKENENV",
        "HOST",
    }


@pytest.mark.parametrize(
    ("fields", "kind", "username"),
    [
        ({"ENTITLEMENT": SECRET}, "entitlement", "token"),
        ({"ENTITLEMENTENV": "VAR"}, "entitlement", "token"),
        ({"ENTITLEMENTENV": "VAR", "ENTITLEMENTUSERNAME": "me"}, "entitlement", "me"),
        ({"TOKEN": SECRET}, "token", ""),
        ({"TOKENENV": "VAR"}, "token", ""),
        ({"USERNAME": "me", "PASSWORD": SECRET}, "basic", "me"),
        ({"USERNAME": "me", "PASSWORDENV": "VAR"}, "basic", "me"),
    ],
)
def test_each_secret_field_and_its_env_form(fields: dict[str, str], kind: str, username: str) -> None:
    environ = {**env("R_IO", **fields), "VAR": SECRET}
    credential = from_environment("r.io", environ)
    assert credential == Credential(kind, username, SECRET, "OCI_PLUGINS_REGISTRY_R_IO_*")  # type: ignore[arg-type]


def test_a_direct_value_wins_over_its_env_form() -> None:
    environ = {**env("R_IO", TOKEN=SECRET, TOKENENV="VAR"), "VAR": OTHER_SECRET}
    credential = from_environment("r.io", environ)
    assert credential is not None and credential.secret == SECRET


def test_an_empty_direct_value_falls_back_to_its_env_form() -> None:
    environ = {**env("R_IO", TOKEN="", TOKENENV="VAR"), "VAR": SECRET}
    credential = from_environment("r.io", environ)
    assert credential is not None and credential.secret == SECRET


# --- precedence: entitlement, then token, then username and password ----------------------------


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({"ENTITLEMENT": "e", "TOKEN": "t", "USERNAME": "u", "PASSWORD": "p"}, "entitlement"),
        ({"ENTITLEMENTENV": "E", "TOKENENV": "T", "USERNAME": "u", "PASSWORDENV": "P"}, "entitlement"),
        ({"TOKEN": "t", "USERNAME": "u", "PASSWORD": "p"}, "token"),
        ({"TOKENENV": "T", "USERNAME": "u", "PASSWORD": "p"}, "token"),
        ({"USERNAME": "u", "PASSWORD": "p"}, "basic"),
        # An ENTITLEMENTUSERNAME alone does not make an entitlement.
        ({"ENTITLEMENTUSERNAME": "x", "TOKEN": "t"}, "token"),
    ],
)
def test_precedence(fields: dict[str, str], kind: str) -> None:
    environ = {**env("R_IO", **fields), "E": "e", "T": "t", "P": "p"}
    credential = from_environment("r.io", environ)
    assert credential is not None and credential.kind == kind


@pytest.mark.parametrize(
    "fields",
    [
        {"USERNAME": "me"},  # no password
        {"PASSWORD": SECRET},  # no username
        {"ENTITLEMENTUSERNAME": "me"},  # a username for an entitlement that is not there
        {"TOKEN": ""},  # set but empty
        # _PASSWORD_ENV is not a field (the page writes PASSWORDENV): ignored, so incomplete.
        {"PASSWORD_ENV": "VAR", "USERNAME": "me"},
    ],
)
def test_incomplete_settings_are_an_error_that_says_what_to_set(fields: dict[str, str]) -> None:
    environ = {**env("R_IO", **fields), "VAR": SECRET}
    with pytest.raises(RegistryAuthError) as caught:
        from_environment("r.io", environ)
    message = str(caught.value)
    assert "OCI_PLUGINS_REGISTRY_R_IO_* is incomplete" in message
    assert "_USERNAME with _PASSWORD or _PASSWORDENV" in message
    assert SECRET not in message


def test_no_variables_means_no_credential() -> None:
    assert from_environment("r.io", {"OCI_PLUGINS_REGISTRY_OTHER_IO_TOKEN": SECRET}) is None
    assert from_environment("r.io", {}) is None


def test_variables_of_another_registry_are_not_used() -> None:
    # GHCR_IO is not a prefix match for GHCR_IO_EXTRA and the other way round.
    environ = env("GHCR_IO_EXTRA", TOKEN=SECRET)
    assert from_environment("ghcr.io", environ) is None


# --- *ENV indirection: the named variable must exist; its name is said, no value ------------------


@pytest.mark.parametrize("field", ["ENTITLEMENTENV", "TOKENENV", "PASSWORDENV"])
@pytest.mark.parametrize("target", [None, ""])
def test_env_field_naming_a_missing_or_empty_variable_is_an_error(field: str, target: str | None) -> None:
    environ = env("R_IO", **{field: "MISSING_VAR", "USERNAME": "me", "PASSWORD": SECRET})
    if field == "PASSWORDENV":
        del environ["OCI_PLUGINS_REGISTRY_R_IO_PASSWORD"]  # else PASSWORD would be used directly
    if target is not None:
        environ["MISSING_VAR"] = target
    with pytest.raises(RegistryAuthError) as caught:
        from_environment("r.io", environ)
    message = str(caught.value)
    assert f"OCI_PLUGINS_REGISTRY_R_IO_{field}" in message
    assert "MISSING_VAR" in message  # which variable to set
    assert "not set or empty" in message
    assert SECRET not in message


@pytest.mark.parametrize("misplaced", [SECRET, "ghp_16C7e42F292c6912E7710c838347Ae178B4a", "abc-123-def"])
def test_a_secret_put_into_an_env_field_by_mistake_is_not_echoed(misplaced: str) -> None:
    # _PASSWORDENV=<the password itself> is an easy mistake; the error must not print it.
    environ = env("R_IO", USERNAME="me", PASSWORDENV=misplaced)
    with pytest.raises(RegistryAuthError) as caught:
        from_environment("r.io", environ)
    message = str(caught.value)
    assert misplaced not in message
    assert "OCI_PLUGINS_REGISTRY_R_IO_PASSWORDENV names a variable" in message


# --- registry names: dots as underscores; other symbols sanitized; ?auth=NAME ------------------


@pytest.mark.parametrize(
    ("host", "names"),
    [
        ("ghcr.io", ["GHCR_IO"]),
        ("docker.tyk.io", ["DOCKER_TYK_IO"]),
        ("registry.example.com", ["REGISTRY_EXAMPLE_COM"]),
        ("Registry.Example.COM", ["REGISTRY_EXAMPLE_COM"]),
        ("nexus", ["NEXUS"]),
        # Not expressible with dots alone: only the sanitized spelling is tried.
        ("localhost:5000", ["LOCALHOST_5000"]),
        ("my-registry.example.com", ["MY_REGISTRY_EXAMPLE_COM"]),
        ("127.0.0.1:5000", ["127_0_0_1_5000"]),
        ("[::1]:5000", ["___1__5000"]),
    ],
)
def test_env_names(host: str, names: list[str]) -> None:
    assert env_names(host) == names


@pytest.mark.parametrize(
    ("host", "name"),
    [("localhost:5000", "LOCALHOST_5000"), ("my-registry.example.com", "MY_REGISTRY_EXAMPLE_COM")],
)
def test_hosts_with_ports_or_dashes_use_the_sanitized_name(host: str, name: str) -> None:
    credential = from_environment(host, env(name, TOKEN=SECRET))
    assert credential is not None
    assert credential.source == f"OCI_PLUGINS_REGISTRY_{name}_*"


def test_auth_name_picks_its_own_variables() -> None:
    environ = {
        **env("PROD", USERNAME="deploy", PASSWORD=SECRET, HOST="localhost:5000"),
        **env("LOCALHOST_5000", TOKEN=OTHER_SECRET),
    }
    credential = from_environment("localhost:5000", environ, auth_name="PROD")
    assert credential is not None
    assert (credential.kind, credential.username, credential.secret) == ("basic", "deploy", SECRET)


def test_auth_name_is_case_insensitive() -> None:
    # ?auth=prod and ?auth=PROD both name OCI_PLUGINS_REGISTRY_PROD_*.
    credential = from_environment("r.io", env("PROD", TOKEN=SECRET, HOST="r.io"), auth_name="prod")
    assert credential is not None and credential.secret == SECRET


def test_a_host_list_names_every_registry_a_set_belongs_to() -> None:
    environ = env("PROD", TOKEN=SECRET, HOST="a.example, R.io:5000")
    for host in ("a.example", "r.io:5000"):
        assert from_environment(host, environ, auth_name="PROD") is not None
    with pytest.raises(RegistryAuthError) as caught:
        from_environment("r.io", environ, auth_name="PROD")
    message = str(caught.value)
    assert "OCI_PLUGINS_REGISTRY_PROD_HOST" in message and "registry r.io" in message
    assert SECRET not in message


def test_a_set_named_after_its_host_needs_no_host_list() -> None:
    assert from_environment("r.io", env("R_IO", TOKEN=SECRET), auth_name="r_io") is not None


def test_auth_name_does_not_fall_back_to_the_host_names() -> None:
    # An explicit name that matches nothing is a mistake, not a reason to use other credentials.
    environ = env("R_IO", TOKEN=SECRET)
    with pytest.raises(RegistryAuthError) as caught:
        from_environment("r.io", environ, auth_name="TYPO")
    message = str(caught.value)
    assert "?auth=TYPO names no credentials" in message
    assert "OCI_PLUGINS_REGISTRY_TYPO_USERNAME" in message
    assert SECRET not in message


def test_auth_name_that_matches_nothing_is_an_error_even_with_a_docker_config(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io": {"auth": b64("me:" + SECRET)}}})
    with pytest.raises(RegistryAuthError):
        resolve("r.io", {"DOCKER_CONFIG": str(tmp_path)}, auth_name="TYPO")


# --- Docker's config.json ----------------------------------------------------------------------


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def write_config(directory: Path, data: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "config.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_docker_config_path_prefers_docker_config() -> None:
    assert docker_config_path({"DOCKER_CONFIG": "/cfg", "HOME": "/home/u"}) == Path("/cfg/config.json")
    assert docker_config_path({"HOME": "/home/u"}) == Path("/home/u/.docker/config.json")
    assert docker_config_path({}) is None


def test_docker_config_auth_form(tmp_path: Path) -> None:
    # What the product page's `echo '{"auths":…}'` writes.
    path = write_config(tmp_path, {"auths": {"docker.tyk.io": {"auth": b64("token:" + SECRET)}}})
    credential = from_docker_config("docker.tyk.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert credential == Credential("basic", "token", SECRET, str(path))


def test_docker_config_password_may_contain_colons(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io": {"auth": b64("me:pa:ss")}}})
    credential = from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert credential is not None and (credential.username, credential.secret) == ("me", "pa:ss")


def test_docker_config_username_password_form(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io": {"username": "me", "password": SECRET}}})
    credential = from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert credential is not None and (credential.username, credential.secret) == ("me", SECRET)


@pytest.mark.parametrize("key", ["https://r.io/v1/", "https://r.io", "http://r.io/", "r.io/", "r.io"])
def test_docker_config_keys_name_the_host(tmp_path: Path, key: str) -> None:
    write_config(tmp_path, {"auths": {key: {"auth": b64("me:" + SECRET)}}})
    credential = from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert credential is not None and credential.secret == SECRET


def test_docker_config_keys_with_ports_match_exactly(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io:5000": {"auth": b64("me:" + SECRET)}}})
    environ = {"DOCKER_CONFIG": str(tmp_path)}
    assert from_docker_config("r.io:5000", environ) is not None
    assert from_docker_config("r.io", environ) is None


def test_docker_config_from_home(tmp_path: Path) -> None:
    write_config(tmp_path / ".docker", {"auths": {"r.io": {"auth": b64("me:" + SECRET)}}})
    credential = from_docker_config("r.io", {"HOME": str(tmp_path)})
    assert credential is not None and credential.secret == SECRET


@pytest.mark.parametrize(
    "data",
    [
        {},  # no auths at all
        {"auths": {}},
        {"auths": {"other.io": {"auth": b64("me:" + SECRET)}}},  # another registry
        {"auths": {"r.io": {}}},  # credsStore-style empty entry
        {"auths": {"r.io": {"auth": b64("only-a-user")}}},  # no password
        {"auths": {"r.io": {"username": "me"}}},
        {"auths": {"r.io": "not an object"}},
        {"auths": None},
    ],
)
def test_docker_config_without_usable_entry_is_anonymous(tmp_path: Path, data: object) -> None:
    write_config(tmp_path, data)
    assert from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)}) is None


def test_missing_docker_config_is_anonymous(tmp_path: Path) -> None:
    assert from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path / "absent")}) is None
    assert from_docker_config("r.io", {}) is None


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        '["a list"]',
        '{"auths": ["a list"]}',
        "\xff\xfe",  # not even UTF-8 once written as Latin-1 below
    ],
)
def test_invalid_docker_config_is_an_error_naming_the_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "config.json"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(RegistryAuthError) as caught:
        from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert str(path) in str(caught.value)
    assert "fix or remove it" in str(caught.value)


@pytest.mark.parametrize(
    "auth",
    [
        "***not base64***",
        base64.b64encode(b"\xff\xfe:pw").decode(),  # base64 of bytes that are not UTF-8
        12345,  # not even a string
    ],
)
def test_undecodable_auth_entry_is_an_error_without_its_value(tmp_path: Path, auth: object) -> None:
    path = write_config(tmp_path, {"auths": {"r.io": {"auth": auth}}})
    with pytest.raises(RegistryAuthError) as caught:
        from_docker_config("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    message = str(caught.value)
    assert "'r.io'" in message and str(path) in message
    assert str(auth) not in message


def test_environment_wins_over_docker_config(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io": {"auth": b64("docker:" + OTHER_SECRET)}}})
    environ = {**env("R_IO", TOKEN=SECRET), "DOCKER_CONFIG": str(tmp_path)}
    credential = resolve("r.io", environ)
    assert credential is not None and (credential.kind, credential.secret) == ("token", SECRET)


def test_docker_config_is_the_fallback(tmp_path: Path) -> None:
    write_config(tmp_path, {"auths": {"r.io": {"auth": b64("docker:" + SECRET)}}})
    credential = resolve("r.io", {"DOCKER_CONFIG": str(tmp_path)})
    assert credential is not None and (credential.username, credential.secret) == ("docker", SECRET)


def test_nothing_configured_is_anonymous(tmp_path: Path) -> None:
    assert resolve("r.io", {"HOME": str(tmp_path)}) is None


# --- secrets stay out of repr, str and messages ----------------------------------------------


@pytest.mark.parametrize("kind", ["entitlement", "token", "basic"])
def test_secret_is_not_in_repr_or_str(kind: str) -> None:
    credential = Credential(kind, "me", SECRET, "somewhere")  # type: ignore[arg-type]
    assert SECRET not in repr(credential)
    assert SECRET not in str(credential)
    assert SECRET not in f"{credential}"
    assert "me" in repr(credential)  # the rest is still there to debug with


def test_secret_is_not_in_the_repr_of_a_resolved_credential(tmp_path: Path) -> None:
    for credential in (
        from_environment("r.io", {**env("R_IO", USERNAME="me", PASSWORDENV="VAR"), "VAR": SECRET}),
        from_docker_config(
            "r.io",
            {
                "DOCKER_CONFIG": str(
                    write_config(tmp_path, {"auths": {"r.io": {"auth": b64("me:" + SECRET)}}}).parent
                )
            },
        ),
    ):
        assert credential is not None
        assert SECRET not in repr(credential)
