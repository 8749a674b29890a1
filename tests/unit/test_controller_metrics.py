"""Hold reasons map onto a fixed set of metric labels; the pass counters move as passes go."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from policyengine.controller.metrics import ControllerMetrics, hold_category
from policyengine.reconciler import PassPlan, PassResult, PolicyPlan
from policyengine.strategies import Decision, Outcome, Phase, TrafficSplit

SPLIT = TrafficSplit((("v1", 90), ("v2", 10)))


def _plan(
    reason: str, decision: Decision = Decision.HOLD, unreachable: str | None = None
) -> PolicyPlan:
    return PolicyPlan(
        key="ns/p",
        path="p.yaml",
        outcome=Outcome(decision, reason, SPLIT, Phase.PROGRESSING, 0),
        unreachable=unreachable,
    )


@pytest.mark.parametrize(
    ("reason", "category"),
    [
        ("paused by a person", "paused"),
        ("the manifests say v1=80,v2=20 but the engine last wrote v1=90,v2=10: ...", "manual-edit"),
        ("holding: traffic not measured (no data): no series", "no-data"),
        (
            "holding: sample ratio mismatch: v2 got 2 % of requests, expected 10 %",
            "sample-ratio-mismatch",
        ),
        ("max age reached, waiting for a person (onInconclusive hold); ...", "inconclusive"),
        ("step 1 (10 %) held 2m of 6m", "dwell"),
        ("error-rate: not enough evidence yet", "evidence"),
    ],
)
def test_hold_reasons_fall_into_fixed_categories(reason: str, category: str) -> None:
    assert hold_category(_plan(reason)) == category


def test_an_unreachable_dependency_wins_over_the_reason() -> None:
    assert (
        hold_category(_plan("step 1 held 2m of 6m", unreachable="Prometheus down")) == "unreachable"
    )


def test_observe_pass_counts_decisions_holds_queries_and_failures() -> None:
    metrics = ControllerMetrics()
    now = datetime(2026, 11, 25, tzinfo=UTC)
    plan = PassPlan(
        now=now,
        head="abc",
        policies=(_plan("step 1 held 2m of 6m"), _plan("go", Decision.ADVANCE)),
    )
    result = PassResult(plan, commits=("c1",), pushed=True)
    metrics.observe_pass(result, 0.3, 1.0, queries=4, provider_errors=1, pushes=1)
    metrics.observe_pass(
        None, 0.1, 2.0, queries=6, provider_errors=1, pushes=1, failure="git-error"
    )
    text = metrics.exposition().decode()
    assert 'policyengine_passes_total{result="ok"} 1.0' in text
    assert 'policyengine_passes_total{result="git-error"} 1.0' in text
    assert "policyengine_git_errors_total 1.0" in text
    assert 'policyengine_decisions_total{decision="advance"} 1.0' in text
    assert 'policyengine_holds_total{reason="dwell"} 1.0' in text
    assert "policyengine_prometheus_queries_total 6.0" in text  # running totals, not re-added
    assert "policyengine_prometheus_errors_total 1.0" in text
    assert "policyengine_git_commits_total 1.0" in text
    assert "policyengine_pass_duration_seconds_count 2.0" in text
    assert "policyengine_last_pass_timestamp_seconds 2.0" in text
