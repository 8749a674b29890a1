"""KServe Serverless router (Knative mode, ODH <= 2.x): `spec.predictor.canaryTrafficPercent`.

For KServe Standard (RawDeployment, ODH 3.x) use the kserve-canary router (`spec.canary[]`).

KServe splits traffic between two revisions only: the latest (the candidate) gets the percentage,
the previously rolled-out one (the baseline) gets the rest; without the field the latest gets all.
"""

from __future__ import annotations

from typing import Any

from policyengine.documents import describe
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy, Version
from policyengine.routers.base import Node, append_key, check_split, require_kind, split_of
from policyengine.values import TrafficSplit

API_VERSIONS = frozenset({"serving.kserve.io/v1beta1"})
FIELD = "canaryTrafficPercent"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
# canaryTrafficPercent is implemented by the Knative reconciler only
UNSUPPORTED_MODES = frozenset({"ModelMesh", "Standard", "RawDeployment"})


class KServeRouter:
    """Edits one integer; never deletes it (promotion writes 100, rollback writes 0)."""

    kind = "InferenceService"

    def read(self, document: Any, policy: ReleasePolicy) -> TrafficSplit:
        predictor, where = self._predictor(document)
        baseline, candidate = self._versions(policy, where)
        percent = self._current(predictor, where)
        return split_of(policy, {baseline.name: 100 - percent, candidate.name: percent})

    def render(self, document: Any, policy: ReleasePolicy, split: TrafficSplit) -> None:
        predictor, where = self._predictor(document)
        _, candidate = self._versions(policy, where)
        if split.mirror_to is not None:
            raise RenderError(
                f"{where}: the kserve router cannot mirror traffic (KServe has no mirroring); "
                "use validationTraffic: none, or route with Istio or Gateway API"
            )
        wanted = check_split(policy, split, where)[candidate.name]
        if self._current(predictor, where) == wanted:
            return
        if FIELD in predictor:
            append_key(predictor, FIELD, wanted)
        else:
            # last: a first key would slip under any comment that introduces the predictor
            append_key(predictor, FIELD, wanted)

    def _predictor(self, document: Any) -> tuple[Node, str]:
        service = require_kind(document, self.kind, API_VERSIONS)
        where = f"{describe(service)}, spec.predictor.{FIELD}"
        metadata = service.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        mode = annotations.get(DEPLOYMENT_MODE) if isinstance(annotations, dict) else None
        if mode in UNSUPPORTED_MODES:
            raise RenderError(
                f"{where}: {DEPLOYMENT_MODE} is {mode}; canaryTrafficPercent needs Knative "
                "(serverless) mode. For ModelMesh use the istio-modelmesh router, for Standard "
                "the kserve-canary router (spec.canary[])"
            )
        spec = service.get("spec")
        predictor = spec.get("predictor") if isinstance(spec, dict) else None
        if not isinstance(predictor, dict):
            raise RenderError(f"{describe(service)}: spec.predictor is missing")
        return predictor, where

    def _versions(self, policy: ReleasePolicy, where: str) -> tuple[Version, Version]:
        candidates = policy.spec.candidates
        if len(candidates) != 1:
            raise RenderError(
                f"{where}: KServe splits traffic between two revisions; policy {policy.key} "
                f"has {len(candidates)} candidates"
            )
        return policy.spec.baseline, candidates[0]

    def _current(self, predictor: Node, where: str) -> int:
        value = predictor.get(FIELD)
        if value is None:
            return 100
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
            raise RenderError(f"{where}: {value!r} is not a percentage 0-100")
        return value
