"""Offline validation of Kubernetes manifests against the CRD schemas in tests/schemas.

The schemas are copies of the upstream CRDs kept in the repository (tests/schemas/README.md says
which release each comes from; tests/schemas/generate.py regenerates them), so the tests read
nothing outside the checkout. They check structure only (see that README): apiVersion/kind are checked here,
unknown fields are caught in strict mode, and weights are checked by `weight_problems`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMAS_DIR = REPO_ROOT / "tests" / "schemas"

# (apiVersion, kind) -> schema file; Istio v1alpha3 has the same body as v1
SCHEMA_FILES: dict[tuple[str, str], str] = {
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve.serving.v1beta1.InferenceService",
    ("serving.kserve.io/v1alpha1", "ServingRuntime"): "kserve.serving.v1alpha1.ServingRuntime",
    ("networking.istio.io/v1", "VirtualService"): "istio.networking.v1.VirtualService",
    ("networking.istio.io/v1beta1", "VirtualService"): "istio.networking.v1beta1.VirtualService",
    ("networking.istio.io/v1alpha3", "VirtualService"): "istio.networking.v1.VirtualService",
    ("networking.istio.io/v1", "DestinationRule"): "istio.networking.v1.DestinationRule",
    ("networking.istio.io/v1beta1", "DestinationRule"): "istio.networking.v1beta1.DestinationRule",
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): "gateway.networking.v1.HTTPRoute",
    ("argoproj.io/v1alpha1", "Application"): "argoproj.v1alpha1.Application",
    ("inference.networking.k8s.io/v1", "InferencePool"): "inference.networking.v1.InferencePool",
    (
        "inference.networking.x-k8s.io/v1alpha2",
        "InferencePool",
    ): "inference.networking.x-k8s.v1alpha2.InferencePool",
}
TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}
# Built-in kinds have no CRD schema here; they are checked for their identity only.
CORE_KINDS = {
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("v1", "ServiceAccount"),
    ("apps/v1", "Deployment"),
}


def schemas_dir() -> Path:
    """The folder of CRD schemas inside the repository."""
    return SCHEMAS_DIR


def require_schemas() -> Path:
    """The schema folder; it is part of the repository, so it is always there."""
    if not SCHEMAS_DIR.is_dir():
        raise FileNotFoundError(f"{SCHEMAS_DIR} is missing: the CRD schemas belong to the repo")
    return SCHEMAS_DIR


@cache
def _validator(name: str, strict: bool) -> Draft202012Validator:
    folder = require_schemas()
    schema: dict[str, Any] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
    if strict:
        _forbid_unknown_fields(schema)
        # the top level stays open: Istio's schemas declare only spec and status
        schema.pop("additionalProperties", None)
    return Draft202012Validator(schema)


def _forbid_unknown_fields(node: Any) -> None:
    """additionalProperties: false on every object schema that lists its properties (README §1)."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            _forbid_unknown_fields(value)
    elif isinstance(node, list):
        for item in node:
            _forbid_unknown_fields(item)


def to_plain(node: Any) -> Any:
    """A ruamel round-trip node as plain JSON-like data (dict, list, str, int, float, bool)."""
    if isinstance(node, Mapping):
        return {str(key): to_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [to_plain(item) for item in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return str(node)


def validate_manifest(document: Any, *, strict: bool = True) -> list[str]:
    """Problems of one manifest: unknown apiVersion/kind, metadata, then the CRD schema.

    strict (the default) also rejects fields the schema does not know, as
    `kubectl --validate=strict` would; the top level keeps apiVersion, kind and metadata.
    """
    manifest = to_plain(document)
    if not isinstance(manifest, dict):
        return ["not a mapping"]
    identity = (manifest.get("apiVersion"), manifest.get("kind"))
    problems = []
    metadata = manifest.get("metadata")
    if not isinstance(metadata, dict) or not isinstance(metadata.get("name"), str):
        problems.append("metadata.name is missing")
    if identity in CORE_KINDS:
        return problems
    if identity not in SCHEMA_FILES:
        return [*problems, f"no schema for apiVersion/kind {identity[0]}/{identity[1]}"]
    validator = _validator(SCHEMA_FILES[identity], strict)
    declared = validator.schema.get("properties", {}) if isinstance(validator.schema, dict) else {}
    unknown = set(manifest) - TOP_LEVEL - set(declared)
    problems += [f"{key}: unknown top-level field" for key in sorted(unknown)]
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    for error in errors:
        path = ".".join(str(part) for part in error.absolute_path) or "(top)"
        problems.append(f"{path}: {error.message}")
    return problems


def weight_problems(document: Any) -> list[str]:
    """What the schemas leave to admission webhooks: weights that make a sound split."""
    manifest = to_plain(document)
    kind = manifest.get("kind") if isinstance(manifest, dict) else None
    spec = manifest.get("spec") or {} if isinstance(manifest, dict) else {}
    problems = []
    if kind == "VirtualService":
        for index, route in enumerate(spec.get("http") or []):
            entries = route.get("route") or []
            weights = [entry.get("weight") for entry in entries]
            if len(entries) > 1 and (
                any(not isinstance(w, int) or w < 0 for w in weights if w is not None)
                or sum(w or 0 for w in weights) != 100
            ):
                problems.append(f"http[{index}] weights {weights} do not sum to 100")
            mirror = route.get("mirrorPercentage")
            if mirror is not None and not 0 <= mirror.get("value", -1) <= 100:
                problems.append(f"http[{index}].mirrorPercentage {mirror} out of 0-100")
    elif kind == "InferenceService":
        percent = (spec.get("predictor") or {}).get("canaryTrafficPercent")
        if percent is not None and not 0 <= percent <= 100:
            problems.append(f"canaryTrafficPercent {percent} out of 0-100")
    elif kind == "HTTPRoute":
        for index, rule in enumerate(spec.get("rules") or []):
            refs = rule.get("backendRefs") or []
            weights = [ref.get("weight", 1) for ref in refs]
            if refs and sum(weights) <= 0:
                problems.append(f"rules[{index}] backendRefs carry no weight")
            for entry in rule.get("filters") or []:
                if entry.get("type") == "RequestMirror":
                    mirror = entry.get("requestMirror")
                    if not isinstance(mirror, dict) or "port" not in mirror.get("backendRef", {}):
                        problems.append(f"rules[{index}] RequestMirror needs backendRef.port")
                    elif "percent" in mirror and "fraction" in mirror:
                        problems.append(f"rules[{index}] RequestMirror has percent and fraction")
    return problems
