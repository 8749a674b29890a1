"""Always-valid confidence sequences: boundaries, small cases, and coverage under continuous looks."""

from __future__ import annotations

import math
import random

import pytest

from policyengine.analysis.sequential import (
    Levels,
    compare_proportions,
    mean_sequence,
    mixture_boundary,
    one_sided_boundary,
    proportion_sequence,
)

LEVELS = Levels(lower_alpha=0.05, upper_alpha=0.05, lower_rho=3.0, upper_rho=50.0)


def _half_normal_mixture(score: float, variance: float, rho: float) -> float:
    total = variance + rho
    tail = 0.5 * (1.0 + math.erf(score / math.sqrt(2.0 * total)))
    return 2.0 * math.sqrt(rho / total) * math.exp(score * score / (2.0 * total)) * tail


@pytest.mark.parametrize(
    ("variance", "rho", "alpha"),
    [(0.0, 1.0, 0.05), (10.0, 3.0, 0.0125), (400.0, 50.0, 0.05), (1e6, 10.0, 0.001)],
)
def test_mixture_boundary_is_the_formula_of_statistics_md(
    variance: float, rho: float, alpha: float
) -> None:
    expected = math.sqrt((variance + rho) * math.log((variance + rho) / (rho * alpha**2)))
    assert mixture_boundary(variance, rho, alpha) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("variance", "rho", "alpha"),
    [(0.0, 1.0, 0.05), (10.0, 3.0, 0.0125), (400.0, 50.0, 0.05), (1e6, 10.0, 0.001)],
)
def test_one_sided_boundary_sits_at_or_just_above_the_root(
    variance: float, rho: float, alpha: float
) -> None:
    bound = one_sided_boundary(variance, rho, alpha)
    # On the safe side: the mixture martingale has reached 1/alpha there, and barely more.
    assert _half_normal_mixture(bound, variance, rho) >= 1.0 / alpha
    assert _half_normal_mixture(bound * 0.999, variance, rho) < 1.0 / alpha
    assert bound < mixture_boundary(variance, rho, alpha)


def test_skew_term_widens_the_boundary_by_a_sixth_of_the_log_term() -> None:
    plain = one_sided_boundary(5.0, 3.0, 0.05)
    skewed = one_sided_boundary(5.0, 3.0, 0.05, jump=1.0)
    assert skewed - plain == pytest.approx(plain**2 / (5.0 + 3.0) / 6.0)


@pytest.mark.parametrize(
    ("windows", "estimate", "used"),
    [
        ([], 0.0, 0),
        ([(1.0, 0.0, 1.0, 100.0)], 0.0, 0),  # the baseline saw nothing: no information
        ([(10.0, 1000.0, 20.0, 1000.0)], 0.01, 1),
        ([(10.0, 1000.0, 2.0, 100.0), (0.0, 0.0, 5.0, 50.0)], 0.01, 1),
    ],
)
def test_stratified_estimate(
    windows: list[tuple[float, float, float, float]], estimate: float, used: int
) -> None:
    comparison = compare_proportions(windows, LEVELS)
    assert comparison.windows == used
    assert comparison.interval.estimate == pytest.approx(estimate)
    if not used:
        assert comparison.interval.lower == -math.inf
        assert comparison.interval.upper == math.inf


def test_stratification_removes_confounding_by_weight_changes() -> None:
    # The error rate doubles when the candidate's weight goes up (time of day): pooled rates would
    # blame the candidate, the per-window comparison sees that both versions moved together.
    windows = [(9.0, 900.0, 1.0, 100.0), (10.0, 500.0, 10.0, 500.0)]
    pooled = 11.0 / 600.0 - 19.0 / 1400.0
    comparison = compare_proportions(windows, LEVELS)
    assert pooled > 0.004
    assert comparison.interval.estimate == pytest.approx(0.0)


def test_expected_events_split_the_observed_ones() -> None:
    comparison = compare_proportions([(30.0, 900.0, 10.0, 100.0)], LEVELS)
    assert comparison.expected_candidate_events == pytest.approx(4.0)
    assert comparison.expected_baseline_events == pytest.approx(36.0)


def _binomial(rng: random.Random, n: int, p: float) -> int:
    """Exact binomial draw by geometric skips between successes (fast for rare events)."""
    count, position, log_q = 0, -1, math.log1p(-p)
    while True:
        position += 1 + math.floor(math.log(1.0 - rng.random()) / log_q)
        if position >= n:
            return count
        count += 1


def _concurrent_windows(
    rng: random.Random, looks: int, baseline_rate: float, candidate_rate: float
) -> list[tuple[float, float, float, float]]:
    windows = []
    for look in range(looks):
        share = min(0.5, (1 + look // 6) / 10)  # 10 %, 20 %, ... 50 % as a canary climbs
        total = 800
        n_c = _binomial(rng, total, share)
        n_b = total - n_c
        windows.append(
            (
                float(_binomial(rng, n_b, baseline_rate)),
                float(n_b),
                float(_binomial(rng, n_c, candidate_rate)),
                float(n_c),
            )
        )
    return windows


def test_harm_bound_misses_the_true_difference_at_any_look_in_at_most_alpha_of_aa_runs() -> None:
    rng = random.Random(20240301)
    runs, looks, alpha = 500, 30, 0.05
    levels = Levels(lower_alpha=alpha, upper_alpha=0.05, lower_rho=3.0, upper_rho=50.0)
    # The interval is intersected over every prefix: excluding 0 at the end means at some look.
    misses = sum(
        compare_proportions(_concurrent_windows(rng, looks, 0.02, 0.02), levels).interval.lower > 0
        for _ in range(runs)
    )
    assert misses / runs <= alpha + 0.02


def test_margin_bound_misses_a_candidate_at_the_margin_in_at_most_beta_of_runs() -> None:
    rng = random.Random(7)
    runs, looks, beta, margin = 500, 30, 0.05, 0.01
    levels = Levels(lower_alpha=0.05, upper_alpha=beta, lower_rho=3.0, upper_rho=50.0)
    misses = sum(
        compare_proportions(
            _concurrent_windows(rng, looks, 0.02, 0.02 + margin), levels, margin
        ).interval.upper
        < margin
        for _ in range(runs)
    )
    assert misses / runs <= beta + 0.02


def test_margin_bound_concludes_for_an_equal_candidate_with_enough_data() -> None:
    rng = random.Random(11)
    windows = _concurrent_windows(rng, 240, 0.02, 0.02)
    comparison = compare_proportions(windows, LEVELS, margin=0.01)
    assert comparison.interval.upper < 0.01
    assert comparison.interval.lower < 0 < comparison.interval.upper


def test_proportion_sequence_covers_the_rate_at_every_look() -> None:
    rng = random.Random(3)
    runs, looks, rate = 300, 30, 0.05
    misses = 0
    for _ in range(runs):
        counts = [(float(_binomial(rng, 200, rate)), 200.0) for _ in range(looks)]
        interval = proportion_sequence(counts, LEVELS)
        misses += not interval.lower <= rate <= interval.upper
    assert misses / runs <= 0.1 + 0.03


def test_proportion_sequence_with_a_null_rate_uses_the_variance_at_that_rate() -> None:
    counts = [(0.0, 1000.0)]
    at_bound = proportion_sequence(counts, LEVELS, null_rate=0.01)
    plug_in = proportion_sequence(counts, LEVELS)
    assert at_bound.estimate == plug_in.estimate == 0.0
    assert at_bound.upper > plug_in.upper
    assert proportion_sequence([], LEVELS).lower == -math.inf


def test_mean_sequence_covers_the_mean() -> None:
    rng = random.Random(5)
    runs, misses = 300, 0
    for _ in range(runs):
        interval = mean_sequence((rng.gauss(0.1, 0.05) for _ in range(40)), LEVELS, scale=0.05)
        misses += not interval.lower <= 0.1 <= interval.upper
    assert misses / runs <= 0.1 + 0.03
    assert mean_sequence([], LEVELS).upper == math.inf
    single = mean_sequence([0.3], LEVELS, scale=0.1)
    assert single.lower < 0.3 < single.upper
