"""The pass's metric queries fanned out per policy through an index by version label, so that the
work after the queries grows with the number of series, not with policies times series.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from policyengine.analysis.observations import DataStatus, Observations
from policyengine.metrics.collector import MetricNeed, QueryKey, observations_from, plan_queries
from policyengine.metrics.provider import MetricsProvider, QueryResult, Series


def collect_indexed(
    provider: MetricsProvider, needs: Sequence[MetricNeed], now: datetime
) -> dict[str, Observations]:
    """`collector.collect`, with each policy's Observations built from only its own series.

    Above a few hundred versions a query selects every version (`label=~".+"`), and filtering the
    whole answer again for each policy would cost policies x series.
    """
    plan = plan_queries(needs, now)
    results: dict[QueryKey, QueryResult] = dict(plan.settled)
    unreachable: QueryResult | None = None
    for query in plan.queries:
        if unreachable is not None:
            # One refused connection answers for the rest: retrying each would only add delay.
            results[query.key] = unreachable
            continue
        result = provider.query_range(query.promql, query.start, query.end, query.step)
        if result.status is DataStatus.UNREACHABLE:
            unreachable = result
        results[query.key] = result
    by_value: dict[QueryKey, dict[str | None, list[Series]]] = {}
    for key, result in results.items():
        index: dict[str | None, list[Series]] = defaultdict(list)
        for series in result.series:
            index[series.labels.get(key.version_label)].append(series)
        by_value[key] = index
    needs_by_policy: dict[str, list[MetricNeed]] = defaultdict(list)
    for need in needs:
        needs_by_policy[need.policy_key].append(need)
    observations: dict[str, Observations] = {}
    for policy_needs in needs_by_policy.values():
        values = dict.fromkeys(v for need in policy_needs for v in need.versions.values())
        # Every key of the pass, narrowed: the pass has a handful, and a policy's own keys would
        # cost a query_key per need and role to find.
        narrowed = {
            key: replace(
                result, series=tuple(s for value in values for s in by_value[key].get(value, ()))
            )
            for key, result in results.items()
        }
        observations.update(observations_from(policy_needs, narrowed))
    return observations
