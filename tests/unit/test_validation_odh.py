"""Validation for today's Open Data Hub: a kserve-canary policy's InferenceService is read, and a
broken spec.canary[] is reported at its line and column in the manifest (the policy is left out);
a drift objective bounding the harmless side of a p-value or a statistic is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from policyengine.cli import main
from policyengine.policy.loader import load_tree
from policyengine.policy.models import ReleasePolicy
from policyengine.policy.validation import check_repository, policy_problems

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "kserve-standard-canary"
MANIFEST = "manifests/inferenceservice.yaml"


def copy_example(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(EXAMPLE, root)
    return root


def line_col(text: str, needle: str) -> tuple[int, int]:
    for number, line in enumerate(text.splitlines(), start=1):
        if needle in line:
            return number, line.index(needle.strip()) + 1
    raise AssertionError(f"{needle!r} not in the manifest")


def test_the_example_validates(tmp_path: Path) -> None:
    root = copy_example(tmp_path)
    report = check_repository(load_tree([root], root), root)
    assert report.errors == []
    assert [loaded.key for loaded in report.policies] == ["payments/fraud-scorer"]


@pytest.mark.parametrize(
    ("edit", "needle", "field", "message"),
    [
        (
            ("trafficPercent: 0 ", "trafficPercent: 120 "),
            "trafficPercent: 120",
            "spec.canary[0].trafficPercent",
            "120 is not a percentage 0-100",
        ),
        (
            ("        name: v2\n", "        name: v2-retrained\n"),
            "name: v2-retrained",
            "spec.canary[0].predictor.name",
            "predictor 'v2-retrained' is none of policy payments/fraud-scorer's predictors",
        ),
    ],
    ids=["percent-120", "unknown-predictor"],
)
def test_a_broken_canary_list_is_reported_at_its_line(
    tmp_path: Path, edit: tuple[str, str], needle: str, field: str, message: str
) -> None:
    root = copy_example(tmp_path)
    manifest = root / MANIFEST
    text = manifest.read_text(encoding="utf-8")
    assert edit[0] in text
    manifest.write_text(text.replace(edit[0], edit[1]), encoding="utf-8")
    line, column = line_col(manifest.read_text(encoding="utf-8"), needle)

    result = CliRunner().invoke(main, ["validate", str(root), "--repo", str(root)])

    assert result.exit_code == 1, result.output
    [error] = result.stdout.splitlines()
    assert error.startswith(f"{MANIFEST}:{line}:{column}: error: {field}: "), error
    assert message in error
    report = check_repository(load_tree([root], root), root)
    assert report.policies == []  # the policy is not reconciled while its manifest is broken


def drift_policy(metric_set: str, objective: dict[str, object]) -> ReleasePolicy:
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud-scorer", "namespace": "payments"},
            "spec": {
                "target": {"router": "kserve-canary", "manifests": [{"path": "isvc.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline"},
                    {"name": "v2", "role": "candidate"},
                ],
                "strategy": {"type": "canary", "steps": [10, 50]},
                "objectives": [objective],
                "metrics": {"set": metric_set},
            },
        }
    )


@pytest.mark.parametrize(
    ("metric_set", "objective", "problem"),
    [
        # the Java service's p-value: an alert "meanshift < 0.05" is min: 0.05, never max
        ("trustyai", {"metric": "meanshift", "max": 0.05}, ("max", "worse when lower")),
        (
            "trustyai",
            {"metric": "kstest", "maxIncrease": 0.1},
            ("maxIncrease", "bound it with min"),
        ),
        # the Python service's statistic: high is drift
        ("trustyai-py", {"metric": "kstest", "min": 0.05}, ("min", "worse when higher")),
        ("trustyai", {"metric": "fouriermmd", "min": 0.5}, ("min", "bound it with max")),
    ],
)
def test_a_drift_bound_on_the_harmless_side_is_refused(
    metric_set: str, objective: dict[str, object], problem: tuple[str, str]
) -> None:
    [found] = policy_problems(drift_policy(metric_set, objective))
    assert found.field == ("spec", "objectives", 0, problem[0])
    assert problem[1] in found.message


@pytest.mark.parametrize(
    ("metric_set", "objective"),
    [
        ("trustyai", {"metric": "meanshift", "min": 0.05}),
        ("trustyai-py", {"metric": "kstest", "max": 0.2}),
        ("trustyai-py", {"metric": "spd", "min": -0.1, "max": 0.1}),  # fairness: both ways
    ],
)
def test_drift_bounds_on_the_bad_side_are_accepted(
    metric_set: str, objective: dict[str, object]
) -> None:
    assert policy_problems(drift_policy(metric_set, objective)) == []


def pool_policy(router: str, backend: dict[str, object], strategy: str = "canary") -> ReleasePolicy:
    steps = {"steps": [10, 50]} if strategy == "canary" else {}
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "support-chat", "namespace": "llm"},
            "spec": {
                "target": {"router": router, "manifests": [{"path": "route.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline", "backend": {**backend, "service": "p1"}},
                    {"name": "v2", "role": "candidate", "backend": {**backend, "service": "p2"}},
                ],
                "strategy": {"type": strategy, **steps},
            },
        }
    )


@pytest.mark.parametrize(
    ("router", "backend", "strategy", "problem"),
    [
        ("gatewayapi", {"kind": "InferencePool"}, "canary", None),
        (
            "gatewayapi",
            {"kind": "InferencePool", "group": "inference.networking.x-k8s.io"},
            "canary",
            None,
        ),
        ("gatewayapi", {"kind": "InferencePool", "group": "apps"}, "canary", "group"),
        ("gatewayapi", {"group": "inference.networking.k8s.io"}, "canary", "group"),
        ("istio", {"kind": "InferencePool", "host": "h"}, "canary", "kind"),
        ("gatewayapi", {"kind": "InferencePool"}, "mirror", "type"),
        ("gatewayapi", {"predictor": "v1"}, "canary", "predictor"),
    ],
)
def test_validation_knows_the_backend_kinds(
    router: str, backend: dict[str, object], strategy: str, problem: str | None
) -> None:
    found = policy_problems(pool_policy(router, backend, strategy))
    if problem is None:
        assert found == []
    else:
        assert found and found[0].field[-1] == problem, found


def test_the_new_backend_fields_stay_out_of_a_release_id_when_unset() -> None:
    """Backend.kind/group/predictor default to None: release_id() dumps the backend without
    None values, so a release in flight keeps its identity (tests/golden/reconcile pins it)."""
    policy = pool_policy("gatewayapi", {})
    assert policy.spec.candidates[0].backend.model_dump(exclude_none=True) == {"service": "p2"}
