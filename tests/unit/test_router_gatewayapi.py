"""Gateway API HTTPRoute router: golden renders of weights and RequestMirror, reads, errors."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.documents import load_documents
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.golden.harness import GOLDEN, GoldenCase, check_golden

GOLDEN_GATEWAY = GOLDEN / "gatewayapi"


def policy(v2: dict[str, Any] | None = None, route: str | None = "infer") -> ReleasePolicy:
    target: dict[str, Any] = {"router": "gatewayapi", "manifests": [{"path": "route.yaml"}]}
    if route:
        target["route"] = route
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "image-classifier", "namespace": "vision"},
            "spec": {
                "target": target,
                "versions": [
                    {
                        "name": "v1",
                        "role": "baseline",
                        "backend": {"service": "image-classifier-v1", "port": 8000},
                    },
                    {
                        "name": "v2",
                        "role": "candidate",
                        "backend": v2 or {"service": "image-classifier-v2", "port": 8000},
                    },
                ],
                "strategy": {"type": "mirror"},
            },
        }
    )


POLICY = policy()


def split(v1: int, v2: int, mirror_to: str | None = None, percent: float = 0) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2}, mirror_to, percent)


MIRROR_LINES = (
    r"^\s*(- )?(filters:|type: RequestMirror|requestMirror:|backendRef:|"
    r"name: image-classifier-v2|port: 8000|percent: \d+)$"
)
CASES = [
    GoldenCase("canary-step", split(90, 10), changed_lines=4),
    GoldenCase("promote", split(0, 100), changed_lines=4),
    GoldenCase("rollback", split(100, 0), changed_lines=4),
    GoldenCase("mirror-on", split(100, 0, "v2", 10), changed=MIRROR_LINES, changed_lines=7),
    GoldenCase("mirror-off", split(100, 0), changed=MIRROR_LINES, changed_lines=6),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: GoldenCase) -> None:
    check_golden("gatewayapi", POLICY, case)


ROUTE = """\
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: image-classifier
  namespace: vision
spec:
  rules:
  - name: infer
{filters}    backendRefs:
{refs}"""


def document(refs: str, filters: str = "") -> Any:
    return load_documents(ROUTE.format(refs=refs, filters=filters)).documents[0]


V1 = "    - name: image-classifier-v1\n      port: 8000\n"
V2 = "    - name: image-classifier-v2\n      port: 8000\n"


@pytest.mark.parametrize(
    ("refs", "filters", "expected"),
    [
        (V1, "", split(100, 0)),  # one backend, default weight 1: everything
        (V1 + "      weight: 3\n" + V2, "", split(75, 25)),  # proportions, default weight 1
        (V1 + "      weight: 2\n" + V2 + "      weight: 1\n", "", split(67, 33)),
        (
            V1,
            "    filters:\n    - type: RequestMirror\n      requestMirror:\n        backendRef:\n"
            "          name: image-classifier-v2\n          port: 8000\n"
            "        fraction: {numerator: 1, denominator: 8}\n",
            split(100, 0, "v2", 12.5),
        ),
        (
            V1,
            "    filters:\n    - type: RequestMirror\n      requestMirror:\n        backendRef:\n"
            "          name: image-classifier-v2\n          port: 8000\n",
            split(100, 0, "v2", 100),
        ),
        (  # a mirror to a Service that is no version belongs to someone else
            V1,
            "    filters:\n    - type: RequestMirror\n      requestMirror:\n        backendRef:\n"
            "          name: traffic-recorder\n          port: 80\n",
            split(100, 0),
        ),
    ],
)
def test_read(refs: str, filters: str, expected: TrafficSplit) -> None:
    assert router_for("gatewayapi").read(document(refs, filters), POLICY) == expected


def test_new_backend_ref_is_cloned_from_the_baseline() -> None:
    doc = document(V1)
    router_for("gatewayapi").render(doc, POLICY, split(95, 5))
    refs = doc["spec"]["rules"][0]["backendRefs"]
    assert [dict(r) for r in refs] == [
        {"name": "image-classifier-v1", "port": 8000, "weight": 95},
        {"name": "image-classifier-v2", "port": 8000, "weight": 5},
    ]


def test_fractional_mirror_percentage_is_written_as_a_fraction() -> None:
    doc = document(V1 + V2)
    router_for("gatewayapi").render(doc, POLICY, split(100, 0, "v2", 2.5))
    mirror = doc["spec"]["rules"][0]["filters"][0]["requestMirror"]
    assert dict(mirror["fraction"]) == {"numerator": 250, "denominator": 10000}
    assert router_for("gatewayapi").read(doc, POLICY) == split(100, 0, "v2", 2.5)


@pytest.mark.parametrize(
    ("doc", "policy", "new_split", "message"),
    [
        pytest.param(
            document(V1 + V2),
            policy(route="predict"),
            split(90, 10),
            "HTTPRoute vision/image-classifier: no rule named 'predict' (named rules: 'infer')",
            id="rule missing",
        ),
        pytest.param(
            document("    - name: other\n      port: 80\n"),
            policy(route=None),
            split(90, 10),
            "no rule has a backendRef to image-classifier-v1, image-classifier-v2",
            id="no rule with a version",
        ),
        pytest.param(
            document(V1 + "    - name: other\n      port: 80\n"),
            POLICY,
            split(90, 10),
            "backendRefs that are none of the policy's versions carry traffic (other)",
            id="foreign backend with traffic",
        ),
        pytest.param(
            document(V1),
            policy(v2={"service": "image-classifier-v2"}),
            split(100, 0, "v2", 10),
            "needs a port",
            id="mirror without port",
        ),
        pytest.param(
            load_documents("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n").documents[0],
            POLICY,
            split(90, 10),
            "expected a HTTPRoute",
            id="wrong kind",
        ),
    ],
)
def test_errors(doc: Any, policy: ReleasePolicy, new_split: TrafficSplit, message: str) -> None:
    with pytest.raises(RenderError) as raised:
        router_for("gatewayapi").render(doc, policy, new_split)
    assert message in str(raised.value)


def test_all_zero_weights_read_as_an_error() -> None:
    doc = document(V1 + "      weight: 0\n" + V2 + "      weight: 0\n")
    with pytest.raises(RenderError, match="every backendRef has weight 0"):
        router_for("gatewayapi").read(doc, POLICY)


def test_unknown_router_kind_is_an_error() -> None:
    with pytest.raises(RenderError, match="unknown router 'linkerd'"):
        router_for("linkerd")


def pool_policy(group: str | None = None) -> ReleasePolicy:
    """Two InferencePools of the Gateway API Inference Extension, one per model version."""
    backend: dict[str, Any] = {"kind": "InferencePool"}
    if group is not None:
        backend["group"] = group
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "support-chat", "namespace": "llm"},
            "spec": {
                "target": {
                    "router": "gatewayapi",
                    "manifests": [{"path": "route.yaml"}],
                    "route": "chat",
                },
                "versions": [
                    {
                        "name": "v1",
                        "role": "baseline",
                        "backend": {**backend, "service": "support-chat-v1"},
                    },
                    {
                        "name": "v2",
                        "role": "candidate",
                        "backend": {**backend, "service": "support-chat-v2"},
                    },
                ],
                "strategy": {"type": "canary", "steps": [10, 50]},
            },
        }
    )


POOL_CASES = [
    GoldenCase("inferencepool-step", split(90, 10), changed_lines=4),
    GoldenCase("inferencepool-rollback", split(100, 0), changed_lines=4),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_golden_inference_pools(case: GoldenCase) -> None:
    check_golden("gatewayapi", pool_policy(), case)


def test_the_older_inference_pool_group_is_matched_when_named() -> None:
    """inference.networking.x-k8s.io (v1alpha2 pools): a new backendRef keeps the group."""
    x_k8s = pool_policy("inference.networking.x-k8s.io")
    check_golden(
        "gatewayapi", x_k8s, GoldenCase("inferencepool-x-k8s", split(80, 20), changed=r".*")
    )
    text = (GOLDEN_GATEWAY / "inferencepool-x-k8s.before.yaml").read_text(encoding="utf-8")
    route = load_documents(text).documents[0]
    # the GA group does not match a pool of the older group: its traffic belongs to no version
    with pytest.raises(RenderError, match=r"none of the policy.s versions carry traffic"):
        router_for("gatewayapi").read(route, pool_policy())


def test_a_service_of_the_same_name_is_not_the_pool() -> None:
    text = (GOLDEN_GATEWAY / "inferencepool-step.before.yaml").read_text(encoding="utf-8")
    route = load_documents(text.replace("kind: InferencePool", "kind: Service")).documents[0]
    with pytest.raises(RenderError):
        router_for("gatewayapi").read(route, pool_policy())
