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

# The margin test's alternative sits this fraction of the margin below the null (a candidate 0.3
# margins worse than the baseline). A full margin (an equal candidate) decides fastest in the
# median; 0.7 shortens the slow tail that decides whether most equal candidates are promoted
# within the hour (docs/statistics.md, tuning).
SPRT_STEP = 0.7
# The catastrophic rule: beside the normal mixture (power at every effect size), the harm side
# runs an SPRT of Δ = m against Δ = m + CATASTROPHIC_STEP·m. Any step keeps α (the SPRT only
# rejects Δ ≤ m); the step sets where it is fastest. With the first step's traffic (one or two
# minutes at 10 % of 100 req/s) the best step is about √(2·ln(1/α)·Var Δ̂) — 7 margins for a
# candidate at three times the baseline's rate under a 20 % margin; 10 and 14 were slower on the
# tuning seed (docs/statistics.md, tuning).
# The SPRT gets CATASTROPHIC_ALPHA_SHARE of the harm test's α, the mixture the rest: the SPRT
# decides large harm within minutes, where every bit of α counts; the mixture has hours for
# moderate harm, where a smaller α costs little (ln(1/α) grows slowly).
CATASTROPHIC_STEP = 7.0
CATASTROPHIC_ALPHA_SHARE = 0.75
# Counts of rare events are skewed: the SPRT's boundary gets ln(1/α)/6 events more (the
# Bernstein term of the mixture, in the SPRT's log units), so six errors in sixty requests do
# not roll back a candidate at 10 req/s.
CATASTROPHIC_SKEW = 1.0 / 6.0


def mixture_boundary(variance: float, rho: float, alpha: float) -> float:
    """Two-sided normal-mixture boundary: P(∃t: |S_t| ≥ b(V_t)) ≤ alpha.

    b = √((V+ρ)·ln((V+ρ)/(ρα²))) for a martingale S with variance process V (Robbins' normal
    mixture; Howard et al. 2021). ρ is the mixing precision, in the units of V: the boundary is
    tightest around V ≈ ρ, so ρ is set to the variance expected at the first decision point.
    """
    total = variance + rho
    return math.sqrt(total * math.log(total / (rho * alpha * alpha)))


def one_sided_boundary(variance: float, rho: float, alpha: float, jump: float = 0.0) -> float:
    """One-sided normal-mixture boundary: P(∃t: S_t ≥ b(V_t)) ≤ alpha.

    The half-normal mixture M = 2·√(ρ/(V+ρ))·exp(S²/(2(V+ρ)))·Φ(S/√(V+ρ)) is a nonnegative
    supermartingale; b solves M = 1/alpha. Φ = 1 gives the two-sided boundary at 2α, just below
    the root; one fixed-point step from there lands just above it (the map is decreasing), on the
    safe side and within a part in 10⁴ of it.

    `jump` is the largest single increment of S (one event counts 1). Counts of rare events are
    skewed: few expected events make large excesses likelier than a normal law says. A Bernstein
    term jump·ℓ/3, with ℓ = b²/(2(V+ρ)) the boundary's log term, pays for that skew (the
    sub-gamma boundary of Howard et al. 2021, §3); it vanishes next to √V as counts grow.
    """
    total = variance + rho
    base = math.log(total / rho) + 2.0 * math.log(1.0 / (2.0 * alpha))
    below = math.sqrt(total * base)
    tail = 0.5 * (1.0 + math.erf(below / math.sqrt(2.0 * total)))
    log_term = base - 2.0 * math.log(tail)
    return math.sqrt(total * log_term) + jump * log_term / 6.0


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
    S = W·Δ̂ is, for a common Δ, a martingale in S − W·Δ. `interval` is the always-valid
    interval on Δ, intersected over every prefix of the windows (each window's end is a look).
    """

    score: float  # S = Σ (e_C − E_k)
    weight: float  # W = Σ w_k
    interval: Interval
    baseline_events: float
    baseline_total: float
    candidate_events: float
    candidate_total: float
    expected_candidate_events: float  # Σ E_k: what the candidate would show at the baseline's rate
    expected_baseline_events: float
    windows: int
    last_weight: float = 0.0  # w_k of the latest window: how fast evidence accrues now
    upper_variance: float = 0.0  # V of the upper bound at the latest window

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
    levels: Levels,
    margin: float | None = None,
) -> StratifiedComparison:
    """Stratified comparison from (baseline events, baseline total, candidate events, candidate
    total) per concurrent window, in time order.

    The lower bound inverts the harm test. Without a margin it asks "is Δ > 0?", so its variance
    is the one under Δ = 0: p̄(1−p̄)·W with the pooled rate p̄. With a margin m it asks "is Δ > m?"
    (worse than the declared tolerance), so its variance is the one at Δ = m, the candidate's rate
    at q_B + m — the same variance the upper bound uses. The upper bound uses the variance
    Σ w_k²·(q_C(1−q_C)/n_C + q_B(1−q_B)/n_B), with each version's own rate q — and, with a margin,
    q_C at least q_B + m, the candidate's rate under the hypothesis a promotion rejects: a
    candidate that shows few events early must not also claim a small variance.

    With a non-inferiority `margin` m, the upper bound inverts Wald's SPRT of Δ ≥ Δ₀ against
    Δ = Δ₀ − d, d = SPRT_STEP·m (the likelihood ratio is a martingale under the null, so Ville's
    inequality makes it always valid): U = Δ̂ + d/2 + ln(1/β)·V/(W²·d). It concentrates the power
    where a promotion is decided — a candidate about as good as the baseline — instead of
    spreading it over every effect size like the normal mixture.

    Windows where either version saw nothing carry no information about the difference and are
    left out.
    """
    score = weight = 0.0
    baseline_share = candidate_share = 0.0  # Σ w_k²/n_C and Σ w_k²/n_B
    events_b = total_b = events_c = total_c = expected_c = 0.0
    lower, upper = -math.inf, math.inf
    log_upper = math.log(1.0 / levels.upper_alpha)
    mixture_alpha = levels.lower_alpha * (1.0 - CATASTROPHIC_ALPHA_SHARE)
    log_harm = math.log(1.0 / (levels.lower_alpha * CATASTROPHIC_ALPHA_SHARE))
    used = 0
    last_weight = upper_variance = 0.0
    for e_b, n_b, e_c, n_c in windows:
        if n_b <= 0 or n_c <= 0:
            continue
        n = n_b + n_c
        expected = (e_b + e_c) * n_c / n
        score += e_c - expected
        w = n_b * n_c / n
        weight += w
        last_weight = w
        # w_k²/n_C = w_k·n_B/n and w_k²/n_B = w_k·n_C/n.
        baseline_share += w * n_b / n
        candidate_share += w * n_c / n
        events_b += e_b
        total_b += n_b
        events_c += e_c
        total_c += n_c
        expected_c += expected
        used += 1
        pooled = _shrunk_rate(events_b + events_c, total_b + total_c)
        q_c = _shrunk_rate(events_c, total_c)
        q_b = _shrunk_rate(events_b, total_b)
        if margin is not None and margin > 0:
            # Harm: the variance at the null's edge Δ = m, whatever the candidate shows.
            q_null = min(q_b + margin, 0.5)
            null_variance = (
                q_null * (1.0 - q_null) * baseline_share + q_b * (1.0 - q_b) * candidate_share
            )
            below = one_sided_boundary(null_variance, levels.lower_rho, mixture_alpha, 1.0)
            lower = max(lower, (score - below) / weight)
            harm_step = CATASTROPHIC_STEP * margin
            sprt = harm_step / 2.0 + log_harm * null_variance / (weight * weight * harm_step)
            sprt += CATASTROPHIC_SKEW * log_harm / weight
            lower = max(lower, score / weight - sprt)
            q_c = max(q_c, q_null)
            variance = q_c * (1.0 - q_c) * baseline_share + q_b * (1.0 - q_b) * candidate_share
            upper_variance = variance
            step = SPRT_STEP * margin
            shift = step / 2.0 + log_upper * variance / (weight * weight * step)
            upper = min(upper, score / weight + shift)
        else:
            null_variance = pooled * (1.0 - pooled) * weight
            below = one_sided_boundary(null_variance, levels.lower_rho, levels.lower_alpha, 1.0)
            lower = max(lower, (score - below) / weight)
            variance = q_c * (1.0 - q_c) * baseline_share + q_b * (1.0 - q_b) * candidate_share
            above = one_sided_boundary(variance, levels.upper_rho, levels.upper_alpha)
            upper = min(upper, (score + above) / weight)
    estimate = score / weight if weight > 0 else 0.0
    if lower > upper:
        # The running intersection can only empty when Δ changed during the release (a regression
        # that started mid-way): the harm side is the news, so the interval collapses onto it.
        upper = lower
    return StratifiedComparison(
        score=score,
        weight=weight,
        interval=Interval(estimate, lower, upper),
        baseline_events=events_b,
        baseline_total=total_b,
        candidate_events=events_c,
        candidate_total=total_c,
        expected_candidate_events=expected_c,
        expected_baseline_events=events_b + events_c - expected_c,
        windows=used,
        last_weight=last_weight,
        upper_variance=upper_variance,
    )


def proportion_sequence(
    windows: Iterable[tuple[float, float]], levels: Levels, null_rate: float | None = None
) -> Interval:
    """Always-valid interval on one rate from (events, total) per window, in time order,
    intersected over every prefix.

    With `null_rate` (the bound an objective tests against) the variance is the one at that
    rate, so that the interval excludes the bound exactly when the test at the bound rejects;
    otherwise it is the plug-in n·q(1−q).
    """
    events = total = 0.0
    lower, upper = -math.inf, math.inf
    for e, n in windows:
        if n <= 0:
            continue
        events += e
        total += n
        q = _shrunk_rate(events, total) if null_rate is None else null_rate
        variance = total * q * (1.0 - q)
        below = one_sided_boundary(variance, levels.lower_rho, levels.lower_alpha)
        above = one_sided_boundary(variance, levels.upper_rho, levels.upper_alpha)
        lower = max(lower, (events - below) / total)
        upper = min(upper, (events + above) / total)
    return Interval(events / total if total > 0 else 0.0, lower, upper)


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


def windows_to_pass_margin(comparison: StratifiedComparison, margin: float, beta: float) -> float:
    """How many more windows like the latest one the margin test needs to pass, if the estimate
    and rates stay where they are (inf when the estimate itself is too close to the margin).

    From U = Δ̂ + d/2 + ln(1/β)·v·W/(W²·d) with v = V/W the variance per unit of weight: U < m
    once W > ln(1/β)·v / (d·(m − d/2 − Δ̂)) — the boundary the decision uses, solved for W.
    """
    if comparison.weight <= 0 or comparison.last_weight <= 0 or margin <= 0:
        return math.inf
    step = SPRT_STEP * margin
    room = margin - step / 2.0 - comparison.interval.estimate
    if room <= 0:
        return math.inf
    per_weight = comparison.upper_variance / comparison.weight
    needed = math.log(1.0 / beta) * per_weight / (step * room)
    return max(needed - comparison.weight, 0.0) / comparison.last_weight


def requests_to_show_under(estimate: float, bound: float, requests: float, levels: Levels) -> float:
    """How many requests in all the always-valid interval on a rate needs for its upper end to
    fall under `bound` if the rate stays at `estimate` (inf when it is not under the bound)."""
    if estimate >= bound or bound <= 0:
        return math.inf
    q = bound * (1.0 - bound)

    def upper(n: float) -> float:
        return estimate + one_sided_boundary(n * q, levels.upper_rho, levels.upper_alpha) / n

    high = max(requests, 1.0)
    while upper(high) > bound:
        high *= 2.0
        if high > 1e13:
            return math.inf
    low = 1.0
    for _ in range(60):
        middle = (low + high) / 2.0
        if upper(middle) > bound:
            low = middle
        else:
            high = middle
    return high
