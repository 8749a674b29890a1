"""The metrics provider contract: run PromQL at an explicit time, say whether the server is up.

A result always comes back as data with a status; no data, a rejected query and an unreachable
server are different answers, never an exception and never an empty list that looks like zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

from policyengine.analysis.observations import DataStatus

__all__ = ["DataStatus", "MetricsProvider", "Point", "QueryResult", "Series"]


class Point(NamedTuple):
    at: datetime
    value: float


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[Point, ...]


@dataclass(frozen=True)
class QueryResult:
    status: DataStatus
    series: tuple[Series, ...] = ()
    message: str = ""  # why there is no data, naming the query or the URL
    query: str = field(default="", repr=False)


class MetricsProvider(Protocol):
    @property
    def url(self) -> str: ...

    def query(self, promql: str, at: datetime) -> QueryResult:
        """An instant query evaluated at `at`."""
        ...

    def query_range(
        self, promql: str, start: datetime, end: datetime, step: timedelta
    ) -> QueryResult:
        """A range query evaluated at start, start + step, ... up to end (both inclusive)."""
        ...

    def is_up(self) -> bool: ...
