"""Sample-ratio mismatch: do the requests each version received match the weights written in Git?

A χ² goodness-of-fit test of observed requests per version against weight × requests per window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

_SERIES_LIMIT = 500
_TINY = 1e-300
_EPSILON = 1e-14


def regularized_upper_gamma(shape: float, x: float) -> float:
    """Q(a, x) = Γ(a, x)/Γ(a): a series below a+1, Lentz's continued fraction above (Numerical
    Recipes §6.2)."""
    if x <= 0.0:
        return 1.0
    log_prefix = shape * math.log(x) - x - math.lgamma(shape)
    if x < shape + 1.0:
        term = total = 1.0 / shape
        denominator = shape
        for _ in range(_SERIES_LIMIT):
            denominator += 1.0
            term *= x / denominator
            total += term
            if abs(term) < abs(total) * _EPSILON:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefix))
    b = x + 1.0 - shape
    c = 1.0 / _TINY
    d = 1.0 / b
    fraction = d
    for i in range(1, _SERIES_LIMIT):
        an = -i * (i - shape)
        b += 2.0
        d = an * d + b
        d = _TINY if abs(d) < _TINY else d
        c = b + an / c
        c = _TINY if abs(c) < _TINY else c
        d = 1.0 / d
        step = d * c
        fraction *= step
        if abs(step - 1.0) < _EPSILON:
            break
    return math.exp(log_prefix) * fraction


def chi_square_survival(statistic: float, degrees_of_freedom: int) -> float:
    """P(χ²_k ≥ statistic)."""
    return regularized_upper_gamma(degrees_of_freedom / 2.0, statistic / 2.0)


@dataclass(frozen=True)
class SampleRatio:
    """Observed and expected requests per version, and the χ² test between them.

    The statistic sums one χ² per window (k windows, (versions − 1)·k degrees of freedom), so
    imbalances in opposite directions in two windows add up instead of cancelling. `threshold`
    is the p-value under which this look is a mismatch: the policy's srmPValue spent over the
    looks, p/(k(k+1)) at the k-th window (Σ 1/(k(k+1)) = 1), so looking again at every new
    window keeps the false-hold rate of a step at srmPValue.
    """

    observed: dict[str, float]
    expected: dict[str, float]
    statistic: float
    p_value: float
    windows: int
    threshold: float = 0.0

    @property
    def mismatch(self) -> bool:
        return self.p_value < self.threshold

    def describe(self) -> str:
        total = sum(self.observed.values()) or 1.0
        expected_total = sum(self.expected.values()) or 1.0
        observed = ", ".join(
            f"{name} {count:.0f} ({100 * count / total:.1f} %)"
            for name, count in self.observed.items()
        )
        expected = ", ".join(
            f"{name} {100 * count / expected_total:.1f} %" for name, count in self.expected.items()
        )
        return (
            f"sample ratio mismatch: observed {observed}; expected {expected} from the weights "
            f"in Git (χ² {self.statistic:.1f} over {self.windows} windows, p {self.p_value:.2g} "
            f"< {self.threshold:.2g})"
        )


def look_threshold(p_value: float, looks: int) -> float:
    """The p-value threshold of the `looks`-th look when p_value is spent over every look."""
    return p_value / (looks * (looks + 1))


def sample_ratio(
    requests: Mapping[str, Sequence[float]], weights: Mapping[str, int], p_value: float = 0.001
) -> SampleRatio | None:
    """Test per-window request counts (aligned lists per version) against the weights.

    Versions at weight 0 are left out: traffic sent to them directly (smoke tests, mirrors) is not
    part of the split. None when fewer than two versions are weighted or no window has traffic.
    """
    names = [name for name, weight in weights.items() if weight > 0 and name in requests]
    if len(names) < 2:
        return None
    share = sum(weights[name] for name in names)
    windows = min(len(requests[name]) for name in names)
    observed = dict.fromkeys(names, 0.0)
    expected = dict.fromkeys(names, 0.0)
    statistic = 0.0
    used = 0
    for k in range(windows):
        in_window = sum(requests[name][k] for name in names)
        if in_window <= 0:
            continue
        used += 1
        for name in names:
            wanted = weights[name] / share * in_window
            observed[name] += requests[name][k]
            expected[name] += wanted
            statistic += (requests[name][k] - wanted) ** 2 / wanted
    if used == 0:
        return None
    return SampleRatio(
        observed=observed,
        expected=expected,
        statistic=statistic,
        p_value=chi_square_survival(statistic, used * (len(names) - 1)),
        windows=used,
        threshold=look_threshold(p_value, used),
    )
