"""The simulated fleet: model versions serving traffic by the weights in Git, one interval at a time.

Pure: `Fleet.advance` takes the state, the traffic split of every policy and a seeded
`random.Random`, and returns the next state with cumulative counters per version (never reset, so
Prometheus `increase()` over an interval gives back exactly what the interval drew).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from policyengine.sim.draws import binomial, multinomial, poisson
from policyengine.sim.latency import LATENCY_GRID_MS, LatencyProfile, bucket_model
from policyengine.values import TrafficSplit

DAY_SECONDS = 24 * 3600.0


@dataclass(frozen=True)
class VersionProfile:
    """How one version of a model behaves: errors, latency, business reward and fairness."""

    name: str  # the version's name in the policy (and in the weights)
    metric_label: str | None = None  # value of the metric set's version label; defaults to name
    error_rate: float = 0.002
    latency_p50_ms: float = 20.0
    latency_p99_ms: float = 150.0
    conversion_rate: float = 0.05  # share of successful requests that convert (the reward)
    spd: float = 0.0  # TrustyAI statistical parity difference
    dir: float = 1.0  # TrustyAI disparate impact ratio
    fairness_noise: float = 0.0  # standard deviation of the gauges around spd/dir per interval
    # TrustyAI drift against the training data: the Python service's test statistic (KS D,
    # Jensen-Shannon, MMD, |t|; high is drift) and the Java service's p-value (low is drift)
    drift_statistic: float = 0.02
    drift_p_value: float = 0.6

    def __post_init__(self) -> None:
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError(f"{self.name}: error rate {self.error_rate} is not in [0, 1]")
        if not 0.0 <= self.conversion_rate <= 1.0:
            raise ValueError(
                f"{self.name}: conversion rate {self.conversion_rate} is not in [0, 1]"
            )
        LatencyProfile(self.latency_p50_ms, self.latency_p99_ms)
        if not 0.0 <= self.drift_p_value <= 1.0:
            raise ValueError(f"{self.name}: drift p-value {self.drift_p_value} is not in [0, 1]")

    @property
    def label(self) -> str:
        return self.metric_label or self.name

    @property
    def latency(self) -> LatencyProfile:
        return LatencyProfile(self.latency_p50_ms, self.latency_p99_ms)


@dataclass(frozen=True)
class ModelProfile:
    """One released model: the policy that releases it, its versions and its live traffic."""

    policy: str  # the ReleasePolicy key, namespace/name
    namespace: str
    model: str  # model (InferenceService / OVMS model) name, used in labels
    versions: tuple[VersionProfile, ...]
    rps: float = 50.0  # mean requests per second over a day
    diurnal_amplitude: float = 0.3  # rps × (1 + a·sin(2π t / 24h))

    def __post_init__(self) -> None:
        if not 0.0 <= self.diurnal_amplitude <= 1.0:
            raise ValueError(f"{self.policy}: diurnal amplitude must be in [0, 1]")
        names = [v.name for v in self.versions]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.policy}: version names must be unique: {names}")

    def version(self, name: str) -> VersionProfile:
        for version in self.versions:
            if version.name == name:
                return version
        known = ", ".join(v.name for v in self.versions)
        raise ValueError(
            f"{self.policy}: the split names version {name!r}, not simulated ({known})"
        )

    def rate_at(self, at: datetime) -> float:
        """Requests per second at an instant: the diurnal sine over UTC time of day."""
        phase = 2 * math.pi * (at.timestamp() % DAY_SECONDS) / DAY_SECONDS
        return self.rps * (1 + self.diurnal_amplitude * math.sin(phase))


@dataclass(frozen=True)
class VersionKey:
    policy: str
    version: str


@dataclass(frozen=True)
class LatencyCounts:
    """Requests with their latency sum and per-bucket counts on the fleet's grid (+Inf last)."""

    count: int = 0
    sum_ms: float = 0.0
    buckets: tuple[int, ...] = ()

    def plus(self, other: LatencyCounts) -> LatencyCounts:
        if not self.buckets:
            return other
        if not other.buckets:
            return self
        return LatencyCounts(
            self.count + other.count,
            self.sum_ms + other.sum_ms,
            tuple(a + b for a, b in zip(self.buckets, other.buckets, strict=True)),
        )

    def cumulative(self, grid: tuple[float, ...] = LATENCY_GRID_MS) -> dict[float, int]:
        """Requests at or below each grid bound (Prometheus `le`), +Inf included as math.inf."""
        running = 0
        result: dict[float, int] = {}
        padded = self.buckets or (0,) * (len(grid) + 1)
        for bound, count in zip((*grid, math.inf), padded, strict=True):
            running += count
            result[bound] = running
        return result

    def slower_than(self, threshold_ms: float, grid: tuple[float, ...] = LATENCY_GRID_MS) -> int:
        """Requests above a grid bound."""
        if threshold_ms not in grid:
            raise ValueError(f"{threshold_ms} ms is not a bucket bound of the simulated grid")
        return self.count - self.cumulative(grid)[threshold_ms]

    def quantile_ms(self, q: float, grid: tuple[float, ...] = LATENCY_GRID_MS) -> float | None:
        """Estimated quantile, interpolated inside its bucket as `histogram_quantile` does."""
        if self.count == 0:
            return None
        rank = q * self.count
        previous_bound, previous_count = 0.0, 0
        for bound, running in self.cumulative(grid).items():
            if running >= rank:
                if math.isinf(bound):
                    return previous_bound
                inside = running - previous_count
                share = (rank - previous_count) / inside if inside else 1.0
                return previous_bound + (bound - previous_bound) * share
            previous_bound, previous_count = bound, running
        return previous_bound


@dataclass(frozen=True)
class VersionTraffic:
    """What one version served over a span: successes, failures, mirrored copies, conversions."""

    ok: LatencyCounts = field(default_factory=LatencyCounts)
    failed: LatencyCounts = field(default_factory=LatencyCounts)
    mirrored: int = 0  # of the requests above, how many were mirror copies
    conversions: int = 0

    @property
    def requests(self) -> int:
        return self.ok.count + self.failed.count

    @property
    def errors(self) -> int:
        return self.failed.count

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def latency(self) -> LatencyCounts:
        return self.ok.plus(self.failed)

    def plus(self, other: VersionTraffic) -> VersionTraffic:
        return VersionTraffic(
            self.ok.plus(other.ok),
            self.failed.plus(other.failed),
            self.mirrored + other.mirrored,
            self.conversions + other.conversions,
        )


@dataclass(frozen=True)
class Fairness:
    spd: float
    dir: float


@dataclass(frozen=True)
class FleetState:
    """The fleet at the end of an interval: cumulative traffic per version since the start."""

    at: datetime
    totals: Mapping[VersionKey, VersionTraffic]
    fairness: Mapping[VersionKey, Fairness]
    intervals: int = 0


@dataclass(frozen=True)
class IntervalResult:
    """What one interval [start, end) drew, per version, and the splits it served."""

    start: datetime
    end: datetime
    traffic: Mapping[VersionKey, VersionTraffic]
    splits: Mapping[str, TrafficSplit]


@dataclass(frozen=True)
class Fleet:
    models: tuple[ModelProfile, ...]
    interval: timedelta = timedelta(minutes=1)
    grid: tuple[float, ...] = LATENCY_GRID_MS

    def __post_init__(self) -> None:
        policies = [m.policy for m in self.models]
        if len(set(policies)) != len(policies):
            raise ValueError(f"one model per policy, got {policies}")
        if self.interval <= timedelta(0):
            raise ValueError("the interval must be positive")

    def model(self, policy: str) -> ModelProfile:
        for model in self.models:
            if model.policy == policy:
                return model
        raise KeyError(policy)

    def keys(self) -> tuple[VersionKey, ...]:
        return tuple(VersionKey(m.policy, v.name) for m in self.models for v in m.versions)

    def start(self, at: datetime) -> FleetState:
        """Every version's counters at zero: exposing them first makes later increases exact."""
        if at.tzinfo is None:
            raise ValueError("simulated time must be timezone-aware")
        zero = self._zero()
        totals = dict.fromkeys(self.keys(), zero)
        fairness = {
            VersionKey(m.policy, v.name): Fairness(v.spd, v.dir)
            for m in self.models
            for v in m.versions
        }
        return FleetState(at, totals, fairness)

    def _zero(self) -> VersionTraffic:
        empty = LatencyCounts(0, 0.0, (0,) * (len(self.grid) + 1))
        return VersionTraffic(empty, empty)

    def advance(
        self, state: FleetState, splits: Mapping[str, TrafficSplit], rng: random.Random
    ) -> tuple[FleetState, IntervalResult]:
        """Serve one interval from state.at with the given split per policy (absent: no traffic)."""
        end = state.at + self.interval
        seconds = self.interval.total_seconds()
        drawn: dict[VersionKey, VersionTraffic] = {key: self._zero() for key in self.keys()}
        fairness = dict(state.fairness)
        for model in self.models:
            split = splits.get(model.policy)
            if split is not None:
                midpoint = state.at + self.interval / 2
                requests = poisson(rng, model.rate_at(midpoint) * seconds)
                for name, served in self._route(model, split, requests, rng).items():
                    live, mirrored = served
                    version = model.version(name)
                    drawn[VersionKey(model.policy, name)] = self._serve(
                        version, live + mirrored, mirrored, rng
                    )
            for version in model.versions:
                if version.fairness_noise > 0:
                    fairness[VersionKey(model.policy, version.name)] = Fairness(
                        version.spd + rng.gauss(0.0, version.fairness_noise),
                        max(0.0, version.dir + rng.gauss(0.0, version.fairness_noise)),
                    )
        totals = {key: state.totals[key].plus(traffic) for key, traffic in drawn.items()}
        result = IntervalResult(state.at, end, drawn, dict(splits))
        return FleetState(end, totals, fairness, state.intervals + 1), result

    @staticmethod
    def _route(
        model: ModelProfile, split: TrafficSplit, requests: int, rng: random.Random
    ) -> dict[str, tuple[int, int]]:
        """Live and mirrored requests per version: a multinomial by weight, mirror a binomial."""
        weighted = [(name, weight) for name, weight in split.weights if weight > 0]
        for name, _ in split.weights:
            model.version(name)  # an unknown version is a mistake in the simulation's setup
        served: dict[str, tuple[int, int]] = {}
        if weighted and requests:
            counts = multinomial(rng, requests, [float(w) for _, w in weighted])
            served = {name: (count, 0) for (name, _), count in zip(weighted, counts, strict=True)}
        if split.mirror_to and split.mirror_percent > 0 and requests:
            model.version(split.mirror_to)
            # Istio mirrors every request of the route with this probability; the copies are
            # reported by the shadow like ordinary inbound traffic.
            copies = binomial(rng, requests, split.mirror_percent / 100.0)
            live, _ = served.get(split.mirror_to, (0, 0))
            served[split.mirror_to] = (live, copies)
        return served

    def _serve(
        self, version: VersionProfile, requests: int, mirrored: int, rng: random.Random
    ) -> VersionTraffic:
        errors = binomial(rng, requests, version.error_rate)
        successes = requests - errors
        model = bucket_model(version.latency, self.grid)
        ok = self._latencies(successes, model.probabilities, model.conditional_means_ms, rng)
        failed = self._latencies(errors, model.probabilities, model.conditional_means_ms, rng)
        # Mirror copies' responses are dropped by the proxy: they cannot convert.
        conversions = binomial(rng, max(0, successes - mirrored), version.conversion_rate)
        return VersionTraffic(ok, failed, mirrored, conversions)

    def _latencies(
        self,
        requests: int,
        probabilities: tuple[float, ...],
        means_ms: tuple[float, ...],
        rng: random.Random,
    ) -> LatencyCounts:
        counts = multinomial(rng, requests, probabilities) if requests else (0,) * len(means_ms)
        # The in-bucket mean keeps _sum consistent with the buckets without drawing each request.
        total = math.fsum(c * m for c, m in zip(counts, means_ms, strict=True))
        return LatencyCounts(requests, total, counts)


def splits_of(weights: Mapping[str, Mapping[str, int]]) -> dict[str, TrafficSplit]:
    """Splits per policy from plain weights, for tests and scripted scenarios."""
    return {policy: TrafficSplit.of(dict(split)) for policy, split in weights.items()}
