"""KServe InferenceService router: golden renders of canaryTrafficPercent, reads, and errors."""

from __future__ import annotations

from typing import Any

import pytest

from policyengine.documents import load_documents
from policyengine.errors import RenderError
from policyengine.policy.models import ReleasePolicy
from policyengine.routers import router_for
from policyengine.values import TrafficSplit
from tests.golden.harness import GoldenCase, check_golden


def policy(candidates: int = 1) -> ReleasePolicy:
    versions = [{"name": "v1", "role": "baseline"}] + [
        {"name": f"v{i + 2}", "role": "candidate"} for i in range(candidates)
    ]
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "churn-predictor", "namespace": "customer-analytics"},
            "spec": {
                "target": {"router": "kserve", "manifests": [{"path": "isvc.yaml"}]},
                "versions": versions,
                "strategy": {"type": "blueGreen"},
            },
        }
    )


POLICY = policy()


def split(v1: int, v2: int, mirror_to: str | None = None) -> TrafficSplit:
    return TrafficSplit.of({"v1": v1, "v2": v2}, mirror_to, 10 if mirror_to else 0)


CASES = [
    GoldenCase("canary-step", split(90, 10), changed_lines=2),
    GoldenCase("promote", split(0, 100), changed_lines=2),
    GoldenCase("rollback", split(100, 0), changed_lines=2),
    GoldenCase("introduce-field", split(80, 20), changed_lines=1),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_golden(case: GoldenCase) -> None:
    check_golden("kserve", POLICY, case)


ISVC = """\
apiVersion: serving.kserve.io/v1beta1
kind: InferenceService
metadata:
  name: churn-predictor
  namespace: customer-analytics
  annotations:
    serving.kserve.io/deploymentMode: {mode}
spec:
  predictor:
{field}    model:
      modelFormat:
        name: sklearn
"""


def document(field: str = "", mode: str = "Knative") -> Any:
    return load_documents(ISVC.format(field=field, mode=mode)).documents[0]


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("", split(0, 100)),  # no field: the latest revision takes all traffic
        ("    canaryTrafficPercent: 0\n", split(100, 0)),
        ("    canaryTrafficPercent: 35\n", split(65, 35)),
        ("    canaryTrafficPercent: 100\n", split(0, 100)),
    ],
)
def test_read(field: str, expected: TrafficSplit) -> None:
    assert router_for("kserve").read(document(field), POLICY) == expected


def test_promote_without_the_field_changes_nothing() -> None:
    file = load_documents(ISVC.format(field="", mode="Knative"))
    router_for("kserve").render(file.documents[0], POLICY, split(0, 100))
    assert file.dump() == file.text


@pytest.mark.parametrize(
    ("doc", "policy", "new_split", "message"),
    [
        pytest.param(document(), POLICY, split(90, 10, "v2"), "cannot mirror", id="mirror"),
        pytest.param(
            document(mode="ModelMesh"),
            POLICY,
            split(90, 10),
            "deploymentMode is ModelMesh",
            id="modelmesh mode",
        ),
        pytest.param(
            document(mode="RawDeployment"),
            POLICY,
            split(90, 10),
            "needs Knative",
            id="raw deployment",
        ),
        pytest.param(
            document(),
            policy(candidates=2),
            TrafficSplit.of({"v1": 80, "v2": 10, "v3": 10}),
            "has 2 candidates",
            id="two candidates",
        ),
        pytest.param(
            document("    canaryTrafficPercent: 150\n"),
            POLICY,
            split(90, 10),
            "150 is not a percentage",
            id="out of range in the manifest",
        ),
        pytest.param(
            load_documents("apiVersion: v1\nkind: Service\nmetadata: {name: x}\n").documents[0],
            POLICY,
            split(90, 10),
            "expected a InferenceService",
            id="wrong kind",
        ),
    ],
)
def test_errors(doc: Any, policy: ReleasePolicy, new_split: TrafficSplit, message: str) -> None:
    with pytest.raises(RenderError) as raised:
        router_for("kserve").render(doc, policy, new_split)
    assert message in str(raised.value)
    assert "churn-predictor" in str(raised.value) or "Service x" in str(raised.value)
