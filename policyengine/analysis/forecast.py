"""Time to decision, before a release starts: from the baseline's current rate and traffic, how
long the policy's schedule needs to show an unchanged candidate within each objective's margin,
with the same boundaries the assessment decides on. Pure: rates and traffic in, minutes out.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from policyengine.analysis.sequential import SPRT_STEP

# Longest horizon a forecast looks at: a week of minutes.
_HORIZON_MINUTES = 7 * 24 * 60


@dataclass(frozen=True)
class Forecast:
    """When an unchanged candidate is expected to pass one relative objective."""

    objective: str
    baseline_rate: float
    requests_per_minute: float
    margin: float
    minutes: float  # inf when it is not expected within a week
    provable_margin: float  # the smallest margin provable within `limit_minutes`
    limit_minutes: float


def weight_per_minute(requests_per_minute: float, candidate_percent: float) -> float:
    """w = n_B·n_C/(n_B + n_C) of one minute at this split: how fast evidence accrues."""
    share = candidate_percent / 100.0
    return requests_per_minute * share * (1.0 - share)


def weight_needed(baseline_rate: float, margin: float, beta: float, share: float) -> float:
    """W at which the margin test U < m passes for a candidate equal to the baseline:
    U = d/2 + ln(1/β)·v/(W·d) with d = SPRT_STEP·m and v the variance per unit of weight at the
    rates the test assumes (the candidate at q_B + m)."""
    if margin <= 0:
        return math.inf
    step = SPRT_STEP * margin
    room = margin - step / 2.0
    q_c = min(baseline_rate + margin, 0.5)
    per_weight = q_c * (1.0 - q_c) * (1.0 - share) + baseline_rate * (1.0 - baseline_rate) * share
    return math.log(1.0 / beta) * per_weight / (step * room)


def minutes_to_pass(
    schedule: Sequence[tuple[int, float]],
    requests_per_minute: float,
    baseline_rate: float,
    margin: float,
    beta: float,
) -> float:
    """Minutes until an unchanged candidate passes, walking the schedule — (weight %, minutes)
    per step, the last step held for as long as it takes."""
    accrued = 0.0
    elapsed = 0.0
    steps = list(schedule) or [(50, math.inf)]
    for index, (percent, minutes) in enumerate(steps):
        last = index == len(steps) - 1
        span = _HORIZON_MINUTES if last else minutes
        rate = weight_per_minute(requests_per_minute, percent)
        needed = weight_needed(baseline_rate, margin, beta, percent / 100.0)
        if rate > 0 and accrued + rate * span >= needed:
            return elapsed + (needed - accrued) / rate
        accrued += rate * span
        elapsed += span
    return math.inf


def provable_margin(
    schedule: Sequence[tuple[int, float]],
    requests_per_minute: float,
    baseline_rate: float,
    beta: float,
    limit_minutes: float,
) -> float:
    """The smallest margin an unchanged candidate can be shown within in `limit_minutes`."""
    low, high = 1e-9, 0.5
    if minutes_to_pass(schedule, requests_per_minute, baseline_rate, high, beta) > limit_minutes:
        return math.inf
    for _ in range(60):
        middle = math.sqrt(low * high)
        if minutes_to_pass(schedule, requests_per_minute, baseline_rate, middle, beta) <= (
            limit_minutes
        ):
            high = middle
        else:
            low = middle
    return high


def forecast(
    objective: str,
    schedule: Sequence[tuple[int, float]],
    requests_per_minute: float,
    baseline_rate: float,
    margin: float,
    beta: float,
    limit_minutes: float,
) -> Forecast:
    return Forecast(
        objective=objective,
        baseline_rate=baseline_rate,
        requests_per_minute=requests_per_minute,
        margin=margin,
        minutes=minutes_to_pass(schedule, requests_per_minute, baseline_rate, margin, beta),
        provable_margin=provable_margin(
            schedule, requests_per_minute, baseline_rate, beta, limit_minutes
        ),
        limit_minutes=limit_minutes,
    )
