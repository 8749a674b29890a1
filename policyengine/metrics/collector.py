"""One metrics pass for many policies: one range query per distinct template and interval, fanned
back into per-policy Observations with counts per concurrent window.

`plan_queries` and `observations_from` are pure; `collect` is the shell that sends the queries.
The fan-out indexes each answer by version label once, so its cost grows with the series
returned, not with policies times series (above a few hundred versions a query selects them all).
"""

from __future__ import annotations

import functools
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from policyengine.analysis.observations import (
    DataStatus,
    GaugePoint,
    MetricObservation,
    Observations,
    WindowCounts,
)
from policyengine.analysis.observations import observation_key as observation_key
from policyengine.errors import PolicyEngineError
from policyengine.metrics import promql
from policyengine.metrics.provider import MetricsProvider, Point, QueryResult, Series
from policyengine.policy.duration import format_duration, parse_duration
from policyengine.policy.models import MetricSet, MetricTemplate, ReleasePolicy

DEFAULT_VERSION_LABEL = "version"
"""Version label of custom templates used without a metric set."""
TRAFFIC_METRICS = ("error-rate",)
"""Metrics whose `total` counts requests, preferred in this order to measure traffic."""
ROLES_BY_TYPE = {"proportion": ("events", "total"), "histogram": ("buckets",), "gauge": ("query",)}
MAX_POINTS_PER_QUERY = 10_000
"""Points per series in one range query. Prometheus refuses more than 11,000 (HTTP 400, "exceeded
maximum resolution"): at a 1-minute interval that is 7.6 days, and releases reviewed step by step
in pull requests last longer. Longer ranges are sent as consecutive queries of at most this many
points, so every window of the release is still measured at the policy's interval."""


@dataclass(frozen=True)
class MetricNeed:
    """One metric that one policy needs in this pass, for its versions since `since`."""

    policy_key: str
    metric_name: str
    template: MetricTemplate
    version_label: str
    namespace_label: str | None
    namespace: str
    model: str | None
    versions: Mapping[str, str]  # version name -> value of the version label
    since: datetime
    interval: timedelta
    threshold: float | None = None  # histogram: the latency bound T, on a bucket bound
    traffic: bool = False  # fills Observations.traffic (requests per version) instead

    @property
    def observation_key(self) -> str:
        return observation_key(self.metric_name, self.threshold)

    def roles(self) -> tuple[str, ...]:
        if self.traffic:
            return ("total",) if self.template.total is not None else ("buckets",)
        return ROLES_BY_TYPE[self.template.type]


@dataclass(frozen=True)
class QueryKey:
    """What makes two needs share one query: same template text, labels, window and values."""

    template: str
    counts: bool  # increase() over windows (events, totals, buckets) versus gauge values
    version_label: str
    namespace_label: str | None
    interval_seconds: int
    namespace: str | None  # only when the template itself uses ${namespace}
    model: str | None  # only when the template itself uses ${model}


@dataclass(frozen=True)
class PlannedQuery:
    key: QueryKey
    promql: str
    start: datetime
    end: datetime
    step: timedelta


@dataclass(frozen=True)
class QueryPlan:
    queries: tuple[PlannedQuery, ...]
    # Keys that need no query: nothing complete yet, or the template is broken.
    settled: Mapping[QueryKey, QueryResult] = field(default_factory=dict)


_NOT_QUERIED = QueryResult(DataStatus.QUERY_ERROR, message="no result for this query in the pass")


def needs_of(
    policy: ReleasePolicy,
    metric_set: MetricSet | None,
    metrics: Mapping[str, MetricTemplate],
    since: datetime,
) -> list[MetricNeed]:
    """The needs of one policy: each objective's and reward's metric, and the request count."""
    source = policy.spec.metrics
    if source is None or not metrics:
        return []
    version_label = source.version_label or (
        metric_set.spec.version_label if metric_set else DEFAULT_VERSION_LABEL
    )
    namespace_label = source.namespace_label or (
        metric_set.spec.namespace_label if metric_set else None
    )
    versions = {v.name: v.label_value for v in policy.spec.versions}
    interval = parse_duration(policy.spec.analysis.interval)

    def need(
        metric: str, template: MetricTemplate, threshold: float | None, traffic: bool
    ) -> MetricNeed:
        return MetricNeed(
            policy_key=policy.key,
            metric_name=metric,
            template=template,
            # A metric from another exporter (TrustyAI beside ModelMesh) names versions its way.
            version_label=template.version_label or version_label,
            namespace_label=template.namespace_label if template.version_label else namespace_label,
            namespace=policy.metadata.namespace,
            model=source.model if source else None,
            versions=versions,
            since=since,
            interval=interval,
            threshold=threshold,
            traffic=traffic,
        )

    needs: dict[str, MetricNeed] = {}
    for objective in policy.spec.objectives:
        template = metrics.get(objective.metric)
        if template is None:
            continue  # validation reports unknown metrics; nothing to measure here
        threshold = objective.threshold if template.type == "histogram" else None
        wanted = need(objective.metric, template, threshold, traffic=False)
        needs.setdefault(wanted.observation_key, wanted)
    for reward in policy.spec.rewards:
        template = metrics.get(reward.metric)
        if template is not None and template.type == "proportion":
            wanted = need(reward.metric, template, None, traffic=False)
            needs.setdefault(wanted.observation_key, wanted)
    traffic_metric = _traffic_metric(metrics)
    if traffic_metric is not None:
        needs["\0traffic"] = need(traffic_metric, metrics[traffic_metric], None, traffic=True)
    return list(needs.values())


def _traffic_metric(metrics: Mapping[str, MetricTemplate]) -> str | None:
    for name in TRAFFIC_METRICS:
        if name in metrics and metrics[name].total is not None:
            return name
    proportions = sorted(n for n, t in metrics.items() if t.type == "proportion")
    histograms = sorted(n for n, t in metrics.items() if t.type == "histogram")
    return next(iter(proportions + histograms), None)


def query_key(need: MetricNeed, role: str) -> QueryKey:
    text = getattr(need.template, role)
    assert isinstance(text, str), f"{need.metric_name} has no {role} query"
    used = _placeholders(text)
    return QueryKey(
        template=text,
        counts=role != "query",
        version_label=need.version_label,
        namespace_label=need.namespace_label,
        interval_seconds=_whole_seconds(need.interval),
        namespace=need.namespace if "namespace" in used else None,
        model=(need.model or "") if "model" in used else None,
    )


def plan_queries(needs: Sequence[MetricNeed], now: datetime) -> QueryPlan:
    """One range query per distinct QueryKey, covering every need that shares it."""
    groups: dict[QueryKey, list[MetricNeed]] = defaultdict(list)
    for need in needs:
        for role in need.roles():
            groups[query_key(need, role)].append(need)
    queries = []
    settled: dict[QueryKey, QueryResult] = {}
    for key, members in groups.items():
        step = key.interval_seconds
        since = min(_seconds(n.since) for n in members)
        # Points sit on multiples of the interval since the epoch, so every pass and every
        # backtest sees the same windows; a counter's point at t covers (t - step, t].
        first_point = since + step if key.counts else since
        start = math.ceil(first_point / step) * step
        end = math.floor(_seconds(now) / step) * step
        if start > end:
            settled[key] = QueryResult(
                DataStatus.NO_DATA,
                message=f"no complete {format_duration(timedelta(seconds=step))} window yet "
                f"since {_at(since).isoformat()}",
            )
            continue
        try:
            text = _render(key, members)
        except (PolicyEngineError, ValueError) as error:
            settled[key] = QueryResult(DataStatus.QUERY_ERROR, message=str(error))
            continue
        # The always-valid statistics intersect their bounds over every window since the release
        # started and stratify by window: coarser windows for old data would change both, so a
        # long release is split into consecutive ranges instead (points never overlap).
        span = MAX_POINTS_PER_QUERY * step
        for first in range(start, end + 1, span):
            last = min(first + span - step, end)
            queries.append(PlannedQuery(key, text, _at(first), _at(last), timedelta(seconds=step)))
    return QueryPlan(tuple(queries), settled)


def _render(key: QueryKey, members: Sequence[MetricNeed]) -> str:
    values = {value for need in members for value in need.versions.values()}
    namespaces = {need.namespace for need in members}
    selector = promql.build_selector(
        key.version_label,
        values,
        key.namespace_label,
        namespaces if key.namespace_label else (),
    )
    return promql.render(
        key.template,
        selector=selector,
        group_by_labels=promql.group_by(key.version_label, key.namespace_label),
        window=format_duration(timedelta(seconds=key.interval_seconds)),
        namespace=key.namespace or "",
        model=key.model or "",
    )


def collect(
    provider: MetricsProvider, needs: Sequence[MetricNeed], now: datetime
) -> dict[str, Observations]:
    """Send the pass's queries (stopping at the first unreachable answer) and fan them out."""
    plan = plan_queries(needs, now)
    parts: dict[QueryKey, list[QueryResult]] = defaultdict(list)
    unreachable: QueryResult | None = None
    for query in plan.queries:
        if unreachable is not None:
            # One refused connection answers for the rest: retrying each would only add delay.
            parts[query.key].append(unreachable)
            continue
        result = plausible(
            provider.query_range(query.promql, query.start, query.end, query.step),
            counts=query.key.counts,
        )
        if result.status is DataStatus.UNREACHABLE:
            unreachable = result
        parts[query.key].append(result)
    results: dict[QueryKey, QueryResult] = dict(plan.settled)
    results.update((key, joined(answers)) for key, answers in parts.items())
    if unreachable is None:
        results.update(_absent_families(provider, needs, plan, results))
    return observations_from(needs, results)


def joined(parts: Sequence[QueryResult]) -> QueryResult:
    """One result from the consecutive ranges of one query: their series joined by label set.

    A failed range fails the whole (the statistics need every window); ranges without data are
    only gaps, as they would be inside one range.
    """
    if len(parts) == 1:
        return parts[0]
    for status in (DataStatus.UNREACHABLE, DataStatus.QUERY_ERROR):
        for part in parts:
            if part.status is status:
                return part
    found = [part for part in parts if part.status is DataStatus.OK]
    if not found:
        return parts[-1]
    points: dict[frozenset[tuple[str, str]], list[Point]] = {}
    labels: dict[frozenset[tuple[str, str]], Mapping[str, str]] = {}
    for part in found:
        for series in part.series:
            identity = frozenset(series.labels.items())
            labels.setdefault(identity, series.labels)
            points.setdefault(identity, []).extend(series.points)
    return QueryResult(
        DataStatus.OK,
        series=tuple(Series(labels[i], tuple(p)) for i, p in points.items()),
        message=found[-1].message,
        query=found[-1].query,
    )


def _absent_families(
    provider: MetricsProvider,
    needs: Sequence[MetricNeed],
    plan: QueryPlan,
    results: Mapping[QueryKey, QueryResult],
) -> dict[QueryKey, QueryResult]:
    """Event queries that matched nothing, turned into query errors when a metric they select
    does not exist at all.

    No error series is zero errors only while the counter family exists: ModelMesh creates the
    `code!="OK"` series on the first failure. A family with no series at all — a misspelt name
    in a metric set, a metric renamed by an upgrade — is not zero errors, and must never pass.
    """
    event_keys = {query_key(n, "events") for n in needs if "events" in n.roles()}
    changed: dict[QueryKey, QueryResult] = {}
    # A long release's range is sent as several queries: probe once per key, over all of them.
    spans: dict[QueryKey, tuple[PlannedQuery, datetime]] = {}
    for query in plan.queries:
        first, _ = spans.get(query.key, (query, query.start))
        spans[query.key] = (query, first.start)
    for query, start in spans.values():
        result = results.get(query.key)
        if query.key not in event_keys or result is None or result.status is not DataStatus.NO_DATA:
            continue
        lookback = max(1, round((query.end - start + query.step).total_seconds()))
        for name in sorted(promql.metric_names(query.key.template)):
            probe = (
                f'count(last_over_time({{__name__="{promql.escape_string_content(name)}"}}'
                f"[{lookback}s]))"
            )
            found = provider.query(probe, query.end)
            if found.status is DataStatus.UNREACHABLE:
                changed[query.key] = found
                break
            if found.status is DataStatus.NO_DATA:
                changed[query.key] = QueryResult(
                    DataStatus.QUERY_ERROR,
                    message=f"metric {name!r} has no series at all at {provider.url} "
                    f"(a misspelt name, or a metric renamed by an upgrade?): {query.promql}",
                    query=query.promql,
                )
                break
    return changed


def observations_from(
    needs: Iterable[MetricNeed], results: Mapping[QueryKey, QueryResult]
) -> dict[str, Observations]:
    """Per policy key, the Observations built from the shared query results."""
    metrics: dict[str, dict[str, MetricObservation]] = {}
    traffic: dict[str, MetricObservation] = {}
    answers: dict[QueryKey, _Answer] = {}

    def answer(key: QueryKey) -> _Answer:
        found = answers.get(key)
        if found is None:
            found = answers[key] = _Answer(results.get(key, _NOT_QUERIED))
        return found

    for need in needs:
        measured = metrics.setdefault(need.policy_key, {})
        observed = _observe(need, {role: answer(query_key(need, role)) for role in need.roles()})
        if need.traffic:
            traffic[need.policy_key] = observed
        else:
            measured[need.observation_key] = observed
    observations = {}
    for key, measured in metrics.items():
        counted = traffic.get(key)
        problems = [m for m in measured.values() if m.status is DataStatus.UNREACHABLE]
        if counted is not None and counted.status is DataStatus.UNREACHABLE:
            problems.insert(0, counted)
        observations[key] = Observations(
            metrics=measured,
            traffic=counted.windows if counted else {},
            traffic_status=counted.status if counted else DataStatus.NO_DATA,
            message=problems[0].message
            if problems
            else (counted.message if counted else "no request metric to measure traffic"),
        )
    return observations


class _Answer:
    """One query's result with its series indexed by the value of a label, built on first use."""

    def __init__(self, result: QueryResult) -> None:
        self.result = result
        self._by_label: dict[str, dict[str | None, list[Series]]] = {}

    @property
    def status(self) -> DataStatus:
        return self.result.status

    def series_of(self, need: MetricNeed, value: str) -> list[Series]:
        """The series of one version of one policy (selectors may be broader than the policy)."""
        index = self._by_label.get(need.version_label)
        if index is None:
            index = self._by_label[need.version_label] = defaultdict(list)
            for series in self.result.series:
                index[series.labels.get(need.version_label)].append(series)
        found = index.get(value, [])
        if need.namespace_label is None:
            return found
        return [s for s in found if s.labels.get(need.namespace_label) == need.namespace]


def _observe(need: MetricNeed, results: Mapping[str, _Answer]) -> MetricObservation:
    kind = "gauge" if need.template.type == "gauge" and not need.traffic else "proportion"
    failed = _worst(results, need)
    if failed is not None:
        return MetricObservation(
            need.metric_name,
            kind,
            failed.status,
            message=failed.result.message,
            threshold=need.threshold,
        )
    if kind == "gauge":
        return _gauges(need, results["query"])
    if "buckets" in results:
        return _histogram(need, results["buckets"])
    return _proportion(need, results.get("events"), results["total"])


def _worst(results: Mapping[str, _Answer], need: MetricNeed) -> _Answer | None:
    for status in (DataStatus.UNREACHABLE, DataStatus.QUERY_ERROR):
        for result in results.values():
            if result.status is status:
                return result
    # A missing error series is zero errors (counters labelled by code appear on first use);
    # any other role without data leaves the metric without data.
    for role, result in results.items():
        if result.status is DataStatus.NO_DATA and role != "events":
            return result
    return None


def _proportion(need: MetricNeed, events: _Answer | None, total: _Answer) -> MetricObservation:
    step = need.interval
    windows: dict[str, tuple[WindowCounts, ...]] = {}
    for version, value in need.versions.items():
        totals = _summed(total.series_of(need, value))
        errors = _summed(events.series_of(need, value)) if events is not None else {}
        windows[version] = tuple(
            # increase() extrapolates each series on its own, so events can overshoot total.
            WindowCounts(at - step, min(errors.get(at, 0.0), count), count)
            for at, count in sorted(totals.items())
            if at - step >= need.since
        )
    return _with_missing(need, "proportion", windows, total.result)


def _histogram(need: MetricNeed, buckets: _Answer) -> MetricObservation:
    step = need.interval
    windows: dict[str, tuple[WindowCounts, ...]] = {}
    for version, value in need.versions.items():
        by_bound: dict[str, list[Series]] = defaultdict(list)
        for series in buckets.series_of(need, value):
            by_bound[series.labels.get("le", "")].append(series)
        if not by_bound:
            windows[version] = ()
            continue
        bounds = {le: _bound(le) for le in by_bound}
        infinite = [le for le, b in bounds.items() if b == math.inf]
        if not infinite:
            return _broken(need, f'{need.metric_name}: no le="+Inf" bucket for {value!r}')
        totals = _summed(by_bound[infinite[0]])
        if need.traffic:
            slow: dict[datetime, float] = {}
        else:
            at_threshold = [
                le
                for le, b in bounds.items()
                if need.threshold is not None and b is not None and math.isclose(b, need.threshold)
            ]
            if not at_threshold:
                available = sorted(b for b in bounds.values() if b is not None and b != math.inf)
                return _broken(
                    need,
                    f"{need.metric_name}: threshold {need.threshold} is not a bucket bound; "
                    f"bounds available: {', '.join(f'{b:g}' for b in available)}",
                )
            fast = _summed(by_bound[at_threshold[0]])
            slow = {at: max(0.0, count - fast[at]) for at, count in totals.items() if at in fast}
        windows[version] = tuple(
            WindowCounts(at - step, min(slow.get(at, 0.0), count), count)
            for at, count in sorted(totals.items())
            if at - step >= need.since and (need.traffic or at in slow)
        )
    return _with_missing(need, "proportion", windows, buckets.result)


def _gauges(need: MetricNeed, answer: _Answer) -> MetricObservation:
    gauges: dict[str, tuple[GaugePoint, ...]] = {}
    for version, value in need.versions.items():
        points: dict[datetime, float] = {}
        for series in answer.series_of(need, value):
            for at, reading in series.points:
                if at in points:
                    return _broken(
                        need,
                        f"{need.metric_name}: several series for {value!r} at once; aggregate "
                        f"the query by (${{groupBy}}) or narrow it with more label matchers",
                    )
                points[at] = reading
        gauges[version] = tuple(
            GaugePoint(at, reading) for at, reading in sorted(points.items()) if at >= need.since
        )
    missing = [version for version, points in gauges.items() if not points]
    status = DataStatus.NO_DATA if missing else DataStatus.OK
    return MetricObservation(
        need.metric_name,
        "gauge",
        status,
        gauges=gauges,
        message=_missing_message(need, missing, answer.result),
    )


def _with_missing(
    need: MetricNeed,
    kind: str,
    windows: dict[str, tuple[WindowCounts, ...]],
    result: QueryResult,
) -> MetricObservation:
    missing = [version for version, counted in windows.items() if not counted]
    return MetricObservation(
        need.metric_name,
        kind,
        DataStatus.NO_DATA if missing else DataStatus.OK,
        windows=windows,
        message=_missing_message(need, missing, result),
        threshold=need.threshold,
    )


def _missing_message(need: MetricNeed, missing: Sequence[str], result: QueryResult) -> str:
    if not missing:
        return ""
    described = ", ".join(
        f"{version} ({need.version_label}={need.versions[version]!r})" for version in missing
    )
    return f"{need.metric_name}: no data since {need.since.isoformat()} for {described}: " + (
        result.query or result.message
    )


def _broken(need: MetricNeed, message: str) -> MetricObservation:
    kind = "gauge" if need.template.type == "gauge" and not need.traffic else "proportion"
    return MetricObservation(
        need.metric_name, kind, DataStatus.QUERY_ERROR, message=message, threshold=need.threshold
    )


def _summed(series: Iterable[Series]) -> dict[datetime, float]:
    sums: dict[datetime, float] = defaultdict(float)
    for one in series:
        for at, value in one.points:
            sums[at] += value
    return dict(sums)


def _bound(le: str) -> float | None:
    try:
        return float(le)
    except ValueError:
        return None


@functools.lru_cache(maxsize=1024)
def _placeholders(text: str) -> frozenset[str]:
    # Every need of a template asks again; a pass of 10,000 policies has a handful of templates.
    try:
        return promql.placeholders_of(text)
    except ValueError:
        return frozenset()


def _whole_seconds(interval: timedelta) -> int:
    # Windows sit on whole seconds (the query API's resolution); sub-second intervals make no sense.
    return max(1, round(interval.total_seconds()))


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


MAX_COUNT = 1e15
"""More events than this in one window is not a count but broken data (a billion requests a
second for a week fits well below it)."""


def plausible(result: QueryResult, counts: bool) -> QueryResult:
    """The answer, unless it holds a count no counter can produce: then the provider is failing.

    Counts (events, totals, buckets) are finite, not negative and below `MAX_COUNT`; an answer
    with anything else is refused whole, naming the series, so that 1e308 errors against 1,000
    requests holds the release instead of rolling it back on data that cannot be true. A gauge
    may be negative; its NaN (a 0/0 ratio) is "no value" and dropped with the infinities.
    """
    if result.status is not DataStatus.OK:
        return result
    if not counts:
        kept = []
        for series in result.series:
            points = tuple(p for p in series.points if math.isfinite(p.value))
            if points:
                kept.append(Series(series.labels, points))
        if len(kept) == len(result.series) and all(
            len(a.points) == len(b.points) for a, b in zip(kept, result.series, strict=True)
        ):
            return result
        if not kept:
            return QueryResult(DataStatus.NO_DATA, message=result.message, query=result.query)
        return QueryResult(
            DataStatus.OK, series=tuple(kept), message=result.message, query=result.query
        )
    for series in result.series:
        for at, value in series.points:
            if math.isfinite(value) and 0 <= value <= MAX_COUNT:
                continue
            labels = ", ".join(f"{k}={v!r}" for k, v in sorted(series.labels.items()))
            return QueryResult(
                DataStatus.UNREACHABLE,
                message=f"impossible count {value!r} in series {{{labels}}} at "
                f"{at.isoformat()} (a count is finite, 0 <= n <= {MAX_COUNT:g}): the data is "
                f"broken, not measured; holding: {result.query}",
                query=result.query,
            )
    return result
