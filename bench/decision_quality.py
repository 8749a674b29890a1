"""Decision quality: how often a release method rolls back a good version, how surely and quickly it
rolls back a bad one, on simulated version traffic.

The engine's own `assess` and canary `decide` run beside Flagger's and Argo Rollouts' documented
semantics, all on the same random streams. Usage:

    python bench/decision_quality.py --out decision_quality.json [--trials 2000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import random
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policyengine.analysis.assessment import assess
from policyengine.analysis.observations import (
    DataStatus,
    MetricObservation,
    Observations,
    WindowCounts,
    observation_key,
)
from policyengine.metrics.catalog import metrics_of
from policyengine.policy.models import MetricTemplate, ReleasePolicy
from policyengine.strategies.canary import decide
from policyengine.strategies.decision import Decision, Phase, TrafficSplit
from policyengine.strategies.release import apply
from policyengine.strategies.status import ReleaseStatus

STEPS = (10, 20, 30, 40, 50)
MINUTES_PER_STEP = 6
SCHEDULE_MINUTES = MINUTES_PER_STEP * len(STEPS)
CAP_MINUTES = 120
PROMOTION_DEADLINE = 60  # acceptance: A/A promoted within this many minutes
ANCHOR_ERROR_BOUND = 0.01
FLAGGER_THRESHOLD = 5

# Latency: log-normal, median 60 ms, p99 ≈ 240 ms; the objective's threshold is the 250 ms bucket
# bound, above which 0.83 % of the baseline's requests fall.
LATENCY_MEDIAN_MS = 60.0
LATENCY_SIGMA = 0.596
BUCKETS_MS = (10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 250.0, 300.0, 400.0, 500.0, 750.0, 1000.0)
LATENCY_THRESHOLD_MS = 250.0
DIURNAL_AMPLITUDE = 0.3
START = datetime(2024, 3, 1, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
BASELINE, CANDIDATE = "v1", "v2"
ERRORS, LATENCY = "error-rate", "latency"


@dataclass(frozen=True)
class Scenario:
    name: str
    baseline_errors: float
    candidate_errors: float
    latency_factor: float  # candidate latency = baseline latency × factor (every quantile)
    anchor_metric: str  # what the anchors check: the metric the scenario is about


SCENARIOS = (
    Scenario("aa-0.5pct", 0.005, 0.005, 1.0, ERRORS),
    Scenario("aa-0.9pct", 0.009, 0.009, 1.0, ERRORS),
    Scenario("regress-1.5x", 0.005, 0.0075, 1.0, ERRORS),
    Scenario("regress-3x", 0.005, 0.015, 1.0, ERRORS),
    Scenario("latency-regress", 0.005, 0.005, 2.0, LATENCY),
)
RATES = (10, 100)
METHODS = ("policyengine", "flagger", "argo")


def policy_document() -> dict[str, object]:
    """The engine's policy: the same schedule as the anchors, errors and latency as objectives."""
    return {
        "apiVersion": "policyengine.io/v1alpha1",
        "kind": "ReleasePolicy",
        "metadata": {"name": "bench", "namespace": "bench"},
        "spec": {
            "target": {"router": "istio", "manifests": [{"path": "vs.yaml"}]},
            "versions": [
                {"name": BASELINE, "role": "baseline"},
                {"name": CANDIDATE, "role": "candidate"},
            ],
            "strategy": {"type": "canary", "steps": list(STEPS), "minDwell": "6m"},
            "objectives": [
                {
                    "metric": ERRORS,
                    "max": ANCHOR_ERROR_BOUND,
                    "maxIncrease": 0.001,
                    "maxRelativeIncrease": 0.2,
                },
                {
                    "metric": LATENCY,
                    "threshold": LATENCY_THRESHOLD_MS,
                    "max": 0.01,
                    "maxIncrease": 0.001,
                    "maxRelativeIncrease": 0.2,
                },
            ],
            "analysis": {"interval": "1m", "maxDuration": f"{CAP_MINUTES}m"},
            "onInconclusive": "hold",
            "metrics": {
                "templates": {
                    ERRORS: {
                        "type": "proportion",
                        "events": "sum(increase(errors_total[${window}]))",
                        "total": "sum(increase(requests_total[${window}]))",
                    },
                    LATENCY: {
                        "type": "histogram",
                        "buckets": "sum(increase(latency_ms_bucket[${window}])) by (le)",
                        "unit": "ms",
                    },
                }
            },
        },
    }


@cache
def bench_policy() -> tuple[ReleasePolicy, dict[str, MetricTemplate]]:
    policy = ReleasePolicy.model_validate(policy_document())
    return policy, metrics_of(policy)[1]


# --- traffic -------------------------------------------------------------------------------------


def _normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def slow_fraction(factor: float, threshold: float = LATENCY_THRESHOLD_MS) -> float:
    """P(latency > threshold) when every quantile of the baseline is multiplied by `factor`."""
    return 1.0 - _normal_cdf(math.log(threshold / (LATENCY_MEDIAN_MS * factor)) / LATENCY_SIGMA)


def bucket_probabilities(factor: float) -> list[float]:
    """Probability of each bucket (the last one is +Inf) for a latency scaled by `factor`."""
    cumulative = [1.0 - slow_fraction(factor, bound) for bound in BUCKETS_MS] + [1.0]
    return [c - (cumulative[i - 1] if i else 0.0) for i, c in enumerate(cumulative)]


def binomial(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw: exact (geometric skips) for rare events, normal beyond 30 expected."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    if p > 0.5:
        return n - binomial(rng, n, 1.0 - p)
    mean = n * p
    if mean > 30.0:
        draw = round(rng.gauss(mean, math.sqrt(mean * (1.0 - p))))
        return min(n, max(0, draw))
    log_q = math.log1p(-p)
    count = 0
    position = math.floor(math.log(1.0 - rng.random()) / log_q)
    while position < n:
        count += 1
        position += 1 + math.floor(math.log(1.0 - rng.random()) / log_q)
    return count


def poisson_large(rng: random.Random, mean: float) -> int:
    return max(0, round(rng.gauss(mean, math.sqrt(mean))))


@dataclass(frozen=True)
class Minute:
    """What both versions did in one minute."""

    baseline_total: int
    baseline_errors: int
    baseline_slow: int
    candidate_total: int
    candidate_errors: int
    candidate_slow: int
    candidate_p99: float  # histogram_quantile(0.99) of the candidate's minute (latency scenario)


def histogram_quantile(quantile: float, counts: Sequence[int]) -> float:
    """Prometheus' histogram_quantile over per-bucket counts (last bucket +Inf)."""
    total = sum(counts)
    if total == 0:
        return math.nan
    rank = quantile * total
    cumulative = 0
    for i, count in enumerate(counts):
        below = cumulative
        cumulative += count
        if cumulative >= rank:
            if i == len(BUCKETS_MS):
                return BUCKETS_MS[-1]
            lower = BUCKETS_MS[i - 1] if i else 0.0
            return lower + (BUCKETS_MS[i] - lower) * (rank - below) / count
    return BUCKETS_MS[-1]


@dataclass
class TrafficStream:
    """One trial's traffic, minute by minute. Minutes are cached by (minute, weight): methods on
    the same schedule see exactly the same requests, errors and latencies."""

    scenario: Scenario
    rps: float
    rng: random.Random
    phase: float
    cache: dict[tuple[int, int], Minute] = field(default_factory=dict)

    def minute(self, index: int, weight: int) -> Minute:
        key = (index, weight)
        if key not in self.cache:
            self.cache[key] = self._draw(index, weight)
        return self.cache[key]

    def _draw(self, index: int, weight: int) -> Minute:
        s, rng = self.scenario, self.rng
        diurnal = 1.0 + DIURNAL_AMPLITUDE * math.sin(2 * math.pi * (index / 1440.0 + self.phase))
        total = poisson_large(rng, self.rps * 60.0 * diurnal)
        candidate = binomial(rng, total, weight / 100.0)
        baseline = total - candidate
        base_slow = binomial(rng, baseline, _BASELINE_SLOW)
        p99 = math.nan
        if s.anchor_metric == LATENCY:
            counts = _multinomial(rng, candidate, _bucket_probabilities(s.latency_factor))
            slow = sum(counts[BUCKETS_MS.index(LATENCY_THRESHOLD_MS) + 1 :])
            p99 = histogram_quantile(0.99, counts)
        else:
            slow = binomial(rng, candidate, _slow_fraction(s.latency_factor))
        return Minute(
            baseline_total=baseline,
            baseline_errors=binomial(rng, baseline, s.baseline_errors),
            baseline_slow=base_slow,
            candidate_total=candidate,
            candidate_errors=binomial(rng, candidate, s.candidate_errors),
            candidate_slow=slow,
            candidate_p99=p99,
        )


@cache
def _slow_fraction(factor: float) -> float:
    return slow_fraction(factor)


@cache
def _bucket_probabilities(factor: float) -> tuple[float, ...]:
    return tuple(bucket_probabilities(factor))


_BASELINE_SLOW = slow_fraction(1.0)


def _multinomial(rng: random.Random, n: int, probabilities: Sequence[float]) -> list[int]:
    counts = []
    left, mass = n, 1.0
    for p in probabilities[:-1]:
        draw = binomial(rng, left, min(1.0, p / mass)) if mass > 0 else 0
        counts.append(draw)
        left -= draw
        mass -= p
    counts.append(left)
    return counts


# --- methods -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    decision: str  # "rollback", "promote" or "none" (still running at the cap)
    minute: int


def schedule_weight(minute: int) -> int:
    """Candidate weight during minute `minute` (1-based) of the fixed schedule."""
    return STEPS[min((minute - 1) // MINUTES_PER_STEP, len(STEPS) - 1)]


def run_anchor(stream: TrafficStream, failure_limit: int) -> Result:
    """Flagger (failure_limit = threshold 5, counter never reset) or Argo Rollouts (limit 1)."""
    failures = 0
    for minute in range(1, SCHEDULE_MINUTES + 1):
        data = stream.minute(minute, schedule_weight(minute))
        if stream.scenario.anchor_metric == LATENCY:
            failed = not data.candidate_p99 <= LATENCY_THRESHOLD_MS  # NaN: "no values found"
        else:
            failed = (
                data.candidate_total == 0
                or data.candidate_errors / data.candidate_total > ANCHOR_ERROR_BOUND
            )
        failures += failed
        if failures >= failure_limit:
            return Result("rollback", minute)
    return Result("promote", SCHEDULE_MINUTES)


def run_engine(stream: TrafficStream) -> Result:
    """The engine's own assessment and canary strategy, one pass per minute."""
    policy, metrics = bench_policy()
    status = ReleaseStatus(
        policy=policy.key,
        phase=Phase.PROGRESSING,
        release_id="bench",
        step=0,
        step_started_at=START,
        release_started_at=START,
        split=TrafficSplit.of({BASELINE: 100 - STEPS[0], CANDIDATE: STEPS[0]}),
    )
    errors: dict[str, list[WindowCounts]] = {BASELINE: [], CANDIDATE: []}
    slow: dict[str, list[WindowCounts]] = {BASELINE: [], CANDIDATE: []}
    latency_key = observation_key(LATENCY, LATENCY_THRESHOLD_MS)
    for minute in range(1, CAP_MINUTES + 1):
        start = START + (minute - 1) * MINUTE
        data = stream.minute(minute, status.split.weight(CANDIDATE))
        errors[BASELINE].append(WindowCounts(start, data.baseline_errors, data.baseline_total))
        errors[CANDIDATE].append(WindowCounts(start, data.candidate_errors, data.candidate_total))
        slow[BASELINE].append(WindowCounts(start, data.baseline_slow, data.baseline_total))
        slow[CANDIDATE].append(WindowCounts(start, data.candidate_slow, data.candidate_total))
        error_windows = {name: tuple(windows) for name, windows in errors.items()}
        observations = Observations(
            metrics={
                ERRORS: MetricObservation(ERRORS, "proportion", DataStatus.OK, error_windows),
                latency_key: MetricObservation(
                    LATENCY,
                    "proportion",
                    DataStatus.OK,
                    {name: tuple(windows) for name, windows in slow.items()},
                    threshold=LATENCY_THRESHOLD_MS,
                ),
            },
            traffic=error_windows,
        )
        now = START + minute * MINUTE
        assessment = assess(
            policy, metrics, observations, status.split, status.step_started_at, now
        )
        outcome = decide(policy, status, assessment, now)
        if outcome.decision is Decision.ROLLBACK:
            return Result("rollback", minute)
        if outcome.decision is Decision.PROMOTE:
            return Result("promote", minute)
        if outcome.decision is Decision.DONE or outcome.phase is Phase.INCONCLUSIVE:
            break
        status = apply(status, outcome, now)
    return Result("none", CAP_MINUTES)


def trial_stream(scenario: Scenario, rps: int, seed: int, trial: int) -> TrafficStream:
    rng = random.Random(f"{seed}:{scenario.name}:{rps}:{trial}")
    return TrafficStream(scenario, float(rps), rng, phase=rng.random())


def run_trials(job: tuple[str, int, int, int, int]) -> dict[str, list[Result]]:
    """One chunk of trials of one scenario and rate, every method on each trial's stream."""
    name, rps, seed, first, count = job
    scenario = next(s for s in SCENARIOS if s.name == name)
    results: dict[str, list[Result]] = {method: [] for method in METHODS}
    for trial in range(first, first + count):
        stream = trial_stream(scenario, rps, seed, trial)
        results["policyengine"].append(run_engine(stream))
        results["flagger"].append(run_anchor(stream, FLAGGER_THRESHOLD))
        results["argo"].append(run_anchor(stream, 1))
    return results


# --- summary -------------------------------------------------------------------------------------


def summarise(scenario: str, rps: int, method: str, results: list[Result]) -> dict[str, object]:
    trials = len(results)
    rollbacks = [r.minute for r in results if r.decision == "rollback"]
    promotions = [r.minute for r in results if r.decision == "promote"]
    return {
        "scenario": scenario,
        "rps": rps,
        "method": method,
        "trials": trials,
        "rollback_rate": len(rollbacks) / trials,
        "promote_rate": len(promotions) / trials,
        "median_minutes_to_rollback": statistics.median(rollbacks) if rollbacks else None,
        "median_minutes_to_promote": statistics.median(promotions) if promotions else None,
        "promote_rate_within_60m": sum(m <= PROMOTION_DEADLINE for m in promotions) / trials,
    }


def jobs(trials: int, seed: int, chunk: int) -> Iterator[tuple[str, int, int, int, int]]:
    for scenario in SCENARIOS:
        for rps in RATES:
            for first in range(0, trials, chunk):
                yield scenario.name, rps, seed, first, min(chunk, trials - first)


def run(trials: int, seed: int, processes: int) -> list[dict[str, object]]:
    collected: dict[tuple[str, int, str], list[Result]] = {}
    work = list(jobs(trials, seed, chunk=max(1, min(100, trials))))
    if processes > 1:
        with multiprocessing.Pool(processes) as pool:
            outputs = pool.map(run_trials, work, chunksize=1)
    else:
        outputs = [run_trials(job) for job in work]
    for job, output in zip(work, outputs, strict=True):
        for method, results in output.items():
            collected.setdefault((job[0], job[1], method), []).extend(results)
    return [
        summarise(scenario.name, rps, method, collected[(scenario.name, rps, method)])
        for scenario in SCENARIOS
        for rps in RATES
        for method in METHODS
    ]


def table(rows: list[dict[str, object]]) -> str:
    def cell(value: object, percent: bool = False) -> str:
        if value is None:
            return "–"
        if percent and isinstance(value, float):
            return f"{100 * value:.1f} %"
        return f"{value:g}" if isinstance(value, float) else str(value)

    lines = [
        "| scenario | req/s | method | trials | rolled back | promoted | promoted ≤ 60 min "
        "| median min to rollback | median min to promote |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['scenario']} | {row['rps']} | {row['method']} | {row['trials']} "
            f"| {cell(row['rollback_rate'], True)} | {cell(row['promote_rate'], True)} "
            f"| {cell(row['promote_rate_within_60m'], True)} "
            f"| {cell(row['median_minutes_to_rollback'])} "
            f"| {cell(row['median_minutes_to_promote'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", required=True, type=Path, help="JSON file to write")
    parser.add_argument("--trials", type=int, default=2000, help="trials per scenario and rate")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    started = time.monotonic()
    rows = run(args.trials, args.seed, args.processes)
    elapsed = time.monotonic() - started
    print(table(rows))
    print(f"\n{args.trials} trials per scenario and rate in {elapsed:.0f} s")
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
