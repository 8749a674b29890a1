"""Sample-ratio mismatch: χ² survival function and the test of traffic against Git's weights."""

from __future__ import annotations

import math
import random

import pytest

from policyengine.analysis.srm import (
    chi_square_survival,
    look_threshold,
    regularized_upper_gamma,
    sample_ratio,
)


@pytest.mark.parametrize(
    ("statistic", "dof", "p"),
    [
        (3.841458820694124, 1, 0.05),
        (10.827566170662733, 1, 0.001),
        (5.991464547107979, 2, 0.05),
        (7.814727903251178, 3, 0.05),
        (16.918977604620448, 9, 0.05),
        (0.0, 1, 1.0),
        (2.0, 2, math.exp(-1.0)),
    ],
)
def test_chi_square_survival_matches_tables(statistic: float, dof: int, p: float) -> None:
    assert chi_square_survival(statistic, dof) == pytest.approx(p, rel=1e-6)


@pytest.mark.parametrize("x", [0.01, 0.3, 1.0, 2.5, 10.0, 40.0])
def test_upper_gamma_of_one_half_is_erfc(x: float) -> None:
    assert regularized_upper_gamma(0.5, x) == pytest.approx(math.erfc(math.sqrt(x)), rel=1e-9)


@pytest.mark.parametrize(
    ("requests", "weights", "mismatch"),
    [
        ({"v1": [900.0, 905.0], "v2": [100.0, 95.0]}, {"v1": 90, "v2": 10}, False),
        ({"v1": [950.0, 960.0], "v2": [50.0, 40.0]}, {"v1": 90, "v2": 10}, True),
        ({"v1": [500.0, 520.0], "v2": [500.0, 480.0]}, {"v1": 50, "v2": 50}, False),
        # A version at weight 0 (smoke tests sent to it directly) is not part of the split.
        ({"v1": [900.0], "v2": [100.0], "v3": [300.0]}, {"v1": 90, "v2": 10, "v3": 0}, False),
    ],
)
def test_sample_ratio(
    requests: dict[str, list[float]], weights: dict[str, int], mismatch: bool
) -> None:
    result = sample_ratio(requests, weights)
    assert result is not None
    assert result.mismatch is mismatch
    assert sum(result.expected.values()) == pytest.approx(sum(result.observed.values()))


def test_opposite_imbalances_in_two_windows_do_not_cancel() -> None:
    # Pooled, 900/100 then 100/900 is a perfect 1000/1000 (p = 1): tested per window, a mismatch.
    result = sample_ratio({"v1": [900.0, 100.0], "v2": [100.0, 900.0]}, {"v1": 50, "v2": 50})
    assert result is not None
    assert result.expected == {"v1": 1000.0, "v2": 1000.0}
    assert result.mismatch and result.p_value < 1e-100
    assert "expected v1 50.0 %" in result.describe()
    assert "over 2 windows" in result.describe()


def test_repeated_looks_spend_the_p_value() -> None:
    # The k-th look tests at p/(k(k+1)): over all looks of a step the false-hold rate is ≤ p.
    assert look_threshold(0.001, 1) == pytest.approx(0.0005)
    assert sum(look_threshold(0.001, k) for k in range(1, 100_000)) < 0.001
    # A split followed exactly except for noise never holds, however many windows are looked at.
    rng = random.Random(7)
    false_holds = 0
    for _ in range(200):
        v2 = [float(sum(rng.random() < 0.1 for _ in range(300))) for _ in range(20)]
        v1 = [300.0 - x for x in v2]
        for looks in range(1, 21):
            result = sample_ratio({"v1": v1[:looks], "v2": v2[:looks]}, {"v1": 90, "v2": 10})
            if result is not None and result.mismatch:
                false_holds += 1
                break
    assert false_holds <= 2


@pytest.mark.parametrize(
    ("requests", "weights"),
    [
        ({"v1": [100.0]}, {"v1": 100}),
        ({"v1": [0.0], "v2": [0.0]}, {"v1": 50, "v2": 50}),
        ({"v1": [100.0]}, {"v1": 50, "v2": 50}),
    ],
)
def test_nothing_to_test(requests: dict[str, list[float]], weights: dict[str, int]) -> None:
    assert sample_ratio(requests, weights) is None
