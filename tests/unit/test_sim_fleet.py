"""The simulated fleet: traffic follows the split, errors and latency follow each version's profile."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from policyengine.sim.fleet import (
    Fleet,
    FleetState,
    IntervalResult,
    LatencyCounts,
    ModelProfile,
    VersionKey,
    VersionProfile,
    splits_of,
)
from policyengine.sim.latency import LATENCY_GRID_MS, LatencyProfile
from policyengine.values import TrafficSplit

START = datetime(2024, 3, 1, 0, 0, tzinfo=UTC)
POLICY = "models/fraud"


def fleet(*versions: VersionProfile, rps: float = 100.0, amplitude: float = 0.0) -> Fleet:
    return Fleet((ModelProfile(POLICY, "models", "fraud", versions, rps, amplitude),))


def run(
    the_fleet: Fleet, split: TrafficSplit | None, intervals: int, seed: int = 1
) -> tuple[FleetState, list[IntervalResult]]:
    rng = random.Random(seed)
    state = the_fleet.start(START)
    results = []
    splits = {POLICY: split} if split else {}
    for _ in range(intervals):
        state, result = the_fleet.advance(state, splits, rng)
        results.append(result)
    return state, results


@pytest.mark.parametrize(
    ("weights", "expected_shares"),
    [
        ({"v1": 90, "v2": 10}, {"v1": 0.9, "v2": 0.1}),
        ({"v1": 50, "v2": 50}, {"v1": 0.5, "v2": 0.5}),
        ({"v1": 100, "v2": 0}, {"v1": 1.0, "v2": 0.0}),
        ({"v1": 0, "v2": 100}, {"v1": 0.0, "v2": 1.0}),
    ],
)
def test_traffic_is_split_by_the_weights(
    weights: dict[str, int], expected_shares: dict[str, float]
) -> None:
    state, _ = run(fleet(VersionProfile("v1"), VersionProfile("v2")), TrafficSplit.of(weights), 30)
    requests = {v: state.totals[VersionKey(POLICY, v)].requests for v in weights}
    total = sum(requests.values())
    assert total == pytest.approx(100 * 60 * 30, rel=0.01)
    for version, share in expected_shares.items():
        assert requests[version] / total == pytest.approx(share, abs=0.005)


def test_a_policy_without_a_split_serves_nothing() -> None:
    state, results = run(fleet(VersionProfile("v1"), VersionProfile("v2")), None, 3)
    assert all(t.requests == 0 for t in state.totals.values())
    assert [r.end - r.start for r in results] == [timedelta(minutes=1)] * 3


def test_mirrored_traffic_is_a_copy_counted_on_the_shadow_and_never_converts() -> None:
    split = TrafficSplit.of({"v1": 100, "v2": 0}, mirror_to="v2", mirror_percent=25)
    state, _ = run(
        fleet(VersionProfile("v1", conversion_rate=0.5), VersionProfile("v2", conversion_rate=0.5)),
        split,
        20,
    )
    live = state.totals[VersionKey(POLICY, "v1")]
    shadow = state.totals[VersionKey(POLICY, "v2")]
    assert shadow.requests == shadow.mirrored
    assert shadow.requests / live.requests == pytest.approx(0.25, abs=0.01)
    assert shadow.conversions == 0
    assert live.conversions / live.requests == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(
    ("profile", "error_rate", "slow_threshold", "slow_fraction"),
    [
        (
            VersionProfile("v1", error_rate=0.005, latency_p50_ms=20, latency_p99_ms=100),
            0.005,
            100.0,
            0.01,
        ),
        (
            VersionProfile("v1", error_rate=0.05, latency_p50_ms=50, latency_p99_ms=500),
            0.05,
            500.0,
            0.01,
        ),
        (
            VersionProfile("v1", error_rate=0.0, latency_p50_ms=10, latency_p99_ms=1000),
            0.0,
            10.0,
            0.5,
        ),
    ],
)
def test_errors_and_latency_follow_the_profile(
    profile: VersionProfile, error_rate: float, slow_threshold: float, slow_fraction: float
) -> None:
    state, _ = run(fleet(profile, VersionProfile("v2")), TrafficSplit.of({"v1": 100}), 60)
    traffic = state.totals[VersionKey(POLICY, "v1")]
    n = traffic.requests
    assert traffic.errors / n == pytest.approx(error_rate, abs=5 * math.sqrt(0.05 / n) + 1e-12)
    slow = traffic.latency.slower_than(slow_threshold) / n
    assert slow == pytest.approx(slow_fraction, abs=5 * math.sqrt(0.25 / n))
    expected_mean = math.exp(profile.latency.mu + profile.latency.sigma**2 / 2)
    assert traffic.latency.sum_ms / n == pytest.approx(expected_mean, rel=0.03)


def test_counters_are_cumulative_and_equal_the_sum_of_the_intervals() -> None:
    split = TrafficSplit.of({"v1": 80, "v2": 20})
    state, results = run(
        fleet(VersionProfile("v1"), VersionProfile("v2", error_rate=0.02)), split, 15
    )
    for version in ("v1", "v2"):
        key = VersionKey(POLICY, version)
        per_interval = [r.traffic[key] for r in results]
        assert state.totals[key].requests == sum(t.requests for t in per_interval)
        assert state.totals[key].errors == sum(t.errors for t in per_interval)
        buckets = [sum(col) for col in zip(*(t.latency.buckets for t in per_interval), strict=True)]
        assert list(state.totals[key].latency.buckets) == buckets
    assert state.at == START + timedelta(minutes=15)
    assert state.intervals == 15


def test_the_diurnal_pattern_peaks_at_six_and_bottoms_at_eighteen_utc() -> None:
    model = ModelProfile(POLICY, "models", "fraud", (VersionProfile("v1"),), 100.0, 0.5)
    assert model.rate_at(START) == pytest.approx(100.0)
    assert model.rate_at(START + timedelta(hours=6)) == pytest.approx(150.0)
    assert model.rate_at(START + timedelta(hours=18)) == pytest.approx(50.0)


def test_the_same_seed_replays_the_same_fleet() -> None:
    versions = (VersionProfile("v1"), VersionProfile("v2"))
    split = TrafficSplit.of({"v1": 70, "v2": 30})
    first, _ = run(fleet(*versions, amplitude=0.3), split, 5, seed=42)
    again, _ = run(fleet(*versions, amplitude=0.3), split, 5, seed=42)
    other, _ = run(fleet(*versions, amplitude=0.3), split, 5, seed=43)
    assert first == again
    assert first != other


def test_fairness_gauges_wander_around_their_profile_when_noisy() -> None:
    quiet = VersionProfile("v1", spd=0.05, dir=0.9)
    noisy = VersionProfile("v2", spd=-0.2, dir=0.7, fairness_noise=0.01)
    state, _ = run(fleet(quiet, noisy), TrafficSplit.of({"v1": 100}), 3)
    assert state.fairness[VersionKey(POLICY, "v1")].spd == 0.05
    assert state.fairness[VersionKey(POLICY, "v2")].spd == pytest.approx(-0.2, abs=0.06)
    assert state.fairness[VersionKey(POLICY, "v2")].spd != -0.2


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: fleet(VersionProfile("v1")).advance(
                fleet(VersionProfile("v1")).start(START),
                splits_of({POLICY: {"v9": 100}}),
                random.Random(1),
            ),
            "v9",
        ),
        (lambda: fleet(VersionProfile("v1")).start(datetime(2024, 1, 1)), "timezone"),
        (lambda: VersionProfile("v1", error_rate=1.5), "error rate"),
        (lambda: VersionProfile("v1", latency_p50_ms=100, latency_p99_ms=50), "p50 < p99"),
        (lambda: fleet(VersionProfile("v1"), VersionProfile("v1")), "unique"),
    ],
)
def test_mistakes_in_the_setup_are_named(build: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()  # type: ignore[operator]


def _counts(per_bucket: dict[float, int]) -> LatencyCounts:
    buckets = [0] * (len(LATENCY_GRID_MS) + 1)
    for bound, count in per_bucket.items():
        index = len(LATENCY_GRID_MS) if math.isinf(bound) else LATENCY_GRID_MS.index(bound)
        buckets[index] = count
    return LatencyCounts(sum(per_bucket.values()), 0.0, tuple(buckets))


@pytest.mark.parametrize(
    ("per_bucket", "threshold", "slower", "q", "quantile"),
    [
        ({10.0: 50, 20.0: 50}, 10.0, 50, 0.5, 10.0),
        ({10.0: 50, 20.0: 50}, 20.0, 0, 1.0, 20.0),
        ({100.0: 99, 1000.0: 1}, 100.0, 1, 0.99, 100.0),
        # Like histogram_quantile, a rank in +Inf answers the highest finite bound.
        ({100.0: 90, math.inf: 10}, 100.0, 10, 0.95, LATENCY_GRID_MS[-1]),
    ],
)
def test_latency_counts_answer_slow_fractions_and_quantiles(
    per_bucket: dict[float, int], threshold: float, slower: int, q: float, quantile: float
) -> None:
    counts = _counts(per_bucket)
    assert counts.slower_than(threshold) == slower
    assert counts.quantile_ms(q) == pytest.approx(quantile)


def test_a_threshold_off_the_bucket_grid_is_refused() -> None:
    with pytest.raises(ValueError, match="bucket bound"):
        _counts({10.0: 1}).slower_than(11.0)
    assert LatencyCounts().quantile_ms(0.5) is None
    assert LatencyProfile(20, 200).fraction_slower_than(200) == pytest.approx(0.01)
