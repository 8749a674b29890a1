"""The performance gate's pure parts: the policy format, when a load test is due, and the verdict."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from policyengine.loadtest.gate import due_step
from policyengine.loadtest.result import Distribution, LoadTestResult
from policyengine.loadtest.verdict import performance_gate
from policyengine.policy.models import ReleasePolicy
from policyengine.policy.performance import PerformanceGate
from policyengine.strategies.release import release_id
from policyengine.strategies.status import ReleaseStatus
from policyengine.values import Phase, TrafficSplit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _policy(**performance: Any) -> ReleasePolicy:
    spec: dict[str, Any] = {
        "target": {"router": "kserve", "manifests": [{"path": "isvc.yaml"}]},
        "versions": [{"name": "v1", "role": "baseline"}, {"name": "v2", "role": "candidate"}],
        "strategy": {"type": "canary", "steps": [10, 50]},
    }
    if performance:
        spec["performance"] = {
            "endpoint": "http://v2:8080",
            "model": "m",
            "rate": 50,
            "slos": ["p99 <= 200ms"],
            **performance,
        }
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "p"},
            "spec": spec,
        }
    )


def _status(policy: ReleasePolicy, step: int, phase: Phase = Phase.PROGRESSING) -> ReleaseStatus:
    return ReleaseStatus(
        policy=policy.key,
        phase=phase,
        release_id=release_id(policy),
        step=step,
        step_started_at=NOW,
        release_started_at=NOW,
        split=TrafficSplit((("v1", 100), ("v2", 0))),
    )


def test_a_malformed_slo_is_refused_with_the_grammar() -> None:
    with pytest.raises(ValidationError, match="METRIC OP VALUE"):
        _policy(slos=["p99 under 200ms"])
    with pytest.raises(ValidationError):
        _policy(slos=[])


def test_the_load_test_is_due_before_the_first_traffic_and_optionally_at_every_step() -> None:
    first = _policy(slos=["p99 <= 200ms"])
    every = _policy(at="everyStep")
    assert due_step(_policy(), None) is None  # no gate
    assert due_step(first, None) == -1  # a new release
    assert due_step(first, _status(first, -1)) == -1
    assert due_step(first, _status(first, 0)) is None
    assert due_step(every, _status(every, 1)) == 1
    assert due_step(every, _status(every, 1, Phase.FAILED)) is None
    other = _status(_policy(endpoint="http://v3:8080"), 1)  # same candidates: same release id
    assert due_step(first, other) is None


def _result(p99_ms: float, errors: int = 0) -> LoadTestResult:
    latency = Distribution(
        count=100,
        mean=p99_ms / 2,
        max=p99_ms,
        percentiles={
            "p50": p99_ms / 4,
            "p90": p99_ms / 2,
            "p95": p99_ms,
            "p99": p99_ms,
            "p99.9": p99_ms,
        },
    )
    return LoadTestResult(
        protocol="v2-rest",
        target="http://v2:8080",
        model="m",
        intended_rps=50,
        start_rps=50,
        end_rps=None,
        duration_s=2,
        warmup_s=0,
        sent=100 + errors,
        ok=100,
        errors={"503": errors} if errors else {},
        sent_rps=50,
        achieved_rps=50,
        latency=latency,
    )


def test_a_missed_slo_rolls_back_with_the_report_and_a_met_one_only_records_it() -> None:
    spec = _policy(slos=["p99 <= 200ms", "errorRate <= 0.01"]).spec.performance
    assert isinstance(spec, PerformanceGate)
    failed = performance_gate(spec, _result(350.0), "abc", -1)
    assert failed.rollback is not None and "p99 <= 200ms: 350 ms — MISSED" in failed.rollback
    assert failed.hold is None and failed.step == -1 and failed.release_id == "abc"
    assert "FAILED" in failed.evidence and "| requests sent | 100 |" in failed.evidence
    assert dict(failed.extra)["performance"].endswith("missed p99 <= 200ms")
    passed = performance_gate(spec, _result(120.0), "abc", -1)
    assert passed.rollback is None and passed.hold is None and "passed" in passed.evidence
    errors = performance_gate(spec, _result(120.0, errors=5), "abc", 0)
    assert errors.rollback is not None and "errorRate" in errors.rollback
    held = performance_gate(
        _policy(onFail="hold").spec.performance,  # type: ignore[arg-type]
        _result(350.0),
        "abc",
        -1,
    )
    assert held.hold is not None and held.rollback is None
