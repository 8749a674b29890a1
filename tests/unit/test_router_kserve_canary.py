"""KServe Standard router (`spec.canary[]`): golden renders, promotion, rollback, reads, errors."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.documents import load_documents
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.golden.harness import GoldenCase, check_golden
from tests.support.crd_schemas import validate_manifest

ROUTER = "kserve-canary"


def policy(candidates: int = 1, **backends: str) -> ReleasePolicy:
    versions: list[dict[str, Any]] = [{"name": "v1", "role": "baseline"}] + [
        {"name": f"v{i + 2}", "role": "candidate"} for i in range(candidates)
    ]
    for version in versions:
        if version["name"] in backends:
            version["backend"] = {"predictor": backends[version["name"]]}
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud-scorer", "namespace": "payments"},
            "spec": {
                "target": {"router": ROUTER, "manifests": [{"path": "isvc.yaml"}]},
                "versions": versions,
                "strategy": {"type": "canary", "steps": [10, 50]},
            },
        }
    )


POLICY = policy()
THREE = policy(candidates=2)


def split(v1: int, v2: int) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2})


def split3(v1: int, v2: int, v3: int) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2, "v3": v3})


PERCENT_LINE = r"^\s*(- )?trafficPercent: \d+\b"
# promotion moves the entry's predictor into spec.predictor: its name and storageUri change,
# the entry's lines (and the canary key when it was the last) go
PROMOTED_LINE = (
    r"^\s*(- )?(trafficPercent: \d+.*|name: (v\d|kserve-container|sklearn)|storageUri: .*"
    r"|canary:|predictor:|model:|modelFormat:)$"
)

CASES = [
    GoldenCase("canary-step", split(80, 20), changed=PERCENT_LINE, changed_lines=2),
    GoldenCase("rollback", split(100, 0), changed=PERCENT_LINE, changed_lines=2),
    GoldenCase("promote", split(0, 100), changed=PROMOTED_LINE),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: GoldenCase) -> None:
    check_golden(ROUTER, POLICY, case)


THREE_CASES = [
    GoldenCase("three-way", split3(60, 20, 20), changed=PERCENT_LINE, changed_lines=4),
    GoldenCase("three-way-promote", split3(0, 0, 100), changed=PROMOTED_LINE),
]


@pytest.mark.parametrize("case", THREE_CASES, ids=str)
def test_golden_with_two_candidates(case: GoldenCase) -> None:
    """One entry per candidate: N candidates are N entries, the stable predictor takes the rest."""
    check_golden(ROUTER, THREE, case)


ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: fraud-scorer
  namespace: payments
  annotations:
    serving.kserve.io/deploymentMode: {mode}
spec:
  predictor:
{stable}    model:
      modelFormat:
        name: sklearn
      storageUri: s3://models/v1
{canary}"""

ENTRY = """\
    - trafficPercent: {percent}
      predictor:
        name: {name}
        model:
          name: kserve-container
          modelFormat:
            name: sklearn
          storageUri: s3://models/{name}
"""


def document(*entries: tuple[str, Any], stable: str = "", mode: str = "Standard") -> Any:
    canary = "  canary:\n" + "".join(ENTRY.format(name=n, percent=p) for n, p in entries)
    text = ISVC.format(
        mode=mode,
        stable=f"    name: {stable}\n" if stable else "",
        canary=canary if entries else "",
    )
    return load_documents(text).documents[0]


def test_read_gives_the_stable_predictor_the_rest() -> None:
    router = router_for(ROUTER)
    assert router.read(document(("v2", 35)), POLICY) == split(65, 35)
    assert router.read(document(), POLICY) == split(100, 0)  # no entry: nothing released yet
    assert router.read(document(("v2", 30), ("v3", 20)), THREE) == split3(50, 30, 20)


def test_after_promotion_the_candidate_is_the_stable_predictor() -> None:
    router = router_for(ROUTER)
    promoted = document(stable="v2")
    assert router.read(promoted, POLICY) == split(0, 100)
    router.render(promoted, POLICY, split(0, 100))  # idempotent once promoted
    assert router.read(promoted, POLICY) == split(0, 100)


def test_promotion_merges_the_entry_into_the_stable_predictor() -> None:
    router = router_for(ROUTER)
    service = document(("v2", 50))
    router.render(service, POLICY, split(0, 100))
    predictor = service["spec"]["predictor"]
    assert predictor["name"] == "v2"
    assert predictor["model"]["storageUri"] == "s3://models/v2"
    assert predictor["model"]["modelFormat"]["name"] == "sklearn"  # kept from the stable one
    assert "canary" not in service["spec"]
    assert validate_manifest(service) == []


def test_promoting_one_of_two_candidates_keeps_the_other_entry_at_zero() -> None:
    router = router_for(ROUTER)
    service = document(("v2", 30), ("v3", 30))
    router.render(service, THREE, split3(0, 100, 0))
    assert service["spec"]["predictor"]["name"] == "v2"
    assert [(e["predictor"]["name"], e["trafficPercent"]) for e in service["spec"]["canary"]] == [
        ("v3", 0)
    ]
    assert router.read(service, THREE) == split3(0, 100, 0)


def test_predictor_names_can_differ_from_version_names() -> None:
    named = policy(v1="stable", v2="retrained")
    router = router_for(ROUTER)
    service = document(("retrained", 10), stable="stable")
    assert router.read(service, named) == split(90, 10)
    router.render(service, named, split(70, 30))
    assert service["spec"]["canary"][0]["trafficPercent"] == 30


@pytest.mark.parametrize(
    ("entries", "stable", "message"),
    [
        ((("v2", 120),), "", "120 is not a percentage 0-100"),
        ((("v9", 10),), "", "predictor 'v9' is none of policy payments/fraud-scorer's"),
        ((("v2", 10), ("v2", 20)), "", "predictor 'v2' has two entries"),
        ((("v1", 10),), "v1", "is also spec.predictor"),
        ((), "v7", "spec.predictor.name 'v7' is none of the policy's predictors"),
    ],
)
def test_broken_canary_lists_are_refused(
    entries: tuple[tuple[str, int], ...], stable: str, message: str
) -> None:
    with pytest.raises(RenderError, match=message):
        router_for(ROUTER).read(document(*entries, stable=stable), POLICY)


def test_percentages_over_100_in_total_are_refused() -> None:
    with pytest.raises(RenderError, match="sum to 110; KServe allows at most 100"):
        router_for(ROUTER).read(document(("v2", 60), ("v3", 50)), THREE)


def test_a_candidate_without_an_entry_cannot_get_traffic() -> None:
    service = document()
    with pytest.raises(RenderError, match=r"'v2' has no spec\.canary\[\] entry"):
        router_for(ROUTER).render(service, POLICY, split(90, 10))
    router_for(ROUTER).render(service, POLICY, split(100, 0))  # 0 % needs no entry


@pytest.mark.parametrize("mode", ["Knative", "Serverless", "ModelMesh"])
def test_other_deployment_modes_are_refused(mode: str) -> None:
    with pytest.raises(RenderError, match=r"spec\.canary needs Standard mode"):
        router_for(ROUTER).read(document(("v2", 10), mode=mode), POLICY)


def test_mirroring_is_refused() -> None:
    with pytest.raises(RenderError, match="cannot mirror"):
        router_for(ROUTER).render(
            document(("v2", 10)), POLICY, TrafficSplit.of({"v1": 100, "v2": 0}, "v2", 10)
        )
