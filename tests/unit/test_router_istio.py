"""Istio VirtualService router: golden renders (ModelMesh and plain style), reads, and errors."""

from __future__ import annotations

import re
from typing import Any

import pytest

from policyengine.documents import load_documents
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.golden.harness import WEIGHT_LINE, GoldenCase, check_golden


def policy(
    router: str, backends: dict[str, dict[str, Any]], route: str | None = None
) -> ReleasePolicy:
    versions = [
        {"name": name, "role": "baseline" if i == 0 else "candidate", "backend": backend}
        for i, (name, backend) in enumerate(backends.items())
    ]
    target: dict[str, Any] = {"router": router, "manifests": [{"path": "vs.yaml"}]}
    if route is not None:
        target["route"] = route
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud-detector", "namespace": "fraud-detection"},
            "spec": {
                "target": target,
                "versions": versions,
                "strategy": {"type": "canary", "steps": [10, 20, 50]},
            },
        }
    )


MODELMESH = policy(
    "istio-modelmesh",
    {"v1": {"header": "fraud-detector-v1"}, "v2": {"header": "fraud-detector-v2"}},
    route="inference",
)
MODELMESH_UNNAMED = policy(
    "istio-modelmesh",
    {"v1": {"header": "fraud-detector-v1"}, "v2": {"header": "fraud-detector-v2"}},
)
PLAIN = policy(
    "istio",
    {"v1": {"host": "recommender", "subset": "v1"}, "v2": {"host": "recommender", "subset": "v2"}},
)


def split(v1: int, v2: int, mirror_to: str | None = None, percent: float = 0.0) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2}, mirror_to, percent)


MIRROR_LINES = r"^\s*(mirror:|mirrorPercentage:|host: recommender|subset: v2|value: \d+(\.\d+)?)$"

MODELMESH_CASES = [
    (MODELMESH, GoldenCase("canary-step", split(90, 10), changed_lines=4)),
    (MODELMESH, GoldenCase("rollback", split(100, 0), changed_lines=4)),
    (MODELMESH, GoldenCase("promote", split(0, 100), changed_lines=4)),
    (MODELMESH, GoldenCase("noop", split(100, 0), changed_lines=0)),
    (MODELMESH_UNNAMED, GoldenCase("kubectl-style", split(60, 40), changed_lines=4)),
    (
        MODELMESH,
        GoldenCase(
            "new-destination",
            split(90, 10),
            # the cloned destination is new lines; the baseline gains its weight
            changed=r"^\s*(-\s+)?(destination:|host: modelmesh-serving|port:|number: 8033|"
            r"headers:|request:|set:|mm-vmodel-id: fraud-detector-v2|weight: (90|10))$",
            changed_lines=10,
        ),
    ),
]
PLAIN_CASES = [
    (PLAIN, GoldenCase("canary-step", split(80, 20), changed_lines=4)),
    (PLAIN, GoldenCase("promote", split(0, 100), changed_lines=4)),
    (
        PLAIN,
        GoldenCase("mirror-on", split(100, 0, "v2", 20), changed=MIRROR_LINES, changed_lines=5),
    ),
    (PLAIN, GoldenCase("mirror-off", split(100, 0), changed=MIRROR_LINES, changed_lines=5)),
    (
        PLAIN,
        GoldenCase("mirror-percent", split(100, 0, "v2", 5), changed=MIRROR_LINES, changed_lines=2),
    ),
]


@pytest.mark.parametrize(
    ("policy", "case"), MODELMESH_CASES, ids=[str(c) for _, c in MODELMESH_CASES]
)
def test_modelmesh_golden(policy: ReleasePolicy, case: GoldenCase) -> None:
    check_golden("istio-modelmesh", policy, case)


@pytest.mark.parametrize(("policy", "case"), PLAIN_CASES, ids=[str(c) for _, c in PLAIN_CASES])
def test_plain_golden(policy: ReleasePolicy, case: GoldenCase) -> None:
    check_golden("istio", policy, case)


def test_weight_line_pattern_rejects_other_lines() -> None:
    assert re.match(WEIGHT_LINE, "          weight: 10  # stable")
    assert not re.match(WEIGHT_LINE, "          timeout: 10s")


VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: fraud-detector
  namespace: fraud-detection
spec:
  http:
  - name: inference
    route:
    - destination:
        host: modelmesh-serving
      headers:
        request:
          set:
            mm-vmodel-id: fraud-detector-v1
{rest}"""


def fill(template: str, rest: str) -> str:
    return template.replace("{rest}", rest)


def document(text: str) -> Any:
    return load_documents(text).documents[0]


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("", split(100, 0)),  # a lone destination without weight takes everything
        (
            "      weight: 70\n    - destination:\n        host: modelmesh-serving\n      headers:\n"
            "        request:\n          set:\n            mm-vmodel-id: fraud-detector-v2\n"
            "      weight: 30\n",
            split(70, 30),
        ),
        # a mirror cannot be attributed to a ModelMesh version: reads as no mirror
        ("    mirror:\n      host: modelmesh-serving\n", split(100, 0)),
    ],
)
def test_modelmesh_read(rest: str, expected: TrafficSplit) -> None:
    assert router_for("istio-modelmesh").read(document(fill(VS, rest=rest)), MODELMESH) == expected


PLAIN_VS = """\
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata:
  name: recommender
spec:
  http:
  - route:
    - destination: {host: recommender, subset: v1}
      weight: 75
    - destination: {host: recommender, subset: v2}
      weight: 25
{rest}"""


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("", split(75, 25)),
        ("    mirror: {host: recommender, subset: v2}\n", split(75, 25, "v2", 100)),
        (
            "    mirror: {host: recommender, subset: v2}\n    mirrorPercentage: {value: 12.5}\n",
            split(75, 25, "v2", 12.5),
        ),
        # someone else's mirror is not the policy's
        ("    mirror: {host: shadow-logger}\n", split(75, 25)),
    ],
)
def test_plain_read(rest: str, expected: TrafficSplit) -> None:
    assert router_for("istio").read(document(fill(PLAIN_VS, rest=rest)), PLAIN) == expected


def test_foreign_mirror_is_left_alone_when_mirroring_stops() -> None:
    text = fill(PLAIN_VS, rest="    mirror: {host: shadow-logger}\n")
    file = load_documents(text)
    router_for("istio").render(file.documents[0], PLAIN, split(75, 25))
    assert file.dump() == text


@pytest.mark.parametrize(
    ("text", "policy", "router", "new_split", "message"),
    [
        pytest.param(
            fill(VS, rest="").replace("name: inference", "name: other"),
            MODELMESH,
            "istio-modelmesh",
            split(90, 10),
            "VirtualService fraud-detection/fraud-detector: no http route named 'inference'",
            id="named route missing",
        ),
        pytest.param(
            fill(VS, rest="").replace("fraud-detector-v1", "someone-else"),
            MODELMESH_UNNAMED,
            "istio-modelmesh",
            split(90, 10),
            "no http route has a destination of mm-vmodel-id=fraud-detector-v1",
            id="no route with a version",
        ),
        pytest.param(
            fill(VS, rest="").replace("kind: VirtualService", "kind: DestinationRule"),
            MODELMESH,
            "istio-modelmesh",
            split(90, 10),
            "expected a VirtualService",
            id="wrong kind",
        ),
        pytest.param(
            fill(VS, rest="").replace("networking.istio.io/v1", "example.com/v1"),
            MODELMESH,
            "istio-modelmesh",
            split(90, 10),
            "expected a VirtualService",
            id="wrong apiVersion",
        ),
        pytest.param(
            fill(VS, rest=""),
            MODELMESH,
            "istio-modelmesh",
            split(90, 10, "v2", 10),
            "istio-modelmesh cannot mirror",
            id="modelmesh mirror",
        ),
        pytest.param(
            fill(VS, rest=""),
            MODELMESH,
            "istio-modelmesh",
            split(90, 20),
            "weights must sum to 100",
            id="split over 100",
        ),
        pytest.param(
            fill(VS, rest=""),
            MODELMESH,
            "istio-modelmesh",
            TrafficSplit.of({"v1": 90, "v3": 10}),
            "'v3' is not a version of policy fraud-detection/fraud-detector",
            id="unknown version",
        ),
        pytest.param(
            fill(
                VS,
                rest="      weight: 50\n    - destination:\n        host: other-model\n"
                "      weight: 50\n",
            ),
            MODELMESH,
            "istio-modelmesh",
            split(90, 10),
            "destinations that are none of the policy's versions carry traffic (other-model)",
            id="foreign destination with traffic",
        ),
        pytest.param(
            fill(PLAIN_VS, rest="    mirror: {host: shadow-logger}\n"),
            PLAIN,
            "istio",
            split(75, 25, "v2", 10),
            "already mirrors to shadow-logger",
            id="foreign mirror in the way",
        ),
        pytest.param(
            fill(PLAIN_VS, rest=""),
            policy("istio", {"v1": {"host": "recommender"}, "v2": {"host": "recommender"}}),
            "istio",
            split(75, 25),
            "2 destinations match version 'v1'",
            id="ambiguous destinations",
        ),
        pytest.param(
            fill(PLAIN_VS, rest=""),
            policy("istio", {"v1": {"host": "recommender"}, "v2": {"header": "x"}}),
            "istio",
            split(75, 25),
            "version 'v2' needs backend.host",
            id="plain version without host",
        ),
    ],
)
def test_errors_name_the_object_and_route(
    text: str, policy: ReleasePolicy, router: str, new_split: TrafficSplit, message: str
) -> None:
    with pytest.raises(RenderError) as raised:
        router_for(router).render(document(text), policy, new_split)
    assert message in str(raised.value)


def test_read_rejects_weights_not_summing_to_100() -> None:
    text = fill(PLAIN_VS, rest="").replace("weight: 25", "weight: 20")
    with pytest.raises(RenderError, match="route weights sum to 95, not 100"):
        router_for("istio").read(document(text), PLAIN)


def test_render_repairs_weights_not_summing_to_100() -> None:
    doc = document(fill(PLAIN_VS, rest="").replace("weight: 25", "weight: 20"))
    router_for("istio").render(doc, PLAIN, split(75, 25))
    assert router_for("istio").read(doc, PLAIN) == split(75, 25)
