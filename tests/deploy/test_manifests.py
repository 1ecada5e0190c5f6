"""The Kubernetes manifests under deploy/, rendered offline (tests/deploy/kustomize.py) and
validated against the Kubernetes schemas of the oldest and
newest versions the deployment supports (kubernetes-validate, strict: no unknown fields). CloudNativePG's
`Cluster` is a custom resource with no schema there: it is checked by its required fields instead, and it is
the only kind let through (CUSTOM_RESOURCES). Then what the relay needs of them: settings that exist,
the replica id and path from the pod name, probes, the drain's grace, a route and a Service per replica,
the Secrets the pods read, coturn's secret kept out of its command line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from relay.config import RelaySettings
from tests.deploy.kustomize import render

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUSTOMIZATIONS = ["base", "overlays/example", "overlays/cloudnative-pg"]
VERSIONS = ["1.29.0", "1.33.0"]
# Custom resources (no schema in kubernetes-validate): checked by check_custom, never silently skipped.
CUSTOM_RESOURCES = {("postgresql.cnpg.io/v1", "Cluster")}


def check_custom(doc: dict[str, Any]) -> None:
    """CloudNativePG's Cluster: what its CRD requires (spec.instances ≥ 1, storage size) and what the relay
    overlay relies on (an initdb database and owner `app`)."""
    assert (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES
    spec = doc["spec"]
    assert set(doc) == {"apiVersion", "kind", "metadata", "spec"} and doc["metadata"]["name"]
    assert isinstance(spec["instances"], int) and spec["instances"] >= 1
    assert re.fullmatch(r"\d+(Mi|Gi|Ti)", spec["storage"]["size"])
    assert spec["bootstrap"]["initdb"] == {"database": "app", "owner": "app"}
    assert set(spec) <= {"instances", "bootstrap", "storage", "resources", "imageName", "postgresql"}


def validate(docs: list[dict[str, Any]]) -> None:
    assert docs
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CUSTOM_RESOURCES:
            check_custom(doc)
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)


@pytest.fixture(scope="module", params=KUSTOMIZATIONS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[dict[str, Any]]]:
    return request.param, render(DEPLOY / request.param)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def test_every_document_is_valid_against_the_kubernetes_schemas(rendered: tuple[str, Any]) -> None:
    validate(rendered[1])


def test_relay_settings_exist_and_come_from_the_pod(rendered: tuple[str, Any]) -> None:
    docs = rendered[1]
    sts = one(docs, "StatefulSet", "relay")
    pod = sts["spec"]["template"]["spec"]
    (relay,) = pod["containers"]
    env = {e["name"]: e for e in relay["env"]}
    configs = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    (ref,) = relay["envFrom"]
    config = configs[ref["configMapRef"]["name"]]["data"]
    fields = set(RelaySettings.model_fields)
    for name in [*env, *config]:
        if name.startswith("CCTV_"):
            assert name.removeprefix("CCTV_").lower() in fields, f"{name}: no such relay setting"
        else:
            assert name in ("POD_NAME", "DB_PASSWORD"), name
    # Every value of the ConfigMap is one the relay accepts.
    RelaySettings(**{k.removeprefix("CCTV_").lower(): yaml.safe_load(v) for k, v in config.items()})
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["CCTV_REPLICA_ID"]["value"] == "$(POD_NAME)"
    assert env["CCTV_ADVERTISE_PATH"]["value"] == "/r/$(POD_NAME)"
    names = list(env)
    url = env["CCTV_DATABASE_URL"]
    if "value" in url:  # composed from variables defined before it (CloudNativePG)
        for var in re.findall(r"\$\((\w+)\)", url["value"]):
            assert names.index(var) < names.index("CCTV_DATABASE_URL")
        assert url["value"].startswith("postgresql+psycopg://")
    # Drain, probes, resources.
    assert pod["terminationGracePeriodSeconds"] >= 35
    assert relay["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert relay["livenessProbe"]["httpGet"]["path"] == "/healthz"
    cameras = int(config["CCTV_MAX_CAMERAS"])
    cpu = relay["resources"]["requests"]["cpu"]
    cores = int(cpu[:-1]) / 1000 if cpu.endswith("m") else float(cpu)
    assert cores >= 0.5 * cameras, "about half a core per live 720p camera"


def test_secrets_the_pods_read_are_made_with_their_keys(rendered: tuple[str, Any]) -> None:
    name, docs = rendered
    wanted: set[tuple[str, str]] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "secretKeyRef" in node:
                wanted.add((node["secretKeyRef"]["name"], node["secretKeyRef"]["key"]))
            if "secretName" in node:
                wanted.add((node["secretName"], "shared-secret"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk([d for d in docs if d["kind"] in ("StatefulSet", "DaemonSet")])
    secrets = {d["metadata"]["name"]: d for d in by_kind(docs, "Secret")}
    if name == "base":  # the overlay makes them
        assert not secrets
        return
    external = {("relay-db-app", "password")} if name.endswith("cloudnative-pg") else set()  # the operator's
    for secret, key in wanted - external:
        assert key in secrets[secret]["data"], (secret, key)
    # The relays' TURN secret and coturn's are one Secret.
    relay_turn = next(s for s, k in wanted if k == "shared-secret")
    coturn = one(docs, "DaemonSet", "coturn")["spec"]["template"]["spec"]
    assert {"name": "secret", "secret": {"secretName": relay_turn}} in coturn["volumes"]


def test_each_replica_has_its_service_and_route(rendered: tuple[str, Any]) -> None:
    docs = rendered[1]
    replicas = one(docs, "StatefulSet", "relay")["spec"]["replicas"]
    ingress = one(docs, "Ingress", "relay")
    (rule,) = ingress["spec"]["rules"]
    routes = {p["path"]: p["backend"]["service"]["name"] for p in rule["http"]["paths"]}
    assert routes["/"] == "relay" and routes["/whep"] == "relay"
    any_replica = one(docs, "Service", "relay")
    assert any_replica["spec"]["selector"] == {"app.kubernetes.io/name": "relay"}
    assert one(docs, "Service", "relay-peers")["spec"]["clusterIP"] == "None"
    assert one(docs, "StatefulSet", "relay")["spec"]["serviceName"] == "relay-peers"
    for n in range(replicas):
        pod = f"relay-{n}"
        assert routes[f"/r/{pod}"] == pod
        assert one(docs, "Service", pod)["spec"]["selector"] == {"statefulset.kubernetes.io/pod-name": pod}
    assert len([p for p in routes if p.startswith("/r/")]) == replicas
    pdb = one(docs, "PodDisruptionBudget", "relay")
    assert pdb["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "relay"}


def test_coturn_takes_shared_secret_credentials_without_showing_the_secret(
        rendered: tuple[str, Any]) -> None:
    docs = rendered[1]
    coturn = one(docs, "DaemonSet", "coturn")["spec"]["template"]["spec"]
    assert coturn["hostNetwork"] is True
    (container,) = coturn["containers"]
    script = " ".join(container["args"])
    assert "static-auth-secret" in script and "$(cat /etc/coturn-secret/shared-secret)" in script
    assert "exec turnserver -c /run/coturn/turnserver.conf" in script
    config_name = next(v["configMap"]["name"] for v in coturn["volumes"] if "configMap" in v)
    conf = one(docs, "ConfigMap", config_name)["data"]["turnserver.conf"]
    lines = {line.strip() for line in conf.splitlines()}
    assert {"use-auth-secret", "no-cli"} <= lines and not any("static-auth-secret" in x for x in lines)
