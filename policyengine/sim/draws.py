"""Random draws the Python 3.11 standard library lacks: binomial, Poisson and multinomial counts.

Every draw takes a seeded `random.Random`, so a simulation replays exactly from its seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

# Below these means the simple exact methods are fast enough; above them the rejection samplers
# (Hörmann's BTRS and PTRS) keep a draw O(1) however many requests an interval carries.
_SMALL_BINOMIAL_MEAN = 10.0
_SMALL_POISSON_MEAN = 10.0


def binomial(rng: random.Random, n: int, p: float) -> int:
    """Successes in n independent trials of probability p."""
    if n < 0:
        raise ValueError(f"binomial needs n >= 0, got {n}")
    if n == 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    if n * p < _SMALL_BINOMIAL_MEAN:
        return _binomial_by_waiting_times(rng, n, p)
    return _binomial_btrs(rng, n, p)


def _binomial_by_waiting_times(rng: random.Random, n: int, p: float) -> int:
    # Geometric gaps between successes: expected work O(n p).
    log_q = math.log1p(-p)
    successes = 0
    position = 0
    while True:
        position += math.floor(math.log(1.0 - rng.random()) / log_q) + 1
        if position > n:
            return successes
        successes += 1


def _binomial_btrs(rng: random.Random, n: int, p: float) -> int:
    # Hörmann (1993), "The generation of binomial random variates", algorithm BTRS; needs n p >= 10.
    q = 1.0 - p
    spq = math.sqrt(n * p * q)
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    v_r = 0.92 - 4.2 / b
    alpha = (2.83 + 5.1 / b) * spq
    lpq = math.log(p / q)
    mode = math.floor((n + 1) * p)
    h = math.lgamma(mode + 1) + math.lgamma(n - mode + 1)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        if us <= 0.0:
            continue
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        if us >= 0.07 and v <= v_r:
            return k
        if v <= 0.0:
            continue
        v = math.log(v * alpha / (a / (us * us) + b))
        if v <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - mode) * lpq:
            return k


def poisson(rng: random.Random, mean: float) -> int:
    """Events of a Poisson process with the given mean."""
    if mean < 0:
        raise ValueError(f"poisson needs mean >= 0, got {mean}")
    if mean == 0:
        return 0
    if mean < _SMALL_POISSON_MEAN:
        # Knuth: multiply uniforms until the product drops below e^-mean.
        limit = math.exp(-mean)
        events = 0
        product = rng.random()
        while product > limit:
            events += 1
            product *= rng.random()
        return events
    return _poisson_ptrs(rng, mean)


def _poisson_ptrs(rng: random.Random, mean: float) -> int:
    # Hörmann (1993), "The transformed rejection method for generating Poisson random variables".
    slam = math.sqrt(mean)
    log_mean = math.log(mean)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    inv_alpha = 1.1239 + 1.1328 / (b - 3.4)
    v_r = 0.9277 - 3.6224 / (b - 2)
    while True:
        u = rng.random() - 0.5
        v = rng.random()
        us = 0.5 - abs(u)
        if us <= 0.0 or v <= 0.0:
            continue
        k = math.floor((2 * a / us + b) * u + mean + 0.43)
        if us >= 0.07 and v <= v_r:
            return k
        if k < 0 or (us < 0.013 and v > us):
            continue
        if math.log(v) + math.log(inv_alpha) - math.log(a / (us * us) + b) <= (
            -mean + k * log_mean - math.lgamma(k + 1)
        ):
            return k


def multinomial(rng: random.Random, n: int, probabilities: Sequence[float]) -> tuple[int, ...]:
    """n draws spread over categories with the given probabilities (normalised here)."""
    counts = [0] * len(probabilities)
    remaining_mass = math.fsum(probabilities)
    remaining = n
    for index, p in enumerate(probabilities):
        if remaining == 0:
            break
        if p <= 0.0:
            continue
        if remaining_mass <= p or index == len(probabilities) - 1:
            counts[index] = remaining
            break
        drawn = binomial(rng, remaining, p / remaining_mass)
        counts[index] = drawn
        remaining -= drawn
        remaining_mass -= p
    else:
        # Rounding left a few draws over with no mass after them: they belong to the last
        # category that had any.
        if remaining:
            last = max(i for i, p in enumerate(probabilities) if p > 0.0)
            counts[last] += remaining
    return tuple(counts)
