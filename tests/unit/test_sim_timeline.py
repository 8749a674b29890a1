"""The simulator's counts as report charts: weights per change, metrics per interval."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.sim.fleet import Fleet, IntervalResult, ModelProfile, VersionKey, VersionProfile
from policyengine.sim.timeline import metric_series, served_weights
from policyengine.values import TrafficSplit

T0 = datetime(2024, 1, 1, tzinfo=UTC)
POLICY = "ns/model"
FLEET = Fleet(
    (
        ModelProfile(
            POLICY,
            "ns",
            "model",
            (VersionProfile("v1", error_rate=0.01), VersionProfile("v2", error_rate=0.1)),
            rps=10.0,
        ),
    )
)
SCHEDULE = [{"v1": 100, "v2": 0}] * 2 + [{"v1": 50, "v2": 50}] * 3 + [{"v1": 100, "v2": 0}] * 2


def intervals() -> list[IntervalResult]:
    rng = random.Random(8)
    state = FLEET.start(T0)
    out = []
    for weights in SCHEDULE:
        state, result = FLEET.advance(state, {POLICY: TrafficSplit.of(weights)}, rng)
        out.append(result)
    return out


def test_weights_are_one_point_per_change() -> None:
    points = served_weights(intervals(), POLICY)
    assert [(p.at - T0, p.split.as_dict()) for p in points] == [
        (timedelta(0), {"v1": 100, "v2": 0}),
        (timedelta(minutes=2), {"v1": 50, "v2": 50}),
        (timedelta(minutes=5), {"v1": 100, "v2": 0}),
    ]
    assert served_weights(intervals(), "other/policy") == ()


@pytest.mark.parametrize("window", [1, 2])
def test_metrics_per_interval_with_gaps_where_a_version_had_no_traffic(window: int) -> None:
    results = intervals()
    errors, slow, rate = metric_series(
        results, POLICY, ["v1", "v2"], slow_threshold_ms=100.0, window=window, error_bound=0.05
    )
    assert (errors.unit, errors.bound, slow.unit, rate.unit) == ("%", 5.0, "%", "req/min")
    v2_errors = dict(errors.lines)["v2"]
    assert [value is None for _, value in v2_errors] == [
        True,
        True,
        False,
        False,
        False,
        True,
        True,
    ]
    key = VersionKey(POLICY, "v2")
    third = results[2].traffic[key]
    if window == 1:
        assert v2_errors[2][1] == pytest.approx(100 * third.errors / third.requests)
    fourth = results[3].traffic[key]
    pooled = third.plus(fourth) if window == 2 else fourth
    assert v2_errors[3][0] == results[3].end
    assert v2_errors[3][1] == pytest.approx(100 * pooled.errors / pooled.requests)
    assert dict(rate.lines)["v1"][0] == (
        T0 + timedelta(minutes=1),
        results[0].traffic[VersionKey(POLICY, "v1")].requests,
    )


def test_without_a_threshold_latency_is_the_p99() -> None:
    _, latency, _ = metric_series(intervals(), POLICY, ["v1"])
    assert (latency.title, latency.unit) == ("p99 latency", "ms")
    assert all(value and 50 < value < 400 for _, value in dict(latency.lines)["v1"])
    with pytest.raises(ValueError, match="window"):
        metric_series(intervals(), POLICY, ["v1"], window=0)
