"""The simulator's random draws: right support, right mean and variance, same seed same draws."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from policyengine.sim.draws import binomial, multinomial, poisson


@pytest.mark.parametrize(
    ("n", "p"),
    [(20, 0.05), (1000, 0.002), (5000, 0.01), (6000, 0.3), (100, 0.9), (50_000, 0.5)],
)
def test_binomial_has_the_mean_and_variance_of_the_distribution(n: int, p: float) -> None:
    rng = random.Random(7)
    draws = [binomial(rng, n, p) for _ in range(4000)]
    assert all(0 <= d <= n for d in draws)
    mean, variance = n * p, n * p * (1 - p)
    # Five standard errors of the mean, and a loose band on the variance.
    assert abs(statistics.fmean(draws) - mean) < 5 * math.sqrt(variance / len(draws))
    assert 0.85 * variance < statistics.variance(draws) < 1.15 * variance


@pytest.mark.parametrize(("n", "p", "expected"), [(0, 0.5, 0), (10, 0.0, 0), (10, 1.0, 10)])
def test_binomial_edges(n: int, p: float, expected: int) -> None:
    assert binomial(random.Random(1), n, p) == expected


@pytest.mark.parametrize("mean", [0.5, 4.0, 30.0, 3000.0])
def test_poisson_has_mean_equal_to_variance(mean: float) -> None:
    rng = random.Random(11)
    draws = [poisson(rng, mean) for _ in range(4000)]
    assert min(draws) >= 0
    assert abs(statistics.fmean(draws) - mean) < 5 * math.sqrt(mean / len(draws))
    assert 0.85 * mean < statistics.variance(draws) < 1.15 * mean


def test_multinomial_keeps_every_draw_and_follows_the_probabilities() -> None:
    rng = random.Random(3)
    probabilities = [0.0, 0.7, 0.2, 0.0, 0.1]
    totals = [0] * len(probabilities)
    for _ in range(500):
        counts = multinomial(rng, 1000, probabilities)
        assert sum(counts) == 1000
        assert counts[0] == counts[3] == 0
        totals = [t + c for t, c in zip(totals, counts, strict=True)]
    shares = [t / 500_000 for t in totals]
    assert shares == pytest.approx(probabilities, abs=0.005)


def test_the_same_seed_gives_the_same_draws() -> None:
    def run(seed: int) -> list[int]:
        rng = random.Random(seed)
        return [binomial(rng, 5000, 0.01) + poisson(rng, 200.0) for _ in range(20)]

    assert run(5) == run(5)
    assert run(5) != run(6)


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="n >= 0"):
        binomial(random.Random(1), -1, 0.5)
    with pytest.raises(ValueError, match="mean >= 0"):
        poisson(random.Random(1), -1.0)
