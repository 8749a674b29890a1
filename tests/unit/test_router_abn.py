"""Routers with N versions (A/B/n): N weighted destinations, and the sticky-user pin routes that
match the x-policyengine-version header ahead of the weighted route (Istio, ModelMesh headers
included, and Gateway API), golden-checked and valid against the CRD schemas."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.documents import find_document, load_documents
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.routers.base import pinned_version
from policyengine.values import TrafficSplit
from tests.golden.harness import GOLDEN, GoldenCase, check_golden
from tests.support.crd_schemas import validate_manifest

ANY_LINE = r".*"


def abn(
    router: str, backends: dict[str, dict[str, Any]], route: str, sticky: bool
) -> ReleasePolicy:
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "recommender", "namespace": "shop"},
            "spec": {
                "target": {"router": router, "manifests": [{"path": "m.yaml"}], "route": route},
                "versions": [
                    {"name": n, "role": "baseline" if i == 0 else "candidate", "backend": b}
                    for i, (n, b) in enumerate(backends.items())
                ],
                "strategy": {"type": "abn", "stickyUsers": sticky},
                "rewards": [{"metric": "accepted"}],
            },
        }
    )


MODELMESH = {f"v{i}": {"header": f"fraud-detector-v{i}"} for i in (1, 2, 3)}
GATEWAY = {f"v{i}": {"service": f"recommender-v{i}", "port": 8080} for i in (1, 2, 3)}


def three(v1: int, v2: int, v3: int) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2, "v3": v3})


@pytest.mark.parametrize(
    ("router", "backends", "route"),
    [("istio-modelmesh", MODELMESH, "inference"), ("gatewayapi", GATEWAY, "infer")],
    ids=["istio-modelmesh", "gatewayapi"],
)
def test_three_versions_with_sticky_users_golden(
    router: str, backends: dict[str, dict[str, Any]], route: str
) -> None:
    policy = abn(router, backends, route, sticky=True)
    check_golden(router, policy, GoldenCase("abn-sticky", three(34, 33, 33), changed=ANY_LINE))


@pytest.mark.parametrize(
    ("router", "backends", "route"),
    [("istio-modelmesh", MODELMESH, "inference"), ("gatewayapi", GATEWAY, "infer")],
    ids=["istio-modelmesh", "gatewayapi"],
)
def test_pins_follow_the_serving_versions(
    router: str, backends: dict[str, dict[str, Any]], route: str
) -> None:
    """A version that stops serving loses its pin, and all pins go once one version serves
    everyone; the weighted route stays found among pins; without stickyUsers no pin is written."""
    policy = abn(router, backends, route, sticky=True)
    kind = router_for(router)
    text = (GOLDEN / router / "abn-sticky.before.yaml").read_text(encoding="utf-8")
    file = load_documents(text)
    document = find_document(file, kind.kind)
    routes_key = "http" if router.startswith("istio") else "rules"

    def pins() -> list[str]:
        return [v for r in document["spec"][routes_key] if (v := pinned_version(r))]

    kind.render(document, policy, three(34, 33, 33))
    assert pins() == ["v1", "v2", "v3"]
    kind.render(document, policy, three(20, 80, 0))
    assert pins() == ["v1", "v2"]
    assert kind.read(document, policy) == three(20, 80, 0)
    kind.render(document, policy, three(0, 100, 0))
    assert pins() == []  # one version serves everyone: nothing to pin
    kind.render(document, policy, three(100, 0, 0))
    assert pins() == [] and kind.read(document, policy) == three(100, 0, 0)
    plain = find_document(load_documents(text), kind.kind)
    kind.render(plain, abn(router, backends, route, sticky=False), three(34, 33, 33))
    assert not [r for r in plain["spec"][routes_key] if pinned_version(r)]


def test_kserve_standard_canary_list_carries_an_abn_course() -> None:
    """KServe Standard `spec.canary[]`: one entry per candidate, so an A/B/n test of three
    versions walks from an even split through learning to the winner's promotion."""
    policy = ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud-scorer", "namespace": "payments"},
            "spec": {
                "target": {"router": "kserve-canary", "manifests": [{"path": "isvc.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline"},
                    {"name": "v2", "role": "candidate"},
                    {"name": "v3", "role": "candidate"},
                ],
                "strategy": {"type": "abn"},
                "rewards": [{"metric": "accepted"}],
            },
        }
    )
    router = router_for("kserve-canary")
    text = (GOLDEN / "kserve-canary" / "three-way.before.yaml").read_text(encoding="utf-8")
    file = load_documents(text)
    for split in (three(34, 33, 33), three(20, 70, 10), three(6, 89, 5), three(0, 100, 0)):
        router.render(find_document(file, router.kind), policy, split)
        rendered = find_document(load_documents(file.dump()), router.kind)
        assert router.read(rendered, policy) == split
        assert validate_manifest(rendered) == []
