"""PSI and two-sample KS on small literal samples, and the per-feature drift verdicts."""

from __future__ import annotations

import math
import random

import pytest

from policyengine.analysis.drift import (
    DriftLimits,
    assess_feature_drift,
    kolmogorov_smirnov,
    population_stability_index,
)
from policyengine.analysis.verdict import Verdict


def test_psi_of_identical_samples_is_zero() -> None:
    values = [float(i) for i in range(100)]
    assert population_stability_index(values, values) == pytest.approx(0.0)


def test_psi_of_a_shifted_sample_is_large_and_of_a_resample_small() -> None:
    rng = random.Random(7)
    reference = [rng.gauss(0, 1) for _ in range(5000)]
    resample = [rng.gauss(0, 1) for _ in range(5000)]
    shifted = [rng.gauss(1, 1) for _ in range(5000)]
    assert population_stability_index(reference, resample) < 0.02
    assert population_stability_index(reference, shifted) > 0.25


def test_psi_of_categories_counts_a_category_only_one_side_has() -> None:
    reference = ["a"] * 50 + ["b"] * 50
    current = ["a"] * 50 + ["c"] * 50
    # b vanished and c appeared: both bins contribute (0.5 - 1e-4) * ln(0.5 / 1e-4) ≈ 4.26
    assert population_stability_index(reference, current) == pytest.approx(8.51, abs=0.01)


def test_ks_statistic_and_p_value_match_known_values() -> None:
    # Disjoint samples: D = 1; equal samples: D = 0 and p = 1.
    assert kolmogorov_smirnov([1, 2, 3], [4, 5, 6]).statistic == 1.0
    same = kolmogorov_smirnov([1.0, 2.0, 3.0] * 20, [1.0, 2.0, 3.0] * 20)
    assert same.statistic == 0.0 and same.p_value == 1.0
    # n = m = 100, D = 0.2: λ = (√50 + 0.12 + 0.11/√50)·0.2 ≈ 1.44, Q(λ) ≈ 0.031.
    result = kolmogorov_smirnov([float(i) for i in range(100)], [float(i) for i in range(20, 120)])
    assert result.statistic == pytest.approx(0.2)
    assert result.p_value == pytest.approx(0.031, abs=0.002)


def test_ks_under_the_null_rejects_about_alpha_of_the_time() -> None:
    rng = random.Random(11)
    rejections = 0
    trials = 400
    for _ in range(trials):
        a = [rng.random() for _ in range(80)]
        b = [rng.random() for _ in range(80)]
        rejections += kolmogorov_smirnov(a, b).p_value < 0.05
    assert rejections / trials < 0.08


def test_drift_verdicts_fail_the_drifted_feature_first_and_correct_for_features() -> None:
    rng = random.Random(3)
    stable = [rng.gauss(0, 1) for _ in range(500)]
    samples = {
        "age": (stable, [rng.gauss(0, 1) for _ in range(500)]),
        "income": (stable, [rng.gauss(0.8, 1) for _ in range(500)]),
        "region": (["eu"] * 10, ["eu"] * 10),
    }
    limits = {name: DriftLimits(max_psi=0.25, min_ks_p_value=0.01) for name in samples}
    results = assess_feature_drift(samples, limits, min_samples=50)
    assert results[0].feature == "income"
    assert results[0].verdict is Verdict.FAIL
    assert "PSI" in results[0].reason and "KS" in results[0].reason
    assert "over 2 features" in results[0].reason  # region is categorical: no KS
    by_name = {r.feature: r for r in results}
    assert by_name["age"].verdict is Verdict.PASS
    assert by_name["region"].verdict is Verdict.INCONCLUSIVE
    assert math.isnan(by_name["region"].psi)
