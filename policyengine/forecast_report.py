"""`validate --prometheus URL`: for each canary policy, how long an unchanged candidate needs to
pass each relative objective at the baseline's current rate and traffic, and a warning when the
schedule or `analysis.maxDuration` cannot reach a decision (the shell around analysis.forecast).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from policyengine.analysis.assessment import margin_of
from policyengine.analysis.forecast import Forecast, forecast
from policyengine.metrics.catalog import metrics_of
from policyengine.metrics.collector import collect, needs_of, observation_key
from policyengine.metrics.prometheus import PrometheusProvider
from policyengine.policy.duration import parse_duration
from policyengine.policy.loader import LoadedPolicy
from policyengine.policy.models import CanaryStrategy, MetricSet, Provider

LOOKBACK = timedelta(hours=1)
"""How much of the baseline's recent history sets its rate and traffic."""


def policy_forecasts(
    loaded: LoadedPolicy, metric_sets: dict[str, MetricSet], url: str, now: datetime
) -> list[str]:
    """One line per relative objective of a canary policy: info, or a warning when the release
    cannot conclude in time. Lines start with the policy's path."""
    policy = loaded.policy
    strategy = policy.spec.strategy
    source = policy.spec.metrics
    if not isinstance(strategy, CanaryStrategy) or source is None:
        return []
    relative = [
        o
        for o in policy.spec.objectives
        if o.max_increase is not None or o.max_relative_increase is not None
    ]
    if not relative:
        return []
    metric_set, metrics = metrics_of(policy, metric_sets)
    provider = PrometheusProvider.from_settings(source.provider or Provider(), url)
    try:
        needs = needs_of(policy, metric_set, metrics, now - LOOKBACK)
        observed = collect(provider, needs, now).get(policy.key)
    finally:
        provider.close()
    where = f"{loaded.path}: {policy.key}"
    if observed is None:
        return [f"{where}: warning: nothing to measure the baseline with at {url}"]
    baseline = policy.spec.baseline.name
    minutes = LOOKBACK.total_seconds() / 60.0
    requests = sum(w.total for windows in observed.traffic.values() for w in windows) / minutes
    dwell = parse_duration(strategy.min_dwell).total_seconds() / 60.0
    schedule = [(weight, dwell) for weight in strategy.weights()]
    schedule_minutes = dwell * len(schedule)
    limit = parse_duration(policy.spec.analysis.max_duration).total_seconds() / 60.0
    lines = []
    for objective in relative:
        template = metrics.get(objective.metric)
        histogram = template is not None and template.type == "histogram"
        key = observation_key(objective.metric, objective.threshold if histogram else None)
        measured = observed.metrics.get(key)
        windows = measured.windows.get(baseline, ()) if measured is not None else ()
        total = sum(w.total for w in windows)
        if total <= 0:
            lines.append(
                f"{where}: warning: {objective.display_name}: no traffic of {baseline} in the "
                f"last hour at {url}: time to decision unknown"
            )
            continue
        rate = sum(w.events for w in windows) / total
        margin = margin_of(objective, rate)
        result = forecast(
            objective.display_name,
            schedule,
            requests,
            rate,
            margin,
            policy.spec.analysis.beta,
            limit,
        )
        lines.append(describe(where, result, schedule_minutes))
    return lines


def describe(where: str, result: Forecast, schedule_minutes: float) -> str:
    facts = (
        f"{result.objective}: baseline {100 * result.baseline_rate:.3g} % at "
        f"{result.requests_per_minute / 60:.3g} req/s, margin {100 * result.margin:.3g} pp"
    )
    if result.minutes > result.limit_minutes:
        provable = (
            f"the smallest margin provable in {_duration(result.limit_minutes)} is "
            f"{100 * result.provable_margin:.3g} pp (set maxIncrease)"
            if math.isfinite(result.provable_margin)
            else f"no margin is provable in {_duration(result.limit_minutes)}"
        )
        expected = (
            f"~{_duration(result.minutes)}" if math.isfinite(result.minutes) else "over a week"
        )
        return (
            f"{where}: warning: {facts}: an unchanged candidate needs {expected} to pass, more "
            f"than maxDuration {_duration(result.limit_minutes)}: the release cannot reach a "
            f"decision; {provable}"
        )
    after = max(result.minutes, schedule_minutes)
    return (
        f"{where}: {facts}: an unchanged candidate is expected to pass in ~"
        f"{_duration(result.minutes)} (promotion at ~{_duration(after)}, the schedule takes "
        f"{_duration(schedule_minutes)})"
    )


def _duration(minutes: float) -> str:
    if minutes >= 120:
        return f"{minutes / 60:.1f} h"
    return f"{max(1, round(minutes))} min"
