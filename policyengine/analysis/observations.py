"""Measured data handed from the metrics shell to the pure assessment: counts per concurrent window.

Proportions (errors per request, requests slower than T per request) are kept per window so that
baseline and candidate are compared on the same stretch of time, never pooled across weight changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class DataStatus(StrEnum):
    OK = "ok"
    NO_DATA = "no_data"  # the query ran, nothing matched: never a pass
    QUERY_ERROR = "query_error"  # the provider rejected the query
    UNREACHABLE = "unreachable"  # the provider could not be reached


@dataclass(frozen=True)
class WindowCounts:
    """Counts of one version in one window [start, start + interval)."""

    start: datetime
    events: float  # errors, or requests slower than the threshold
    total: float  # all requests


@dataclass(frozen=True)
class GaugePoint:
    at: datetime
    value: float


@dataclass(frozen=True)
class MetricObservation:
    """One metric of one policy: per version name, its windows (proportion/histogram) or gauge points."""

    metric: str
    kind: str  # "proportion" (histograms arrive already turned into slow/total) or "gauge"
    status: DataStatus
    windows: dict[str, tuple[WindowCounts, ...]] = field(default_factory=dict)
    gauges: dict[str, tuple[GaugePoint, ...]] = field(default_factory=dict)
    message: str = ""  # why the data is missing or wrong, naming the query or the URL
    threshold: float | None = None  # the latency bound T for histogram metrics


def observation_key(metric: str, threshold: float | None = None) -> str:
    """Key of a metric in Observations.metrics: the name, plus `@T` for a latency threshold."""
    return metric if threshold is None else f"{metric}@{threshold:g}"


@dataclass(frozen=True)
class Observations:
    """Everything measured for one policy in one pass, by metric name (plus traffic per version)."""

    metrics: dict[str, MetricObservation] = field(default_factory=dict)
    # Requests per version per window, used for minimum samples and the sample-ratio check.
    traffic: dict[str, tuple[WindowCounts, ...]] = field(default_factory=dict)
    traffic_status: DataStatus = DataStatus.OK
    message: str = ""
