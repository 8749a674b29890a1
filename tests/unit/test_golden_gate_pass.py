"""The golden gate inside a pass: `plan_pass` with the gate's result injected at the shell boundary
(the part that reaches S3 and the model servers is tested end to end in
tests/integration/test_golden_release.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from policyengine.analysis.verdict import Evidence, ObjectiveResult, Verdict
from policyengine.golden.gate import GateResult
from policyengine.metrics.provider import MetricsProvider
from policyengine.policy.loader import load_file
from policyengine.policy.models import ReleasePolicy
from policyengine.reconciler import PassPlan, plan_pass
from policyengine.strategies import Decision
from policyengine.strategies.status import ReleaseStatus
from tests.support.release_repos import example_files

NOW = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
GOLDEN = {
    "dataset": "s3://golden/fraud/v3.jsonl",
    "features": ["x0", "x1"],
    "label": "label",
    "sliceBy": ["region"],
    "endpoints": {
        "v1": {"url": "http://127.0.0.1:9/", "model": "v1"},
        "v2": {"url": "http://127.0.0.1:9/", "model": "v2"},
    },
}


def repository(tmp_path: Path) -> Path:
    for relative, text in example_files("modelmesh-canary").items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    policy_file = tmp_path / "policy.yaml"
    document = yaml.safe_load(policy_file.read_text(encoding="utf-8"))
    document["spec"]["golden"] = GOLDEN
    policy_file.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return tmp_path


def no_metrics(policy: ReleasePolicy) -> MetricsProvider:
    raise AssertionError("a policy without objectives queries nothing")


def plan_with(tmp_path: Path, result: GateResult) -> tuple[PassPlan, list[int]]:
    root = repository(tmp_path)
    loaded = load_file(root / "policy.yaml", root)
    assert not loaded.errors, loaded.errors
    steps: list[int] = []

    def golden_checks(policy: ReleasePolicy, status: ReleaseStatus) -> GateResult:
        steps.append(status.step)
        return result

    plan = plan_pass(root, loaded.policies, {}, no_metrics, NOW, golden_checks=golden_checks)
    return plan, steps


def test_a_failed_golden_slice_rolls_back_before_the_first_step(tmp_path: Path) -> None:
    failed = ObjectiveResult(
        "golden accuracy",
        "v2",
        Verdict.FAIL,
        "region=us (120 rows): accuracy 0.5 vs baseline 1: worse by 0.5, more than the allowed 0.02",
        Evidence(estimate=0.5, baseline=1.0, samples=120),
        check="region=us",
    )
    plan, steps = plan_with(tmp_path, GateResult(results=(failed,), markdown="#### Golden test"))
    (policy,) = plan.policies
    assert steps == [-1]
    assert policy.outcome is not None and policy.outcome.decision is Decision.ROLLBACK
    assert "region=us" in policy.outcome.reason
    assert policy.outcome.split.weight("v2") == 0
    assert "#### Golden test" in policy.message and "region=us" in policy.message


def test_a_golden_test_that_cannot_run_holds_before_the_first_step(tmp_path: Path) -> None:
    down = GateResult(
        hold_reasons=("golden test cannot run: s3://golden/fraud/v3.jsonl: S3 unreachable",),
        unreachable="S3 unreachable",
    )
    plan, _ = plan_with(tmp_path, down)
    (policy,) = plan.policies
    assert policy.outcome is not None and policy.outcome.decision is Decision.HOLD
    assert "holding before the first step: golden test cannot run" in policy.outcome.reason
    assert not policy.writes
    assert plan.exit_code == 3


def test_a_passed_golden_test_starts_the_release(tmp_path: Path) -> None:
    passed = ObjectiveResult(
        "golden test", "v2", Verdict.PASS, "240 rows: accuracy 1", check="dataset"
    )
    plan, _ = plan_with(tmp_path, GateResult(results=(passed,), markdown="#### Golden test: v2"))
    (policy,) = plan.policies
    assert policy.outcome is not None and policy.outcome.decision is Decision.ADVANCE
    assert policy.outcome.split.weight("v2") > 0
    assert "#### Golden test: v2" in policy.message


@pytest.mark.parametrize("missing", ["v1", "v2"])
def test_validation_wants_an_endpoint_per_version(tmp_path: Path, missing: str) -> None:
    root = repository(tmp_path)
    document = yaml.safe_load((root / "policy.yaml").read_text(encoding="utf-8"))
    del document["spec"]["golden"]["endpoints"][missing]
    document["spec"]["golden"]["endpoints"]["v9"] = {"url": "http://x/", "model": "m"}
    (root / "policy.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    from policyengine.policy.validation import policy_problems

    loaded = load_file(root / "policy.yaml", root)
    problems = [str(p) for p in policy_problems(loaded.policies[0].policy)]
    assert any(f"no endpoint for version {missing}" in p for p in problems), problems
    assert any("'v9' is not a version of this policy" in p for p in problems), problems
