"""The demo's report data: each release's timeline from Git history (decisions) and the simulator's
counts (weights served, per-version metrics). Pure: history entries and intervals in.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from policyengine.analysis.rewards import RewardAssessment, VersionReward
from policyengine.gitops.history import HistoryEntry
from policyengine.metrics.catalog import metrics_of
from policyengine.policy.models import ReleasePolicy
from policyengine.report_html import DecisionRecord, MetricSeries, Point, ReleaseTimeline
from policyengine.sim.fleet import IntervalResult
from policyengine.sim.timeline import metric_series, served_weights
from policyengine.values import TrafficSplit

CHART_WINDOW = 5  # intervals pooled per point: one minute of a 10 % canary is mostly noise


def release_timeline(
    policy: ReleasePolicy,
    entries: Sequence[HistoryEntry],
    intervals: Sequence[IntervalResult],
    evidence: Mapping[tuple[str, datetime], str],
    story: str,
    rewards: Sequence[tuple[datetime, RewardAssessment]] = (),
) -> ReleaseTimeline:
    """`evidence` is each decision's Markdown evidence by (policy key, Evaluated-At); `rewards`
    the A/B/n evidence of every pass, charted as the reward estimates and P(best)."""
    error_bound, slow_threshold, slow_bound = _objective_bounds(policy)
    decisions = tuple(
        DecisionRecord(
            at=entry.time,
            decision=entry.decision,
            split=parse_weights(entry.weights),
            reason=entry.reason,
            evidence_md=evidence.get((entry.policy, entry.time), ""),
        )
        for entry in entries
        if entry.policy == policy.key
    )
    return ReleaseTimeline(
        policy=policy.key,
        weights=served_weights(intervals, policy.key),
        metrics=reward_series(rewards)
        + metric_series(
            intervals,
            policy.key,
            [version.name for version in policy.spec.versions],
            slow_threshold_ms=slow_threshold,
            window=CHART_WINDOW,
            error_bound=error_bound,
            slow_bound=slow_bound,
        ),
        decisions=decisions,
        outcome=outcome_line(decisions),
        notes=(story,),
    )


def reward_series(
    rewards: Sequence[tuple[datetime, RewardAssessment]],
) -> tuple[MetricSeries, ...]:
    """Two charts of an A/B/n test: each version's reward estimate and its P(best), per pass."""
    if not rewards:
        return ()
    names = [row.version for row in rewards[-1][1].versions]
    metric = rewards[-1][1].metric

    def lines(
        value: Callable[[VersionReward], float | None],
    ) -> tuple[tuple[str, tuple[Point, ...]], ...]:
        found = []
        for name in names:
            points = []
            for at, evidence in rewards:
                row = evidence.of(name)
                points.append((at, None if row is None else value(row)))
            found.append((name, tuple(points)))
        return tuple(found)

    return (
        MetricSeries(
            f"reward: {metric} (pooled estimate)",
            "%",
            lines(lambda r: None if r.estimate is None else 100.0 * r.estimate),
        ),
        MetricSeries(
            "P(best): probability of having the best reward",
            "%",
            lines(lambda r: 100.0 * r.p_best if r.live else 0.0),
        ),
    )


def outcome_line(decisions: Sequence[DecisionRecord]) -> str:
    final = next((d for d in reversed(decisions) if d.decision in ("promote", "rollback")), None)
    if final is None:
        return "no conclusion yet"
    steps = sum(1 for d in decisions if d.decision == "advance")
    if final.decision == "promote":
        return f"promoted ({final.split.trailer()}) after {steps} steps"
    return f"rolled back to {final.split.trailer()} after {steps} step(s)"


def parse_weights(trailer: str) -> TrafficSplit:
    """`v1=90,v2=10` (the Weights trailer; a mirror part, if any, is left out of the chart)."""
    weights: dict[str, int] = {}
    for part in trailer.split(","):
        name, sep, value = part.strip().partition("=")
        if sep and value.strip().isdigit():
            weights[name.strip()] = int(value)
    return TrafficSplit.of(weights)


def _objective_bounds(policy: ReleasePolicy) -> tuple[float | None, float | None, float | None]:
    error_bound = slow_threshold = slow_bound = None
    for objective in policy.spec.objectives:
        if objective.metric == "error-rate" and error_bound is None:
            error_bound = objective.max
        elif objective.threshold is not None and slow_threshold is None:
            # the chart counts on the simulator's millisecond grid; vLLM thresholds are seconds
            in_ms = objective.threshold * _MS_PER_UNIT.get(_unit_of(policy, objective.metric), 1)
            slow_threshold, slow_bound = in_ms, objective.max
    return error_bound, slow_threshold, slow_bound


_MS_PER_UNIT = {"s": 1000.0, "us": 0.001}


def _unit_of(policy: ReleasePolicy, metric: str) -> str:
    _, metrics = metrics_of(policy)
    template = metrics.get(metric)
    return (template.unit if template is not None else None) or "ms"
