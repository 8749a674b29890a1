"""The simulator's own counts as report charts: weights served and per-version metrics over time."""

from __future__ import annotations

from collections.abc import Sequence

from policyengine.report_html import MetricSeries, Point, WeightPoint
from policyengine.sim.fleet import IntervalResult, VersionKey, VersionTraffic


def served_weights(intervals: Sequence[IntervalResult], policy: str) -> tuple[WeightPoint, ...]:
    """The split each interval served, one point per change."""
    points: list[WeightPoint] = []
    for interval in intervals:
        split = interval.splits.get(policy)
        if split is not None and (not points or points[-1].split != split):
            points.append(WeightPoint(interval.start, split))
    return tuple(points)


def metric_series(
    intervals: Sequence[IntervalResult],
    policy: str,
    versions: Sequence[str],
    slow_threshold_ms: float | None = None,
    window: int = 1,
    error_bound: float | None = None,
    slow_bound: float | None = None,
) -> tuple[MetricSeries, ...]:
    """Error rate, latency (slow share above a threshold, else p99) and requests per minute.

    Each point pools the last `window` intervals: at low traffic a single minute's error rate is
    mostly noise. Bounds are fractions (0.01 = 1 %), drawn as the objective's line.
    """
    if window < 1:
        raise ValueError("window must be at least 1 interval")
    errors: list[tuple[str, tuple[Point, ...]]] = []
    latency: list[tuple[str, tuple[Point, ...]]] = []
    rate: list[tuple[str, tuple[Point, ...]]] = []
    for version in versions:
        key = VersionKey(policy, version)
        error_points: list[Point] = []
        latency_points: list[Point] = []
        rate_points: list[Point] = []
        for index, interval in enumerate(intervals):
            pooled = VersionTraffic()
            for earlier in intervals[max(0, index - window + 1) : index + 1]:
                pooled = pooled.plus(earlier.traffic.get(key, VersionTraffic()))
            current = interval.traffic.get(key, VersionTraffic())
            minutes = (interval.end - interval.start).total_seconds() / 60
            rate_points.append((interval.end, current.requests / minutes))
            # No traffic now means no line now, even if the pooled window still holds some.
            if current.requests == 0 or pooled.requests == 0:
                error_points.append((interval.end, None))
                latency_points.append((interval.end, None))
                continue
            error_points.append((interval.end, 100.0 * pooled.errors / pooled.requests))
            if slow_threshold_ms is not None:
                slow = pooled.latency.slower_than(slow_threshold_ms)
                latency_points.append((interval.end, 100.0 * slow / pooled.requests))
            else:
                latency_points.append((interval.end, pooled.latency.quantile_ms(0.99)))
        errors.append((version, tuple(error_points)))
        latency.append((version, tuple(latency_points)))
        rate.append((version, tuple(rate_points)))
    percent = 100.0
    if slow_threshold_ms is not None:
        latency_chart = MetricSeries(
            f"requests slower than {slow_threshold_ms:g} ms",
            "%",
            tuple(latency),
            None if slow_bound is None else slow_bound * percent,
        )
    else:
        latency_chart = MetricSeries("p99 latency", "ms", tuple(latency))
    return (
        MetricSeries(
            "error rate",
            "%",
            tuple(errors),
            None if error_bound is None else error_bound * percent,
        ),
        latency_chart,
        MetricSeries("requests per minute", "req/min", tuple(rate)),
    )
