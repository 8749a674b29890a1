"""Assessment: verdicts per candidate and objective, hold reasons, samples and evidence rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from policyengine.analysis.assessment import assess, evidence_rows
from policyengine.analysis.observations import (
    DataStatus,
    GaugePoint,
    MetricObservation,
    Observations,
    WindowCounts,
)
from policyengine.analysis.verdict import Assessment, Verdict
from policyengine.metrics.catalog import metrics_of
from policyengine.policy.models import ReleasePolicy
from policyengine.values import TrafficSplit

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
SPLIT = TrafficSplit.of({"v1": 50, "v2": 50})


def _policy(*objectives: dict[str, Any], **analysis: Any) -> ReleasePolicy:
    return ReleasePolicy.model_validate(
        {
            "apiVersion": "policyengine.io/v1alpha1",
            "kind": "ReleasePolicy",
            "metadata": {"name": "fraud", "namespace": "ml"},
            "spec": {
                "target": {"router": "istio", "manifests": [{"path": "vs.yaml"}]},
                "versions": [
                    {"name": "v1", "role": "baseline"},
                    {"name": "v2", "role": "candidate"},
                ],
                "strategy": {"type": "canary", "steps": [10, 50]},
                "objectives": list(objectives),
                "analysis": analysis,
                "metrics": {
                    "templates": {
                        "errors": {"type": "proportion", "events": "e", "total": "t"},
                        "latency": {"type": "histogram", "buckets": "b"},
                        "spd": {"type": "gauge", "query": "q"},
                    }
                },
            },
        }
    )


ERRORS_RELATIVE = {"metric": "errors", "maxIncrease": 0.001, "maxRelativeIncrease": 0.2}
ERRORS_BOTH = {**ERRORS_RELATIVE, "max": 0.01}


def _windows(minutes: int, events: float, total: float, first: int = 0) -> tuple[WindowCounts, ...]:
    return tuple(WindowCounts(START + (first + k) * MINUTE, events, total) for k in range(minutes))


def _proportion(
    baseline: tuple[WindowCounts, ...], candidate: tuple[WindowCounts, ...], **extra: Any
) -> MetricObservation:
    return MetricObservation(
        "errors", "proportion", DataStatus.OK, {"v1": baseline, "v2": candidate}, **extra
    )


def _assess(
    policy: ReleasePolicy,
    observation: MetricObservation,
    minutes: int,
    key: str = "errors",
    traffic: dict[str, tuple[WindowCounts, ...]] | None = None,
    split: TrafficSplit = SPLIT,
    step_started_at: datetime = START,
) -> Assessment:
    observations = Observations(
        metrics={key: observation},
        traffic=traffic if traffic is not None else dict(observation.windows),
    )
    return assess(
        policy,
        metrics_of(policy)[1],
        observations,
        split,
        step_started_at,
        START + minutes * MINUTE,
    )


def _verdicts(assessment: Assessment) -> dict[str, Verdict]:
    return {result.check: result.verdict for result in assessment.results}


@pytest.mark.parametrize(
    ("minutes", "baseline_errors", "candidate_errors", "expected"),
    [
        # 5,000 requests per version per minute at 0.5 %: an hour shows "no worse than +0.1 pp".
        (60, 25.0, 25.0, Verdict.PASS),
        # Too early to say either way.
        (3, 25.0, 25.0, Verdict.INCONCLUSIVE),
        # Three times the errors: harm, already after two minutes.
        (2, 25.0, 75.0, Verdict.FAIL),
        # Better than the baseline: passes.
        (60, 25.0, 15.0, Verdict.PASS),
        # 1.5x stays inconclusive early, then fails with enough traffic.
        (1, 25.0, 37.5, Verdict.INCONCLUSIVE),
        (60, 25.0, 37.5, Verdict.FAIL),
    ],
)
def test_relative_objective(
    minutes: int, baseline_errors: float, candidate_errors: float, expected: Verdict
) -> None:
    observation = _proportion(
        _windows(minutes, baseline_errors, 5000.0), _windows(minutes, candidate_errors, 5000.0)
    )
    assessment = _assess(_policy(ERRORS_RELATIVE), observation, minutes)
    assert _verdicts(assessment) == {"vs baseline": expected}
    (result,) = assessment.results
    assert result.version == "v2"
    assert result.objective == "errors"
    evidence = result.evidence
    assert evidence.lower is not None and evidence.upper is not None
    assert evidence.lower <= evidence.estimate <= evidence.upper  # type: ignore[operator]
    assert evidence.samples == minutes * 5000
    assert evidence.baseline == pytest.approx(baseline_errors / 5000.0)
    assert "stratified" in evidence.test
    assert not assessment.hold_reasons


def test_fewer_than_min_events_never_passes() -> None:
    # No errors at all in 200 requests per version: nothing to compare yet.
    observation = _proportion(_windows(60, 0.0, 200.0), _windows(60, 0.0, 200.0))
    assessment = _assess(_policy(ERRORS_RELATIVE, minEvents=10), observation, 60)
    (result,) = assessment.results
    assert result.verdict is Verdict.INCONCLUSIVE
    assert "minEvents" in result.reason


def test_catastrophic_failure_below_min_events() -> None:
    # 2 expected candidate events but 40 observed: fails long before minEvents is reached.
    observation = _proportion(_windows(1, 2.0, 1000.0), _windows(1, 40.0, 1000.0))
    assessment = _assess(_policy(ERRORS_RELATIVE, minEvents=50), observation, 1)
    assert _verdicts(assessment) == {"vs baseline": Verdict.FAIL}


def test_windows_not_yet_complete_are_ignored() -> None:
    observation = _proportion(_windows(3, 25.0, 5000.0), _windows(3, 75.0, 5000.0))
    early = _assess(_policy(ERRORS_RELATIVE), observation, 1)
    assert early.results[0].evidence.samples == 5000


@pytest.mark.parametrize(
    ("candidate_errors", "objective", "expected", "total"),
    [
        # An A/A candidate at 0.9 % next to a 1 % bound: not rolled back, and promoted because it
        # is shown no worse than the baseline while under the bound.
        (45.0, ERRORS_BOTH, {"vs baseline": Verdict.PASS, "≤ 0.01": Verdict.PASS}, 5000.0),
        # The same candidate without a relative bound: never failed, not provably under 1 %.
        (4.5, {"metric": "errors", "max": 0.01}, {"≤ 0.01": Verdict.INCONCLUSIVE}, 500.0),
        # Well under the bound: passes on its own.
        (10.0, {"metric": "errors", "max": 0.01}, {"≤ 0.01": Verdict.PASS}, 5000.0),
        # Clearly above: fails.
        (75.0, {"metric": "errors", "max": 0.01}, {"≤ 0.01": Verdict.FAIL}, 5000.0),
        # A lower bound on a success-like rate.
        (4990.0, {"metric": "errors", "min": 0.99}, {"≥ 0.99": Verdict.PASS}, 5000.0),
        (4900.0, {"metric": "errors", "min": 0.99}, {"≥ 0.99": Verdict.FAIL}, 5000.0),
    ],
)
def test_absolute_bounds(
    candidate_errors: float, objective: dict[str, Any], expected: dict[str, Verdict], total: float
) -> None:
    baseline = 0.998 if "min" in objective else 0.009
    observation = _proportion(
        _windows(60, baseline * total, total), _windows(60, candidate_errors, total)
    )
    assert _verdicts(_assess(_policy(objective), observation, 60)) == expected


def test_latency_objective_reads_the_threshold_key() -> None:
    objective = {"metric": "latency", "threshold": 250, "max": 0.01, "maxRelativeIncrease": 0.2}
    observation = MetricObservation(
        "latency",
        "proportion",
        DataStatus.OK,
        {"v1": _windows(5, 40.0, 5000.0), "v2": _windows(5, 400.0, 5000.0)},
        threshold=250.0,
    )
    assessment = _assess(_policy(objective), observation, 5, key="latency@250")
    assert _verdicts(assessment) == {"vs baseline": Verdict.FAIL, "≤ 0.01": Verdict.FAIL}
    missing = _assess(_policy(objective), observation, 5, key="latency")
    assert {r.verdict for r in missing.results} == {Verdict.INCONCLUSIVE}
    assert missing.hold_reasons


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (DataStatus.NO_DATA, Verdict.INCONCLUSIVE),
        (DataStatus.QUERY_ERROR, Verdict.ERROR),
        (DataStatus.UNREACHABLE, Verdict.ERROR),
    ],
)
def test_missing_data_holds_with_the_message(status: DataStatus, verdict: Verdict) -> None:
    observation = MetricObservation("errors", "proportion", status, message="http://prom:9090 down")
    assessment = _assess(_policy(ERRORS_BOTH), observation, 10, traffic={})
    assert {r.verdict for r in assessment.results} == {verdict}
    assert len(assessment.results) == 2
    assert any("http://prom:9090 down" in reason for reason in assessment.hold_reasons)
    assert not assessment.all_pass


def test_no_requests_for_the_candidate_is_no_data() -> None:
    observation = _proportion(_windows(10, 25.0, 5000.0), ())
    assessment = _assess(_policy(ERRORS_RELATIVE), observation, 10)
    assert _verdicts(assessment) == {"vs baseline": Verdict.INCONCLUSIVE}
    assert assessment.hold_reasons


def test_unknown_metric_is_an_error() -> None:
    observation = _proportion(_windows(10, 25.0, 5000.0), _windows(10, 25.0, 5000.0))
    assessment = _assess(_policy({"metric": "nope", "max": 0.1}), observation, 10)
    assert _verdicts(assessment) == {"≤ 0.1": Verdict.ERROR}
    assert "nope" in assessment.hold_reasons[0]


def test_sample_ratio_mismatch_holds_with_the_split() -> None:
    split = TrafficSplit.of({"v1": 90, "v2": 10})
    traffic = {"v1": _windows(10, 0.0, 9500.0), "v2": _windows(10, 0.0, 500.0)}
    observation = _proportion(traffic["v1"], traffic["v2"])
    assessment = _assess(_policy(ERRORS_RELATIVE), observation, 10, traffic=traffic, split=split)
    (reason,) = assessment.hold_reasons
    assert "sample ratio mismatch" in reason
    assert "v2 4500 (5.0 %)" in reason  # nine windows: the step's first is skipped
    assert "v2 10.0 %" in reason
    assert assessment.samples == {"v1": 95000, "v2": 5000}


def test_first_window_of_a_step_may_carry_the_old_split() -> None:
    split = TrafficSplit.of({"v1": 80, "v2": 20})
    step = START + 5 * MINUTE
    old = {"v1": _windows(6, 0.0, 9000.0), "v2": _windows(6, 0.0, 1000.0)}
    new = {"v1": _windows(4, 0.0, 8000.0, first=6), "v2": _windows(4, 0.0, 2000.0, first=6)}
    traffic = {name: old[name] + new[name] for name in old}
    observation = _proportion(traffic["v1"], traffic["v2"])
    assessment = _assess(
        _policy(ERRORS_RELATIVE),
        observation,
        10,
        traffic=traffic,
        split=split,
        step_started_at=step,
    )
    assert not assessment.hold_reasons
    assert assessment.samples == {"v1": 41000, "v2": 9000}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.02, 0.03, 0.01], Verdict.PASS),
        ([0.2, 0.25, 0.3], Verdict.FAIL),
        ([0.05, 0.12, 0.06], Verdict.INCONCLUSIVE),
        ([-0.2, -0.15], Verdict.FAIL),
    ],
)
def test_gauge_range(values: list[float], expected: Verdict) -> None:
    points = tuple(GaugePoint(START + k * MINUTE, v) for k, v in enumerate(values))
    observation = MetricObservation("spd", "gauge", DataStatus.OK, gauges={"v2": points})
    policy = _policy({"metric": "spd", "min": -0.1, "max": 0.1})
    assessment = _assess(policy, observation, len(values), key="spd", traffic={})
    assert _verdicts(assessment) == {"range": expected}
    assert assessment.results[0].evidence.estimate == pytest.approx(sum(values) / len(values))


def test_gauge_without_values_holds() -> None:
    observation = MetricObservation("spd", "gauge", DataStatus.OK, gauges={"v2": ()})
    policy = _policy({"metric": "spd", "min": -0.1, "max": 0.1})
    assessment = _assess(policy, observation, 3, key="spd", traffic={})
    assert _verdicts(assessment) == {"range": Verdict.INCONCLUSIVE}
    assert assessment.hold_reasons


def test_gauge_relative_to_the_baseline() -> None:
    def points(value: float) -> tuple[GaugePoint, ...]:
        return tuple(GaugePoint(START + k * MINUTE, value) for k in range(3))

    policy = _policy({"metric": "spd", "maxIncrease": 0.05})
    worse = MetricObservation(
        "spd", "gauge", DataStatus.OK, gauges={"v1": points(0.01), "v2": points(0.1)}
    )
    same = MetricObservation(
        "spd", "gauge", DataStatus.OK, gauges={"v1": points(0.01), "v2": points(0.02)}
    )
    assert _verdicts(_assess(policy, worse, 3, key="spd", traffic={})) == {
        "vs baseline": Verdict.FAIL
    }
    assert _verdicts(_assess(policy, same, 3, key="spd", traffic={})) == {
        "vs baseline": Verdict.PASS
    }


def test_alpha_is_split_between_harm_tests() -> None:
    observation = _proportion(_windows(5, 25.0, 5000.0), _windows(5, 25.0, 5000.0))
    one = _assess(_policy(ERRORS_RELATIVE), observation, 5).results[0].evidence.test
    two = _assess(_policy(ERRORS_BOTH), observation, 5).results[0].evidence.test
    assert "harm α=0.05" in one
    assert "harm α=0.025" in two


def test_evidence_rows() -> None:
    observation = _proportion(_windows(2, 25.0, 5000.0), _windows(2, 75.0, 5000.0))
    rows = evidence_rows(_assess(_policy(ERRORS_BOTH), observation, 2))
    assert [row["check"] for row in rows] == ["vs baseline", "≤ 0.01"]
    assert rows[0]["verdict"] == "fail"
    assert rows[0]["version"] == "v2"
    assert rows[0]["interval"].startswith("[")
    assert rows[0]["samples"] == "10000 / 10000"
    assert rows[0]["baseline"] == "0.005"
