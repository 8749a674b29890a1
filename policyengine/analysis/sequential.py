"""Always-valid confidence sequences: a stratified difference of two proportions, one proportion
and a mean, with normal-mixture boundaries that stay valid however often they are looked at.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

# Rates used in variances are shrunk towards 1/2 by half an event: a window with no events
# must not claim a variance of zero (the interval would collapse onto 0).
_PSEUDO_EVENTS = 0.5


def mixture_boundary(variance: float, rho: float, alpha: float) -> float:
    """Two-sided normal-mixture boundary: P(∃t: |S_t| ≥ b(V_t)) ≤ alpha.

    b = √((V+ρ)·ln((V+ρ)/(ρα²))) for a martingale S with variance process V (Robbins' normal
    mixture; Howard et al. 2021). ρ is the mixing precision, in the units of V: the boundary is
    tightest around V ≈ ρ, so ρ is set to the variance expected at the first decision point.
    """
    total = variance + rho
    return math.sqrt(total * math.log(total / (rho * alpha * alpha)))


def one_sided_boundary(variance: float, rho: float, alpha: float) -> float:
    """One-sided normal-mixture boundary: P(∃t: S_t ≥ b(V_t)) ≤ alpha.

    The half-normal mixture M = 2·√(ρ/(V+ρ))·exp(S²/(2(V+ρ)))·Φ(S/√(V+ρ)) is a nonnegative
    supermartingale; b solves M = 1/alpha. Starting from Φ = 1 (the two-sided boundary at 2α),
    two fixed-point steps put b within a part in 10⁶ of the root, always on the safe side.
    """
    total = variance + rho
    base = math.log(total / rho) + 2.0 * math.log(1.0 / (2.0 * alpha))
    bound = math.sqrt(total * base)
    scale = math.sqrt(2.0 * total)
    for _ in range(2):
        tail = 0.5 * (1.0 + math.erf(bound / scale))
        bound = math.sqrt(total * (base - 2.0 * math.log(tail)))
    return bound


@dataclass(frozen=True)
class Interval:
    """An always-valid interval on one quantity, with the point estimate inside it."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Levels:
    """Error rates and mixing precisions of the two one-sided bounds of a confidence sequence.

    The lower bound guards against concluding harm wrongly (false rollback), the upper bound
    against concluding safety wrongly (false promotion); each gets its own level and ρ because
    they are first used at different times (harm at once, safety at the end of the schedule).
    """

    lower_alpha: float
    upper_alpha: float
    lower_rho: float
    upper_rho: float


@dataclass(frozen=True)
class StratifiedComparison:
    """Mantel-Haenszel style comparison of candidate and baseline rates over concurrent windows.

    Per window k with baseline (e_B, n_B) and candidate (e_C, n_C): w_k = n_B·n_C/(n_B+n_C) and
    the candidate's excess events e_C − (e_B+e_C)·n_C/(n_B+n_C) = w_k·(p̂_C − p̂_B). Their sum
    S = W·Δ̂ is, for a common Δ, a martingale in S − W·Δ whose variance is `variance`.
    """

    score: float  # S = Σ (e_C − E_k)
    weight: float  # W = Σ w_k
    variance: float  # plug-in variance of S − W·Δ
    baseline_events: float
    baseline_total: float
    candidate_events: float
    candidate_total: float
    expected_candidate_events: float  # Σ E_k: what the candidate would show at the baseline's rate
    expected_baseline_events: float
    windows: int

    @property
    def difference(self) -> float:
        """Δ̂_MH, the stratified estimate of candidate rate − baseline rate."""
        return self.score / self.weight if self.weight > 0 else 0.0

    @property
    def baseline_rate(self) -> float:
        return self.baseline_events / self.baseline_total if self.baseline_total > 0 else 0.0

    @property
    def candidate_rate(self) -> float:
        return self.candidate_events / self.candidate_total if self.candidate_total > 0 else 0.0


def _shrunk_rate(events: float, total: float) -> float:
    return (events + _PSEUDO_EVENTS) / (total + 2.0 * _PSEUDO_EVENTS)


def compare_proportions(
    windows: Iterable[tuple[float, float, float, float]],
) -> StratifiedComparison:
    """Stratified comparison from (baseline events, baseline total, candidate events, candidate
    total) per concurrent window. Windows where either version saw nothing carry no information
    about the difference and are left out."""
    score = weight = 0.0
    baseline_share = candidate_share = 0.0  # Σ w_k²/n_C and Σ w_k²/n_B
    events_b = total_b = events_c = total_c = expected_c = expected_b = 0.0
    used = 0
    for e_b, n_b, e_c, n_c in windows:
        if n_b <= 0 or n_c <= 0:
            continue
        n = n_b + n_c
        m = e_b + e_c
        expected = m * n_c / n
        score += e_c - expected
        w = n_b * n_c / n
        weight += w
        baseline_share += w * n_b / n
        candidate_share += w * n_c / n
        events_b += e_b
        total_b += n_b
        events_c += e_c
        total_c += n_c
        expected_c += expected
        expected_b += m - expected
        used += 1
    q_c = _shrunk_rate(events_c, total_c)
    q_b = _shrunk_rate(events_b, total_b)
    # w_k²/n_C = w_k·n_B/n and w_k²/n_B = w_k·n_C/n: the candidate's binomial variance is weighed
    # by the baseline's share of each window and the other way round.
    variance = q_c * (1.0 - q_c) * baseline_share + q_b * (1.0 - q_b) * candidate_share
    return StratifiedComparison(
        score=score,
        weight=weight,
        variance=variance,
        baseline_events=events_b,
        baseline_total=total_b,
        candidate_events=events_c,
        candidate_total=total_c,
        expected_candidate_events=expected_c,
        expected_baseline_events=expected_b,
        windows=used,
    )


def difference_sequence(comparison: StratifiedComparison, levels: Levels) -> Interval:
    """Always-valid interval on Δ = candidate rate − baseline rate: {Δ : −b_U ≤ S − WΔ ≤ b_L}."""
    if comparison.weight <= 0:
        return Interval(0.0, -math.inf, math.inf)
    lower = one_sided_boundary(comparison.variance, levels.lower_rho, levels.lower_alpha)
    upper = one_sided_boundary(comparison.variance, levels.upper_rho, levels.upper_alpha)
    w = comparison.weight
    return Interval(
        comparison.difference, (comparison.score - lower) / w, (comparison.score + upper) / w
    )


def proportion_sequence(events: float, total: float, levels: Levels) -> Interval:
    """Always-valid interval on one rate from its cumulated events and total."""
    if total <= 0:
        return Interval(0.0, -math.inf, math.inf)
    q = _shrunk_rate(events, total)
    variance = total * q * (1.0 - q)
    lower = one_sided_boundary(variance, levels.lower_rho, levels.lower_alpha)
    upper = one_sided_boundary(variance, levels.upper_rho, levels.upper_alpha)
    return Interval(events / total, (events - lower) / total, (events + upper) / total)


def mean_sequence(values: Iterable[float], levels: Levels, scale: float = 1.0) -> Interval:
    """Always-valid interval on the mean of independent observations (a gauge sampled over time).

    The variance process is n·σ̂², with σ̂ floored at `scale`/10 so that a few identical values do
    not make a zero-width interval; ρ is in units of scale².
    """
    observed = list(values)
    n = len(observed)
    if n == 0:
        return Interval(0.0, -math.inf, math.inf)
    mean = math.fsum(observed) / n
    spread = math.fsum((x - mean) ** 2 for x in observed) / (n - 1) if n > 1 else scale * scale
    variance = n * max(spread, (scale / 10.0) ** 2)
    rho_unit = scale * scale
    lower = one_sided_boundary(variance, levels.lower_rho * rho_unit, levels.lower_alpha)
    upper = one_sided_boundary(variance, levels.upper_rho * rho_unit, levels.upper_alpha)
    return Interval(mean, mean - lower / n, mean + upper / n)
