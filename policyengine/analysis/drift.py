"""Distribution drift between two samples of one feature: population stability index and the
two-sample Kolmogorov–Smirnov test. Pure functions; the samples come from a golden replay or from
logged payloads, read by the shell.

Why both: PSI is what model-risk teams already read (0.1 "watch", 0.25 "act"), it handles
categorical values and is insensitive to sample size; KS gives a p-value for numeric features, so a
tiny shift on a huge sample and a big shift on a small one are told apart.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from policyengine.analysis.verdict import Evidence, ObjectiveResult, Verdict

# A bin that one sample never hits would make PSI infinite; a small floor is the common remedy and
# keeps the index finite and comparable across sample sizes.
EMPTY_BIN_FLOOR = 1e-4
DEFAULT_BINS = 10

Value = float | int | str | bool


@dataclass(frozen=True)
class KSResult:
    statistic: float  # sup |F_reference - F_current|
    p_value: float  # asymptotic two-sided p-value


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's drift between the reference (baseline) and the current (candidate) sample."""

    feature: str
    psi: float
    ks: KSResult | None  # None for categorical features
    reference_count: int
    current_count: int
    verdict: Verdict
    reason: str


def is_numeric(values: Sequence[Value]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def population_stability_index(
    reference: Sequence[Value], current: Sequence[Value], bins: int = DEFAULT_BINS
) -> float:
    """PSI = Σ (c_i − r_i) · ln(c_i / r_i) over bins of the reference distribution.

    Numeric features are cut at the reference's quantiles (so each bin holds about 1/bins of the
    reference); categorical ones use one bin per category seen in either sample.
    """
    if not reference or not current:
        raise ValueError("PSI needs two non-empty samples")
    if is_numeric(reference) and is_numeric(current):
        edges = _quantile_edges([float(v) for v in reference], bins)
        ref_share = _binned_shares([float(v) for v in reference], edges)
        cur_share = _binned_shares([float(v) for v in current], edges)
    else:
        categories = sorted({str(v) for v in reference} | {str(v) for v in current})
        ref_counts = Counter(str(v) for v in reference)
        cur_counts = Counter(str(v) for v in current)
        ref_share = [ref_counts[c] / len(reference) for c in categories]
        cur_share = [cur_counts[c] / len(current) for c in categories]
    total = 0.0
    for r, c in zip(ref_share, cur_share, strict=True):
        r, c = max(r, EMPTY_BIN_FLOOR), max(c, EMPTY_BIN_FLOOR)
        total += (c - r) * math.log(c / r)
    return total


def _quantile_edges(sample: list[float], bins: int) -> list[float]:
    values = sorted(sample)
    n = len(values)
    edges: list[float] = []
    for i in range(1, bins):
        edge = values[min(n - 1, (i * n) // bins)]
        if not edges or edge > edges[-1]:
            edges.append(edge)
    return edges


def _binned_shares(values: list[float], edges: list[float]) -> list[float]:
    counts = [0] * (len(edges) + 1)
    for v in values:
        counts[bisect_right(edges, v)] += 1
    return [c / len(values) for c in counts]


def kolmogorov_smirnov(reference: Sequence[float], current: Sequence[float]) -> KSResult:
    """Two-sample KS statistic with the asymptotic p-value (Stephens' small-sample correction)."""
    if not reference or not current:
        raise ValueError("KS needs two non-empty samples")
    a, b = sorted(reference), sorted(current)
    n, m = len(a), len(b)
    i = j = 0
    d = 0.0
    while i < n and j < m:
        x = min(a[i], b[j])
        while i < n and a[i] <= x:
            i += 1
        while j < m and b[j] <= x:
            j += 1
        d = max(d, abs(i / n - j / m))
    effective = math.sqrt(n * m / (n + m))
    return KSResult(d, _kolmogorov_survival((effective + 0.12 + 0.11 / effective) * d))


def _kolmogorov_survival(lam: float) -> float:
    """Q(λ) = 2 Σ_{k≥1} (−1)^{k−1} e^{−2k²λ²}: P(sup |Brownian bridge| > λ)."""
    if lam < 0.2:
        return 1.0  # the series converges slowly there and the answer is 1 to 10 digits
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam)
        total += term
        if abs(term) < 1e-12:
            break
    return min(1.0, max(0.0, total))


@dataclass(frozen=True)
class DriftLimits:
    max_psi: float | None
    min_ks_p_value: float | None  # per feature, before the correction over features


def assess_feature_drift(
    samples: dict[str, tuple[Sequence[Value], Sequence[Value]]],
    limits: dict[str, DriftLimits],
    min_samples: int,
) -> list[FeatureDrift]:
    """Every feature's PSI and KS against its limits, worst first.

    KS p-values are compared with the limit divided by the number of features tested (Bonferroni):
    ten features at 0.01 each would otherwise flag a stable model one time in ten.
    """
    tested = [name for name in samples if limits.get(name) is not None]
    ks_features = sum(
        1
        for name in tested
        if limits[name].min_ks_p_value is not None
        and is_numeric(samples[name][0])
        and is_numeric(samples[name][1])
    )
    results: list[FeatureDrift] = []
    for name in tested:
        reference, current = samples[name]
        limit = limits[name]
        if len(reference) < min_samples or len(current) < min_samples:
            results.append(
                FeatureDrift(
                    name,
                    math.nan,
                    None,
                    len(reference),
                    len(current),
                    Verdict.INCONCLUSIVE,
                    f"{name}: {len(reference)} reference and {len(current)} current values, "
                    f"fewer than the {min_samples} needed",
                )
            )
            continue
        psi = population_stability_index(reference, current)
        numeric = is_numeric(reference) and is_numeric(current)
        ks = (
            kolmogorov_smirnov([float(v) for v in reference], [float(v) for v in current])
            if numeric
            else None
        )
        breaches: list[str] = []
        if limit.max_psi is not None and psi > limit.max_psi:
            breaches.append(f"PSI {psi:.3f} > {limit.max_psi:g}")
        if limit.min_ks_p_value is not None and ks is not None:
            corrected = limit.min_ks_p_value / max(1, ks_features)
            if ks.p_value < corrected:
                breaches.append(
                    f"KS D={ks.statistic:.3f}, p={ks.p_value:.2g} < {corrected:.2g}"
                    f" ({limit.min_ks_p_value:g} over {ks_features} features)"
                )
        summary = f"PSI {psi:.3f}" + (
            f", KS D={ks.statistic:.3f} p={ks.p_value:.2g}" if ks is not None else ""
        )
        results.append(
            FeatureDrift(
                name,
                psi,
                ks,
                len(reference),
                len(current),
                Verdict.FAIL if breaches else Verdict.PASS,
                f"{name}: " + ("; ".join(breaches) if breaches else summary),
            )
        )
    results.sort(key=_severity, reverse=True)
    return results


def _severity(result: FeatureDrift) -> tuple[int, float]:
    rank = {Verdict.FAIL: 2, Verdict.PASS: 1, Verdict.INCONCLUSIVE: 0, Verdict.ERROR: 0}
    return rank[result.verdict], (0.0 if math.isnan(result.psi) else result.psi)


def drift_results(
    drifts: Sequence[FeatureDrift], candidate: str, source: str
) -> tuple[ObjectiveResult, ...]:
    """Each feature's drift as an objective result (a failing feature rolls the release back)."""
    return tuple(
        ObjectiveResult(
            f"drift {d.feature}",
            candidate,
            d.verdict,
            d.reason,
            Evidence(
                estimate=None if math.isnan(d.psi) else d.psi,
                samples=d.current_count,
                baseline_samples=d.reference_count,
                test=f"PSI and two-sample KS vs the baseline ({source})",
            ),
            check=source,
        )
        for d in drifts
    )
