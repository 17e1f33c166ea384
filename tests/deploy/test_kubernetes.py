"""deploy/kubernetes: the manifests checked offline, and their plugins ConfigMap run by a real server.

- every document validates against the Kubernetes JSON schemas (kubernetes-validate, strict);
- kustomization.yaml lists every manifest; Services, selectors, ports, Secrets, ConfigMaps,
  volumes and network policies point at things that exist;
- every variable the Solstice containers set is one `Settings` reads, and the values parse;
- the command policy the manifests configure (PLUGIN_COMMAND_ALLOWLIST, ...) accepts the commands
  the manifests and docs/kubernetes.md use and refuses others, through Solstice's own Policy;
- the plugins ConfigMap, laid out as the kubelet mounts it, runs under `solstice serve` as a
  file:// plugin and as the my-plugin fleet's grpc:// server, with the manifests' policy.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from pydantic import AliasChoices

from solstice.oci import credentials
from solstice.security.addresses import IPAddress
from solstice.security.policy import Policy, PolicyError
from solstice.security.resolve import ResolveError
from solstice.settings import Settings
from solstice.store.database import database_url
from tests.conftest import ROOT, pid_alive
from tests.server import Server

DEPLOY = ROOT / "deploy" / "kubernetes"
DOC = ROOT / "docs" / "kubernetes.md"
NAMESPACE = "solstice"
IMAGE = "ghcr.io/solstice/solstice"
# The oldest Kubernetes release the manifests are written for, and the newest schemas bundled.
OLDEST_KUBERNETES = "1.31.0"
PLUGIN_FILE = "file:///plugins/my-plugin"
PLUGIN_GRPC = "grpc://my-plugin.solstice.svc.cluster.local:50051"
# What cluster DNS answers for the my-plugin Service: a ClusterIP in the default service range.
CLUSTER_DNS = {"my-plugin.solstice.svc.cluster.local": ["10.96.14.2"]}
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")
CLUSTER_SCOPED = ("Namespace",)
# The kubelet's timestamped directories of a ConfigMap volume, before and after an update.
FIRST_STAMP = "..2026_01_15_10_30_00.123456789"
SECOND_STAMP = "..2026_01_15_11_00_00.987654321"
# Variables Solstice reads outside `Settings`, each checked below to be read where it is claimed.
EXTRA_VARIABLES = ("DOCKER_CONFIG",)


# -- loading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Doc:
    file: str
    body: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.body["kind"]

    @property
    def name(self) -> str:
        return self.body["metadata"]["name"]

    def __str__(self) -> str:
        return f"{self.file}:{self.kind}/{self.name}"


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())


def documents() -> list[Doc]:
    """Every object of every file kustomization.yaml lists, in order."""
    found = []
    for name in kustomization()["resources"]:
        for body in yaml.safe_load_all((DEPLOY / name).read_text()):
            if body:
                found.append(Doc(name, body))
    return found


DOCS = documents()


def one(kind: str, name: str) -> dict[str, Any]:
    matches = [d.body for d in DOCS if d.kind == kind and d.name == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def workloads() -> list[Doc]:
    return [d for d in DOCS if d.kind in WORKLOAD_KINDS]


def pod_labels(workload: Doc) -> dict[str, str]:
    return workload.body["spec"]["template"]["metadata"]["labels"]


def pod_spec(workload: Doc) -> dict[str, Any]:
    return workload.body["spec"]["template"]["spec"]


def containers(workload: Doc) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return [*spec.get("initContainers", []), *spec["containers"]]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def selected(selector: dict[str, str]) -> list[Doc]:
    """The workloads whose pods carry every label of `selector`."""
    return [w for w in workloads() if selects(selector, pod_labels(w))]


def solstice_containers(workload: Doc) -> list[dict[str, Any]]:
    """The containers running `solstice serve` or `solstice edge`."""
    return [
        c
        for c in containers(workload)
        if c["image"].split(":")[0] == IMAGE and c.get("args", [""])[0] in ("serve", "edge")
    ]


def solstice_container(workload: Doc) -> dict[str, Any]:
    [container] = solstice_containers(workload)
    return container


def gateways() -> list[Doc]:
    """Workloads of Solstice servers: the control plane and the edges."""
    return [w for w in workloads() if solstice_containers(w)]


def gateway(command: str) -> Doc:
    """The first workload running `solstice <command>`."""
    matches = [w for w in gateways() if solstice_container(w)["args"][0] == command]
    assert matches, f"no workload runs `solstice {command}`"
    return matches[0]


def env_entries(workload: Doc) -> dict[str, dict[str, Any]]:
    """The env entries of a workload's Solstice container, by name."""
    return {entry["name"]: entry for entry in solstice_container(workload)["env"]}


def plugins_mode(workload: Doc) -> int:
    """The defaultMode of the workload's plugins ConfigMap volume."""
    [volume] = [v for v in pod_spec(workload)["volumes"] if v.get("configMap", {}).get("name") == "plugins"]
    return volume["configMap"]["defaultMode"]


def secret_value(name: str, key: str) -> str:
    secret = one("Secret", name)
    if key in secret.get("stringData", {}):
        return secret["stringData"][key]
    return base64.b64decode(secret["data"][key]).decode()


def configmap_files(configmap: dict[str, Any]) -> dict[str, bytes]:
    files = {key: value.encode() for key, value in configmap.get("data", {}).items()}
    files.update({key: base64.b64decode(value) for key, value in configmap.get("binaryData", {}).items()})
    return files


def environment(workload: Doc, container: dict[str, Any]) -> dict[str, str]:
    """The container's variables as the kubelet would set them (pod name for metadata.name)."""
    values = {}
    for entry in container.get("env", []):
        source = entry.get("valueFrom")
        if source is None:
            values[entry["name"]] = entry["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            values[entry["name"]] = secret_value(ref["name"], ref["key"])
        elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
            values[entry["name"]] = f"{workload.name}-7d9f8c6b5-x2x9z"
        else:
            pytest.fail(f"{workload}: env {entry['name']} has a source this test does not model: {source}")
    return values


def mount_for(workload: Doc, container: dict[str, Any], path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The volume mount at exactly `path` and its volume."""
    mounts = [m for m in container.get("volumeMounts", []) if m["mountPath"].rstrip("/") == path.rstrip("/")]
    assert mounts, f"{workload}: nothing is mounted at {path}"
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    claims = {c["metadata"]["name"] for c in workload.body["spec"].get("volumeClaimTemplates", [])}
    name = mounts[0]["name"]
    assert name in volumes or name in claims, f"{workload}: mount {name} has no volume"
    return mounts[0], volumes.get(name, {"persistentVolumeClaim": {"claimName": name}})


def kubernetes_validate() -> ModuleType:
    try:
        import kubernetes_validate
    except ImportError:
        pytest.fail(
            "kubernetes-validate is missing; run `make install` (it is in the dev extra)", pytrace=False
        )
    return kubernetes_validate


# -- schemas --------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, "latest"])
def test_every_document_validates_against_the_kubernetes_schemas(version: str) -> None:
    kv = kubernetes_validate()
    wanted = kv.latest_version() if version == "latest" else version
    problems = []
    for doc in DOCS:
        try:
            kv.validate(doc.body, wanted, strict=True)
        except kv.ValidationError as exc:
            where = ".".join(str(part) for part in exc.path)
            problems.append(f"{doc}: {where}: {exc.message}")
        except kv.SchemaNotFoundError as exc:
            problems.append(f"{doc}: {exc.message}")
    assert not problems, "\n".join(problems)
    assert len(DOCS) >= 15


def test_strict_validation_refuses_what_kubernetes_would() -> None:
    """The check above can fail: a misspelled field, a wrong type and a missing field are caught."""
    kv = kubernetes_validate()
    deployment = one("Deployment", "control-plane")
    misspelled = copy.deepcopy(deployment)
    misspelled["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "3"
    missing = copy.deepcopy(deployment)
    del missing["spec"]["selector"]
    for broken in (misspelled, wrong_type, missing):
        with pytest.raises(kv.ValidationError):
            kv.validate(broken, OLDEST_KUBERNETES, strict=True)


# -- kustomization and names ------------------------------------------------------------------------


def test_the_kustomization_lists_every_manifest() -> None:
    config = kustomization()
    assert config["apiVersion"] == "kustomize.config.k8s.io/v1beta1" and config["kind"] == "Kustomization"
    assert config["namespace"] == NAMESPACE
    listed = config["resources"]
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    on_disk = {p.name for p in DEPLOY.glob("*.y*ml")} - {"kustomization.yaml"}
    assert set(listed) == on_disk, f"not listed: {on_disk - set(listed)}; missing: {set(listed) - on_disk}"
    for name in listed:
        assert any(d.file == name for d in DOCS), f"{name} holds no object"
    [image] = config["images"]
    assert image["name"] == IMAGE
    for workload in workloads():
        for container in containers(workload):
            if container["image"].split(":")[0] == IMAGE:
                assert container["image"] == f"{IMAGE}:{image['newTag']}", f"{workload}: {container['image']}"


def test_objects_live_in_the_namespace_and_names_are_unique() -> None:
    [namespace] = [d for d in DOCS if d.kind == "Namespace"]
    assert namespace.name == NAMESPACE
    seen = set()
    for doc in DOCS:
        if doc.kind not in CLUSTER_SCOPED:
            assert doc.body["metadata"].get("namespace") == NAMESPACE, f"{doc} is not in {NAMESPACE}"
        assert (doc.kind, doc.name) not in seen, f"{doc} is defined twice"
        seen.add((doc.kind, doc.name))


# -- cross-references -------------------------------------------------------------------------------


def test_workloads_select_their_own_pods_and_only_those() -> None:
    for workload in workloads():
        selector = workload.body["spec"]["selector"]["matchLabels"]
        assert selected(selector) == [workload], f"{workload}: its selector matches {selected(selector)}"
    for budget in (d for d in DOCS if d.kind == "PodDisruptionBudget"):
        matched = selected(budget.body["spec"]["selector"]["matchLabels"])
        assert len(matched) == 1, f"{budget} matches {matched}"


def test_services_select_pods_that_serve_their_ports() -> None:
    services = [d for d in DOCS if d.kind == "Service"]
    assert services
    for service in services:
        matched = selected(service.body["spec"].get("selector", {}))
        assert matched, f"{service} selects no pods"
        for port in service.body["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            for workload in matched:
                ports = [p for c in containers(workload) for p in c.get("ports", [])]
                if isinstance(target, str):
                    found = [p for p in ports if p.get("name") == target]
                else:
                    found = [p for p in ports if p["containerPort"] == target]
                assert found, f"{service} port {port['port']} -> {target}: {workload} has no such port"
    for stateful in (w for w in workloads() if w.kind == "StatefulSet"):
        one("Service", stateful.body["spec"]["serviceName"])


def test_referenced_secrets_configmaps_and_volumes_exist() -> None:
    for workload in workloads():
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in workload.body["spec"].get("volumeClaimTemplates", [])}
        mounted = set()
        for container in containers(workload):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    secret = one("Secret", ref["secretKeyRef"]["name"])
                    keys = {*secret.get("stringData", {}), *secret.get("data", {})}
                    assert ref["secretKeyRef"]["key"] in keys, f"{workload}: {entry['name']} -> missing key"
                if "configMapKeyRef" in ref:
                    files = configmap_files(one("ConfigMap", ref["configMapKeyRef"]["name"]))
                    assert ref["configMapKeyRef"]["key"] in files, f"{workload}: {entry['name']}"
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    one("Secret", source["secretRef"]["name"])
                if "configMapRef" in source:
                    one("ConfigMap", source["configMapRef"]["name"])
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in claims, f"{workload}: {mount['name']}"
                mounted.add(mount["name"])
        assert set(volumes) <= mounted, f"{workload}: volumes never mounted: {set(volumes) - mounted}"
        for volume in volumes.values():
            if "secret" in volume:
                secret = one("Secret", volume["secret"]["secretName"])
                keys = {*secret.get("stringData", {}), *secret.get("data", {})}
                for item in volume["secret"].get("items", []):
                    assert item["key"] in keys, f"{workload}: secret item {item['key']}"
            if "configMap" in volume:
                files = configmap_files(one("ConfigMap", volume["configMap"]["name"]))
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in files, f"{workload}: configMap item {item['key']}"


def test_only_the_gateways_may_reach_the_plugin_fleet() -> None:
    fleet = selected(one("Service", "my-plugin")["spec"]["selector"])
    policies = [d for d in DOCS if d.kind == "NetworkPolicy"]
    for policy in policies:
        targets = selected(policy.body["spec"]["podSelector"]["matchLabels"])
        assert targets, f"{policy} selects no pods"
        for rule in policy.body["spec"]["ingress"]:
            for peer in rule["from"]:
                assert set(peer) == {"podSelector"}, f"{policy}: only same-namespace pod peers are expected"
                assert selected(peer["podSelector"]["matchLabels"]), f"{policy}: a peer selects no pods"
            for port in rule["ports"]:
                served = {
                    p["containerPort"] for w in targets for c in containers(w) for p in c.get("ports", [])
                }
                assert port["port"] in served, f"{policy}: port {port['port']} is not served"
    guarding = [p for p in policies if selected(p.body["spec"]["podSelector"]["matchLabels"]) == fleet]
    assert len(guarding) == 1, "one NetworkPolicy must select exactly the my-plugin pods"
    spec = guarding[0].body["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    peers = [peer["podSelector"]["matchLabels"] for rule in spec["ingress"] for peer in rule["from"]]
    allowed = {w.name for peer in peers for w in selected(peer)}
    assert allowed == {w.name for w in gateways()}, f"the fleet accepts {allowed}"
    assert {"control-plane"} < allowed


# -- Solstice's own settings and policy ------------------------------------------------------------


def known_variables() -> set[str]:
    """Every variable name `Settings` reads: SOLSTICE_<FIELD>, or the field's aliases."""
    prefix = Settings.model_config.get("env_prefix", "")
    names = set()
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
        elif isinstance(alias, str):
            names.add(alias)
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def test_the_known_variables_are_what_solstice_reads() -> None:
    known = known_variables()
    assert {"SOLSTICE_DATABASE_URL", "PLUGIN_COMMAND_ALLOWLIST", "AI_STUDIO_OCI_CACHE_DIR"} <= known
    assert {"SOLSTICE_PLUGIN_COMMAND_ALLOWLIST", "SOLSTICE_OCI_CACHE_DIR", "OCI_PLUGINS_CACHE_DIR"} <= known
    assert "SOLSTICE_RECONCILE_INTERVALL" not in known and "SOLSTICE_ALLOW_INTERNAL" not in known
    # DOCKER_CONFIG is read by the OCI credentials, from the environment the settings captured.
    assert credentials.docker_config_path({"DOCKER_CONFIG": "/etc/x"}) == Path("/etc/x/config.json")


@pytest.mark.parametrize("workload", gateways(), ids=str)
def test_solstice_containers_set_only_variables_solstice_reads(
    workload: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    container = solstice_container(workload)
    names = [entry["name"] for entry in container.get("env", [])]
    assert len(names) == len(set(names)), f"{workload}: a variable is set twice"
    unknown = set(names) - known_variables() - set(EXTRA_VARIABLES)
    assert not unknown, f"{workload} sets variables Solstice does not read: {sorted(unknown)}"
    # The values parse: Settings is built from exactly this environment.
    for name in (*known_variables(), *EXTRA_VARIABLES):
        monkeypatch.delenv(name, raising=False)
    env = environment(workload, container)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.host == "0.0.0.0"
    http = next(p for p in container["ports"] if p["name"] == "http")
    assert settings.port == http["containerPort"]
    # Every directory Solstice writes to is a writable volume (the root filesystem is read-only).
    writable = [settings.data_dir, Path("/tmp")]
    writable.append(
        settings.oci_cache_dir if container["args"][0] == "serve" else settings.edge_oci_cache_dir
    )
    for path in writable:
        assert path is not None
        mount, volume = mount_for(workload, container, str(path))
        assert not mount.get("readOnly") and ("emptyDir" in volume or "persistentVolumeClaim" in volume)
    # DOCKER_CONFIG is the directory where the registry Secret's .dockerconfigjson is config.json.
    mount, volume = mount_for(workload, container, env["DOCKER_CONFIG"])
    assert volume["secret"]["secretName"] == "oci-registry-creds" and mount.get("readOnly")
    assert {"key": ".dockerconfigjson", "path": "config.json"} in volume["secret"]["items"]


def test_the_edges_sync_from_the_control_plane_service_with_the_shared_token() -> None:
    edge = gateway("edge")
    env = env_entries(edge)
    url = urlsplit(env["SOLSTICE_CONTROL_URL"]["value"])
    assert url.hostname is not None
    service = one("Service", url.hostname.split(".")[0])
    assert url.hostname in (service["metadata"]["name"], f"{service['metadata']['name']}.{NAMESPACE}.svc")
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    assert [w.name for w in selected(service["spec"]["selector"])] == [gateway("serve").name]
    assert env["SOLSTICE_EDGE_NAMESPACE"]["value"]
    control = env_entries(gateway("serve"))
    assert env["SOLSTICE_EDGE_TOKEN"]["valueFrom"] == control["SOLSTICE_EDGE_TOKEN"]["valueFrom"]


class ClusterDNS:
    """Answers like cluster DNS for the my-plugin Service; every other name does not resolve."""

    async def resolve(self, host: str) -> list[IPAddress]:
        if host.lower().rstrip(".") not in CLUSTER_DNS:
            raise ResolveError(f"{host} does not resolve ([Errno -2] Name or service not known)")
        return [ipaddress.ip_address(a) for a in CLUSTER_DNS[host.lower().rstrip(".")]]


def policy_of(workload: Doc, monkeypatch: pytest.MonkeyPatch) -> Policy:
    container = solstice_container(workload)
    for name in known_variables():
        monkeypatch.delenv(name, raising=False)
    for name, value in environment(workload, container).items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    cache = settings.oci_cache_dir if container["args"][0] == "serve" else settings.edge_oci_cache_dir
    return Policy.from_settings(settings, extra_dirs=[cache] if cache else [], resolver=ClusterDNS())


def documented_commands() -> list[str]:
    """The plugin commands docs/kubernetes.md registers ("command": "...")."""
    return re.findall(r'"command":\s*"([^"]+)"', DOC.read_text())


def test_the_documented_commands_are_the_manifests() -> None:
    service = one("Service", "my-plugin")
    [port] = service["spec"]["ports"]
    assert f"grpc://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port['port']}" == PLUGIN_GRPC
    assert "my-plugin" in configmap_files(one("ConfigMap", "plugins"))
    commands = documented_commands()
    assert PLUGIN_FILE in commands and PLUGIN_GRPC in commands, commands


@pytest.mark.parametrize("workload", gateways(), ids=str)
async def test_the_policy_accepts_the_deployed_plugins_and_refuses_others(
    workload: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = policy_of(workload, monkeypatch)
    assert policy.allowlist.configured and not policy.allow_internal
    for command in {PLUGIN_FILE, PLUGIN_GRPC, *documented_commands()}:
        verdict = await policy.check(command, "api")
        assert verdict.warnings == (), f"{command}: {verdict.warnings}"
    # At load the Service name is resolved again; its ClusterIP is internal, yet listed.
    verdict = await policy.check(PLUGIN_GRPC, "load")
    assert verdict.dial == "ipv4:10.96.14.2:50051" and verdict.warnings == ()
    assert verdict.authority == "my-plugin.solstice.svc.cluster.local:50051"
    refused = [
        "grpc://my-plugin.solstice.svc.cluster.local:50052",
        "grpc://other.solstice.svc.cluster.local:50051",
        "grpc://10.96.14.2:50051",
        "grpc://169.254.169.254:80",
        "file:///tmp/my-plugin",
        "file:///usr/local/bin/my-plugin",
        "oci://registry.evil.example/plugins/my-plugin:v1",
    ]
    for command in refused:
        with pytest.raises(PolicyError):
            await policy.check(command, "api")


# -- security hardening ----------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=str)
def test_pods_run_hardened(workload: Doc) -> None:
    spec = pod_spec(workload)
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] > 0
    assert pod["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["automountServiceAccountToken"] is False
    assert not any(spec.get(key) for key in ("hostNetwork", "hostPID", "hostIPC"))
    assert not any("hostPath" in volume for volume in spec.get("volumes", []))
    for container in containers(workload):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, f"{workload}: {container['name']}"
        assert context["readOnlyRootFilesystem"] is True, f"{workload}: {container['name']}"
        assert context["capabilities"] == {"drop": ["ALL"]}, f"{workload}: {container['name']}"
        assert not context.get("privileged")
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= set(container["resources"][kind]), f"{workload}: {kind}"
        assert "readinessProbe" in container and "livenessProbe" in container
        if container["image"].split(":")[0] == IMAGE:
            assert pod["runAsUser"] == 10001, "the image's user"


@pytest.mark.parametrize("workload", gateways(), ids=str)
def test_gateways_probe_healthz_and_readyz(workload: Doc) -> None:
    container = solstice_container(workload)
    names = {p["name"] for p in container["ports"]}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["startupProbe"]["httpGet"]["port"] in names and "http" in names


def test_the_control_plane_runs_several_replicas_on_the_shared_database() -> None:
    control = gateway("serve")
    assert control.body["spec"]["replicas"] >= 2
    env = env_entries(control)
    assert env["SOLSTICE_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "solstice",
        "key": "database-url",
    }
    assert float(env["SOLSTICE_RECONCILE_INTERVAL"]["value"]) > 0
    assert one("Deployment", "my-plugin")["spec"]["replicas"] >= 2


# -- secrets ---------------------------------------------------------------------------------------


def test_secrets_are_marked_placeholders_that_agree_with_each_other() -> None:
    for doc in DOCS:
        if doc.kind == "Secret":
            for key, value in doc.body.get("stringData", {}).items():
                assert "REPLACE" in value, f"{doc} {key} is not a marked placeholder"
    url = urlsplit(secret_value("solstice", "database-url"))
    postgres = one("StatefulSet", "postgres")
    env = {e["name"]: e for e in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert url.scheme == "postgresql" and url.username == env["POSTGRES_USER"]["value"]
    ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
    assert url.password == secret_value(ref["name"], ref["key"])
    assert url.path == f"/{env['POSTGRES_DB']['value']}"
    service = one("Service", url.hostname or "")
    assert url.port == service["spec"]["ports"][0]["port"]
    # Solstice's own URL handling picks its async driver for it.
    assert database_url(Settings(database_url=url.geturl())).startswith("postgresql+asyncpg://solstice:")


def test_the_registry_secret_is_a_docker_config_solstice_reads(tmp_path: Path) -> None:
    secret = one("Secret", "oci-registry-creds")
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = base64.b64decode(secret["data"][".dockerconfigjson"])
    assert "auths" in json.loads(config)
    (tmp_path / "config.json").write_bytes(config)
    found = credentials.from_docker_config("registry.example.com", {"DOCKER_CONFIG": str(tmp_path)})
    assert found is not None and found.kind == "basic" and "REPLACE" in found.username + found.secret


# -- the plugins ConfigMap ---------------------------------------------------------------------------


@pytest.mark.parametrize("workload", workloads(), ids=str)
def test_the_plugins_configmap_is_mounted_executable_at_plugins(workload: Doc) -> None:
    volumes = [
        v for v in pod_spec(workload).get("volumes", []) if v.get("configMap", {}).get("name") == "plugins"
    ]
    if workload.name == "postgres":
        assert not volumes
        return
    [volume] = volumes
    assert volume["configMap"]["defaultMode"] == 0o755 == 493
    assert "items" not in volume["configMap"], "every key of the ConfigMap is a plugin"
    mounts = [
        m for c in containers(workload) for m in c.get("volumeMounts", []) if m["name"] == volume["name"]
    ]
    assert mounts and all(m["mountPath"] == "/plugins" and m["readOnly"] is True for m in mounts)
    assert all("subPath" not in m for m in mounts), "a subPath mount never sees ConfigMap updates"


def test_the_configmap_holds_the_plugin_source() -> None:
    files = configmap_files(one("ConfigMap", "plugins"))
    source = DEPLOY / "plugins" / "my-plugin"
    assert files["my-plugin"] == source.read_bytes(), "run base64 -w0 deploy/kubernetes/plugins/my-plugin"
    assert source.stat().st_mode & 0o111, "chmod +x deploy/kubernetes/plugins/my-plugin"
    assert sum(len(v) for v in files.values()) < 1 << 20, "a ConfigMap holds at most 1 MiB"


def kubelet_configmap_volume(mount: Path, configmap: dict[str, Any], mode: int, stamp: str) -> None:
    """Lay out a ConfigMap volume as the kubelet's atomic writer does (or update it in place).

    The files go into a fresh timestamped directory, `..data` is switched to it by a rename,
    and each key is a symlink `key -> ..data/key`.
    """
    mount.mkdir(parents=True, exist_ok=True)
    stamped = mount / stamp
    stamped.mkdir()
    files = configmap_files(configmap)
    for key, content in files.items():
        (stamped / key).write_bytes(content)
        (stamped / key).chmod(mode)
    (mount / "..data_tmp").symlink_to(stamp)
    os.replace(mount / "..data_tmp", mount / "..data")
    for key in files:
        if not (mount / key).is_symlink():
            (mount / key).symlink_to(f"..data/{key}")


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


@pytest.fixture
def fleet_server(tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str], int]]:
    """The plugins ConfigMap mounted as the kubelet does, and the my-plugin container's command."""
    mount = tmp_path / "plugins"
    fleet_workload = next(w for w in workloads() if w.name == "my-plugin")
    kubelet_configmap_volume(mount, one("ConfigMap", "plugins"), plugins_mode(fleet_workload), FIRST_STAMP)
    [container] = one("Deployment", "my-plugin")["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["/plugins/my-plugin"]
    assert container["args"] == ["--listen", f"0.0.0.0:{container['ports'][0]['containerPort']}"]
    # The container's command, with the mount where this test put it and a free loopback port.
    command = [str(mount / "my-plugin"), "--listen", "127.0.0.1:0"]
    fleet = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert fleet.stdout is not None
        line = fleet.stdout.readline()
        match = re.search(r"grpc://127\.0\.0\.1:(\d+)", line)
        assert match, f"the fleet plugin did not report its address: {line!r}"
        yield mount, fleet, int(match.group(1))
    finally:
        fleet.terminate()
        try:
            fleet.wait(10)
        except subprocess.TimeoutExpired:
            fleet.kill()
            fleet.wait()


def test_the_configmap_plugin_runs_under_the_manifests_policy(
    tmp_path: Path, fleet_server: tuple[Path, subprocess.Popen[str], int]
) -> None:
    mount, _fleet, port = fleet_server
    control = gateway("serve")
    container = solstice_container(control)
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    # The control plane's policy, with /plugins and the Service moved to where this test has them.
    moved = {"/plugins/*": f"{mount}/*", PLUGIN_GRPC: f"grpc://127.0.0.1:{port}"}
    entries = [item.strip() for item in env["PLUGIN_COMMAND_ALLOWLIST"].split(",")]
    assert set(moved) <= set(entries)
    policy_env = {
        "PLUGIN_COMMAND_ALLOWLIST": ",".join(moved.get(entry, entry) for entry in entries),
        "ALLOW_INTERNAL_NETWORK_ACCESS": env["ALLOW_INTERNAL_NETWORK_ACCESS"],
        "PLUGIN_BLOCK_INTERNAL_URLS": env["PLUGIN_BLOCK_INTERNAL_URLS"],
        "AI_STUDIO_OCI_REQUIRE_SIGNATURE": env["AI_STUDIO_OCI_REQUIRE_SIGNATURE"],
        "AI_STUDIO_OCI_CACHE_DIR": str(tmp_path / "oci-cache"),
    }
    (tmp_path / "data").mkdir()
    server = Server(tmp_path / "data", env=policy_env).wait_ready()
    try:
        with server.client() as client:
            local = {"name": "my-plugin", "command": f"file://{mount}/my-plugin", "hook_type": "pre_auth"}
            created = client.post("/api/v1/plugins", json=local)
            assert created.status_code == 201 and created.json()["status"] == "healthy", created.text
            remote = {
                "name": "my-plugin-fleet",
                "command": f"grpc://127.0.0.1:{port}",
                "hook_type": "pre_auth",
            }
            created = client.post("/api/v1/plugins", json=remote)
            assert created.status_code == 201 and created.json()["status"] == "healthy", created.text
            outside = {"name": "outside", "command": f"file://{tmp_path}/my-plugin", "hook_type": "pre_auth"}
            refused = client.post("/api/v1/plugins", json=outside)
            assert refused.status_code == 400 and "PLUGIN_COMMAND_ALLOWLIST" in refused.text

            health = client.get("/api/v1/plugins/my-plugin/health").json()
            assert health["status"] == "healthy" and pid_alive(health["pid"]), health
            # The file that runs is the one behind the symlinks.
            assert f"/{FIRST_STAMP}/my-plugin" in cmdline(health["pid"])

            # Both deployments of the plugin serve the gateway, each with its own configuration.
            for slug, chain in (
                ("via-file", [{"plugin": "my-plugin"}]),
                ("via-grpc", [{"plugin": "my-plugin-fleet", "config_override": {"deny_agents": ["curl"]}}]),
            ):
                assert client.post("/api/v1/llms", json={"name": slug, "vendor": "mock"}).status_code == 201
                assert client.put(f"/api/v1/llms/{slug}/plugins", json={"plugins": chain}).status_code == 200
            app = client.post("/api/v1/apps", json={"name": "k8s", "llms": ["via-file", "via-grpc"]}).json()
        body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}

        def call(slug: str, agent: str) -> httpx.Response:
            headers = {"Authorization": f"Bearer {app['key']}", "User-Agent": agent}
            return httpx.post(
                f"{server.url}/llm/{slug}/v1/chat/completions", json=body, headers=headers, timeout=30
            )

        assert call("via-file", "Mozilla/5.0").status_code == 200
        blocked = call("via-file", "crawler-bot/1.0")
        assert blocked.status_code == 403 and "this user agent is not allowed" in blocked.text
        assert call("via-grpc", "crawler-bot/1.0").status_code == 200
        assert call("via-grpc", "curl/8.5").status_code == 403

        # The kubelet updates the ConfigMap: a new timestamped directory, ..data switched to it.
        # A reload starts the new file; the running instance is not touched before that.
        kubelet_configmap_volume(mount, one("ConfigMap", "plugins"), plugins_mode(control), SECOND_STAMP)
        with server.client() as client:
            reloaded = client.post("/api/v1/plugins/my-plugin/reload")
            assert reloaded.status_code == 200 and reloaded.json()["status"] == "healthy", reloaded.text
            health = client.get("/api/v1/plugins/my-plugin/health").json()
        assert f"/{SECOND_STAMP}/my-plugin" in cmdline(health["pid"])
        assert call("via-file", "crawler-bot/1.0").status_code == 403
    finally:
        server.stop()
