"""Latency of a simulated version: a lognormal given by its p50 and p99, counted on histogram buckets.

The fleet counts latencies on one grid, the union of every runtime's bucket bounds (in ms), so a
single simulated request stream can be exposed exactly as ModelMesh, Istio, Knative or OVMS
histograms (each runtime's `le` bounds are a subset of the grid).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import cache

# kserve/modelmesh Metrics.java timing buckets (ms).
MODELMESH_BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 2, 5, 10, 20, 50, 75, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 60000, 120000,
    300000,
)  # fmt: skip
# Istio default istio_request_duration_milliseconds buckets (ms).
ISTIO_BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
    1800000, 3600000,
)  # fmt: skip
# Knative <= 1.18 revision_request_latencies buckets (ms).
KNATIVE_BOUNDS_MS: tuple[float, ...] = (
    5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000,
    2000, 5000, 10000, 20000, 50000, 100000,
)  # fmt: skip
# vLLM vllm/v1/metrics/loggers.py histogram buckets (seconds): time to first token, inter-token
# latency, end-to-end request latency.
VLLM_TTFT_BOUNDS_S: tuple[float, ...] = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
    20.0, 40.0, 80.0, 160.0, 640.0, 2560.0,
)  # fmt: skip
VLLM_ITL_BOUNDS_S: tuple[float, ...] = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
    40.0, 80.0,
)  # fmt: skip
VLLM_E2E_BOUNDS_S: tuple[float, ...] = (
    0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0,
    480.0, 960.0, 1920.0, 7680.0,
)  # fmt: skip
# OVMS model_metric_reporter.cpp: floor(10 * 1.8^i) µs for i = 0..32.
OVMS_BOUNDS_US: tuple[int, ...] = tuple(math.floor(10 * 1.8**i) for i in range(33))


def us_to_ms(microseconds: float) -> float:
    return microseconds / 1000.0


LATENCY_GRID_MS: tuple[float, ...] = tuple(
    sorted(
        {float(b) for b in MODELMESH_BOUNDS_MS}
        | {float(b) for b in ISTIO_BOUNDS_MS}
        | {float(b) for b in KNATIVE_BOUNDS_MS}
        | {us_to_ms(b) for b in OVMS_BOUNDS_US}
    )
)
# z of the 99th percentile of the standard normal.
_Z99 = 2.3263478740408408


@dataclass(frozen=True)
class LatencyProfile:
    """A lognormal latency distribution pinned by its median and 99th percentile (ms)."""

    p50_ms: float
    p99_ms: float

    def __post_init__(self) -> None:
        if not 0 < self.p50_ms < self.p99_ms:
            raise ValueError(f"need 0 < p50 < p99, got p50={self.p50_ms} p99={self.p99_ms}")

    @property
    def mu(self) -> float:
        return math.log(self.p50_ms)

    @property
    def sigma(self) -> float:
        return math.log(self.p99_ms / self.p50_ms) / _Z99

    def fraction_slower_than(self, threshold_ms: float) -> float:
        return 1.0 - _normal_cdf((math.log(threshold_ms) - self.mu) / self.sigma)


def _normal_cdf(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


@dataclass(frozen=True)
class BucketModel:
    """Probability of each grid bucket (the last is +Inf) and the mean latency inside it."""

    probabilities: tuple[float, ...]
    conditional_means_ms: tuple[float, ...]


@cache
def bucket_model(profile: LatencyProfile, grid: tuple[float, ...] = LATENCY_GRID_MS) -> BucketModel:
    """Bucket probabilities and in-bucket means of the lognormal, for drawing counts and sums."""
    mu, sigma = profile.mu, profile.sigma
    mean = math.exp(mu + sigma * sigma / 2)
    edges = [-math.inf, *(math.log(b) for b in grid), math.inf]
    probabilities: list[float] = []
    means: list[float] = []
    for low, high in itertools.pairwise(edges):
        mass = _normal_cdf((high - mu) / sigma) - _normal_cdf((low - mu) / sigma)
        # Partial expectation of a lognormal: E[X; a < X < b] = mean·(Φ(b' - σ) - Φ(a' - σ)).
        partial = mean * (
            _normal_cdf((high - mu) / sigma - sigma) - _normal_cdf((low - mu) / sigma - sigma)
        )
        probabilities.append(max(mass, 0.0))
        if mass > 0:
            means.append(partial / mass)
        else:
            means.append(math.exp(high) if math.isfinite(high) else math.exp(low))
    return BucketModel(tuple(probabilities), tuple(means))
