"""A/B/n on a business reward: per-window (stratified) estimates of every version against the
baseline, the posterior probability that each version is best and the expected loss of choosing it,
an always-valid interval on (version − baseline), traffic allocation (fixed, Thompson, top-two
Thompson) and the winner rule.

Every array has a leading axis of independent experiments: the engine passes one, bench/abn.py
passes thousands, so the benchmark measures exactly this code. Column 0 is always the baseline.
Pure: no I/O, no clock; random draws come in as arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

# A rate shrunk by half an event each way, so that a version with no conversions yet does not
# claim a variance of zero.
PSEUDO_EVENTS = 0.5
# Prior on (version − baseline): normal, centred on no difference, with a standard deviation of
# this fraction of the baseline's level. Weak next to the data after a few hundred requests, it
# keeps an untried version's P(best) at 1/N instead of letting one lucky window decide.
PRIOR_RELATIVE_SD = 0.5
# Mixing precision ρ of the always-valid interval, in stratified requests (Σ w_k; variance units
# follow as ρ·σ²). The boundary is tightest where the variance is about ρ: a lift of 10 % of a 5 %
# rate is confirmed near W ≈ 20,000, so ρ sits there. Checked with bench/abn.py on seed 1001,
# disjoint from the published seed 1 (docs/abn.md).
RHO_REQUESTS = 20_000.0
# Top-two Thompson sampling: the share of the time the sampled best is played, else its runner-up
# (Russo 2020, "Simple Bayesian algorithms for best-arm identification"; β = 1/2 is his default).
TOP_TWO_BETA = 0.5

Allocation = Literal["fixed", "thompson", "topTwoThompson"]


@dataclass(frozen=True)
class RewardModel:
    """How one reward is read: a rate (events per request) or a mean (a value per request)."""

    kind: Literal["rate", "mean"] = "rate"
    sign: float = 1.0  # +1 maximize, -1 minimize: every comparison below is in "better" units
    alpha: float = 0.025  # one-sided level of each version-vs-baseline interval
    rho_requests: float = RHO_REQUESTS


@dataclass(frozen=True)
class RewardState:
    """Sufficient statistics of the windows folded so far; shape (experiments, versions).

    For version i and window k with baseline counts (e_b, n_b) and the version's (e_i, n_i):
    w_k = n_b·n_i/(n_b+n_i), m = e/n. S = Σ w_k (m_ik − m_bk) estimates W·Δ_i whatever the weights
    and the time of day did between windows (Mantel-Haenszel); its variance is
    σ_i²·Σ w_k²/n_ik + σ_b²·Σ w_k²/n_bk.
    """

    score: Array  # S
    weight: Array  # W = Σ w_k
    own: Array  # Σ w_k²/n_ik
    shared: Array  # Σ w_k²/n_bk
    events: Array  # Σ e_ik (conversions, or the sum of the value)
    total: Array  # Σ n_ik
    square: Array  # Σ n_ik·m_ik², for the spread of a mean reward
    windows: Array  # windows in which the version had requests
    lower: Array  # running always-valid interval on Δ_i = reward_i − reward_baseline
    upper: Array


def empty_state(experiments: int, versions: int) -> RewardState:
    zeros = np.zeros((experiments, versions))
    return RewardState(
        score=zeros,
        weight=zeros,
        own=zeros,
        shared=zeros,
        events=zeros,
        total=zeros,
        square=zeros,
        windows=zeros,
        lower=np.full((experiments, versions), -np.inf),
        upper=np.full((experiments, versions), np.inf),
    )


def spread(state: RewardState, model: RewardModel) -> Array:
    """σ² per version: q(1−q) of the shrunk rate, or the between-window spread of a mean."""
    if model.kind == "rate":
        q = (state.events + PSEUDO_EVENTS) / (state.total + 2.0 * PSEUDO_EVENTS)
        return q * (1.0 - q)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(state.total > 0, state.events / np.maximum(state.total, 1e-300), 0.0)
        raw = (state.square - state.total * mean * mean) / np.maximum(state.windows - 1.0, 1.0)
    # Until a version has windows to compare, lean on the baseline's spread (or the level itself).
    floor = 1e-12 + (0.01 * np.abs(mean)) ** 2
    fallback = np.maximum(raw[:, :1], (0.1 * np.abs(mean[:, :1])) ** 2 + 1e-12)
    return np.where(state.windows >= 3, np.maximum(raw, floor), fallback)


def fold(
    state: RewardState, events: Array, totals: Array, model: RewardModel, *, look: bool = True
) -> RewardState:
    """Add one window (events and requests per version, shape (experiments, versions)).

    With `look` the always-valid interval is updated at the window's end (a look); the engine
    looks at every window, so the running intersection is over every prefix.
    """
    n_b = totals[:, :1]
    with np.errstate(divide="ignore", invalid="ignore"):
        m = np.where(totals > 0, events / np.maximum(totals, 1e-300), 0.0)
        both = (totals > 0) & (n_b > 0)
        n = np.where(both, totals + n_b, 1.0)
        w = np.where(both, totals * n_b / n, 0.0)
    w[:, 0] = 0.0
    has = totals > 0
    state = RewardState(
        score=state.score + w * (m - m[:, :1]),
        weight=state.weight + w,
        own=state.own + np.where(both, w * n_b / n, 0.0),
        shared=state.shared + np.where(both, w * totals / n, 0.0),
        events=state.events + events,
        total=state.total + totals,
        square=state.square + np.where(has, totals * m * m, 0.0),
        windows=state.windows + has,
        lower=state.lower,
        upper=state.upper,
    )
    if not look:
        return state
    return _look(state, model)


def _variance(state: RewardState, model: RewardModel) -> Array:
    sigma2 = spread(state, model)
    return sigma2 * state.own + sigma2[:, :1] * state.shared


def _look(state: RewardState, model: RewardModel) -> RewardState:
    """Intersect the running interval with this look's normal-mixture confidence sequence.

    b = √((V+ρ)·ln((V+ρ)/(ρ·(2α)²))) bounds |S − WΔ| at level 2α two-sided (Robbins' normal
    mixture, as in analysis/sequential.py), so each side alone holds at level α, at every look.
    """
    variance = _variance(state, model)
    seen = state.weight > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        unit = np.where(seen, variance / np.maximum(state.weight, 1e-300), 1.0)
        rho = model.rho_requests * unit
        total = variance + rho
        bound = np.sqrt(total * np.log(total / (rho * (2.0 * model.alpha) ** 2)))
        weight = np.maximum(state.weight, 1e-300)
        lower = np.where(seen, (state.score - bound) / weight, -np.inf)
        upper = np.where(seen, (state.score + bound) / weight, np.inf)
    return replace(
        state, lower=np.maximum(state.lower, lower), upper=np.minimum(state.upper, upper)
    )


def level(state: RewardState) -> Array:
    """Each version's pooled reward (events per request, or mean value per request)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(state.total > 0, state.events / np.maximum(state.total, 1e-300), np.nan)


def favourable(state: RewardState, model: RewardModel) -> tuple[Array, Array]:
    """The interval on (version − baseline) in "better" units: lower > 0 means better."""
    if model.sign > 0:
        return state.lower, state.upper
    return -state.upper, -state.lower


@dataclass(frozen=True)
class Posterior:
    """Normal posterior of each version's advantage over the baseline, in "better" units.

    The baseline sits at 0 with spread `shared` (its own noise, common to every comparison);
    version i at `mean` with spread `own`, so mean_i + own·z_i − shared·z_0 has the variance of Δ_i.
    """

    mean: Array  # (experiments, versions); column 0 is 0
    own: Array  # (experiments, versions); column 0 is the shared spread
    shared: Array  # (experiments,)


def posterior(state: RewardState, model: RewardModel) -> Posterior:
    sigma2 = spread(state, model)
    variance = sigma2 * state.own + sigma2[:, :1] * state.shared
    baseline_level = np.abs(
        np.where(
            state.total[:, :1] > 0,
            (state.events[:, :1] + PSEUDO_EVENTS) / (state.total[:, :1] + 2 * PSEUDO_EVENTS),
            0.0,
        )
    )
    if model.kind == "mean":
        baseline_level = np.maximum(baseline_level, np.sqrt(sigma2[:, :1]))
    prior = (PRIOR_RELATIVE_SD * np.maximum(baseline_level, 1e-9)) ** 2
    seen = (state.weight > 0) & (variance > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(seen, state.weight**2 / np.where(seen, variance, 1.0), 0.0)
        post = 1.0 / (1.0 / prior + precision)
        mean = np.where(seen, post * state.score * state.weight / np.where(seen, variance, 1.0), 0)
        from_data = np.where(seen, sigma2[:, :1] * state.shared / np.where(seen, variance, 1), 0)
    # The baseline's share of each difference's variance: from the data where there is data,
    # half where only the prior speaks (then every version is exchangeable: P(best) = 1/N).
    shared_part = (precision * from_data + 0.5 / prior) / (precision + 1.0 / prior)
    mean = model.sign * mean
    mean[:, 0] = 0.0
    shared_var = post * shared_part
    candidates = state.weight.shape[1] - 1
    shared = np.sqrt(shared_var[:, 1:].sum(axis=1) / max(candidates, 1))
    own = np.sqrt(np.maximum(post - shared_var, 0.0))
    own[:, 0] = shared
    return Posterior(mean=mean, own=own, shared=shared)


def best_probabilities(posterior: Posterior, live: Mask, draws: Array) -> tuple[Array, Array]:
    """P(best) and expected loss E[max_j θ_j − θ_i] per version, from `draws` standard normals of
    shape (samples, versions); versions not live can be neither best nor chosen (loss inf)."""
    versions = draws.shape[1]
    # One (experiments, samples) plane per version: reductions over a short last axis are slow.
    centre = np.where(live, posterior.mean, -np.inf)
    planes = [
        centre[:, i : i + 1] + posterior.own[:, i : i + 1] * draws[None, :, i]
        for i in range(versions)
    ]
    best = planes[0]
    for plane in planes[1:]:
        best = np.maximum(best, plane)
    p_best = np.stack([(plane == best).mean(axis=1) for plane in planes], axis=1)
    # Ties (only between versions that are not live, at -inf) would count twice: renormalise.
    p_best = p_best / np.maximum(p_best.sum(axis=1, keepdims=True), 1e-12)
    expected_best = best.mean(axis=1, keepdims=True)
    expected = posterior.mean + posterior.own * draws.mean(axis=0)[None, :]
    loss = np.where(live, expected_best - expected, np.inf)
    return p_best, loss


def target_shares(allocation: Allocation, p_best: Array, live: Mask) -> Array:
    """The share of the learning traffic each live version should get (rows sum to 1)."""
    if allocation == "fixed":
        psi = live.astype(float)
    elif allocation == "thompson":
        psi = np.where(live, p_best, 0.0)
    else:
        p = np.where(live, np.minimum(p_best, 1.0 - 1e-9), 0.0)
        runner_up = (p / (1.0 - p)).sum(axis=1, keepdims=True) - p / (1.0 - p)
        psi = p * (TOP_TWO_BETA + (1.0 - TOP_TWO_BETA) * runner_up)
    total = psi.sum(axis=1, keepdims=True)
    even = live / np.maximum(live.sum(axis=1, keepdims=True), 1)
    return np.where(total > 0, psi / np.where(total > 0, total, 1.0), even)


def largest_remainder(real: Array) -> Ints:
    """Integers summing to each row's (integral) total, every one within 1 of its real value."""
    whole = np.floor(real + 1e-9)
    missing = np.rint(real.sum(axis=1) - whole.sum(axis=1)).astype(np.int64)
    order = np.argsort(-(real - whole), axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(real.shape[1])[None, :], axis=1)
    result: Ints = (whole + (ranks < missing[:, None])).astype(np.int64)
    return result


def allocate(
    allocation: Allocation,
    p_best: Array,
    live: Mask,
    current: Ints,
    *,
    floor: int,
    holdout: int,
    max_change: int,
) -> Ints:
    """Next integer weights (rows sum to 100), each within `max_change` points of `current`.

    Every live version keeps at least `floor` %, the baseline at least `holdout` %, the rest
    follows the allocation. A version that is no longer live drops to 0 at once (a guardrail
    failed: no more traffic, whatever maxChange says) and its traffic goes to the baseline.
    """
    start = np.where(live, current, 0).astype(float)
    start[:, 0] += 100.0 - start.sum(axis=1)
    minimum = np.where(live, float(floor), 0.0)
    minimum[:, 0] = max(floor, holdout)
    rest = np.maximum(100.0 - minimum.sum(axis=1, keepdims=True), 0.0)
    target = minimum + rest * target_shares(allocation, p_best, live)
    if allocation == "fixed":
        # An even split, unless that leaves the baseline under its holdout.
        even = 100.0 * live / np.maximum(live.sum(axis=1, keepdims=True), 1)
        target = np.where(even[:, :1] >= minimum[:, :1], even, target)
    step = target - start
    largest = np.abs(step).max(axis=1, keepdims=True)
    scale = np.minimum(1.0, max_change / np.maximum(largest, 1e-12))
    # Integers within 1 of a real point within max_change of the integer start stay within it.
    return largest_remainder(start + scale * step)


def winners(
    p_best: Array,
    loss: Array,
    lower: Array,
    upper: Array,
    live: Mask,
    *,
    winner_probability: float,
    max_loss: Array,
    old_enough: Mask,
) -> Ints:
    """The winning column per experiment, or -1 for "no winner yet".

    A version wins when it is live, P(best) ≥ `winner_probability`, its expected loss is below
    `max_loss`, the experiment is `old_enough`, and the always-valid interval on
    (winner − baseline), in "better" units, excludes 0 in its favour. The baseline wins only when
    every live candidate's interval excludes 0 on the baseline's side.
    """
    rows = np.arange(p_best.shape[0])
    leader = np.where(live, p_best, -1.0).argmax(axis=1)
    sure = (p_best[rows, leader] >= winner_probability) & (loss[rows, leader] < max_loss)
    beats_baseline = lower[rows, leader] > 0
    candidates_lose = np.where(live[:, 1:], upper[:, 1:] < 0, True).all(axis=1)
    confirmed = np.where(leader == 0, candidates_lose, beats_baseline)
    found = sure & confirmed & old_enough & live[rows, leader]
    return np.asarray(np.where(found, leader, -1), dtype=np.int64)
